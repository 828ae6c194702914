"""Image SBOMs in SPDX 2.3 JSON (apko pkg/sbom/generator/spdx/spdx.go, formats.md §8.7).

One document per architecture (``sbom-<apkarch>.spdx.json``) and one for the index
(``sbom-index.spdx.json``); image/cyclonedx.py writes the CycloneDX twins (``.cdx.json``). Each installed package contributes the packages its embedded SBOM
(``var/lib/db/sbom/<name>-<ver>.spdx.json``) describes — with the relationship closure among
them, files excluded — or, when it has none, one package built from its metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro import __version__
from nanodistro.formats.apk_cyclonedx import embedded_sbom_names
from nanodistro.formats.purl import DEFAULT_DISTRO, apk_purl, distro_name
from nanodistro.formats.spdx import Document, dict_to_json, spdx_ref, to_dict

if TYPE_CHECKING:
    from nanodistro.image.build import ArchImage, BuildResult
    from nanodistro.image.install import InstalledImagePackage

NAMESPACE_BASE = "https://spdx.org/spdxdocs/nanodistro/"


def _document(name: str, created: str, namespace: str) -> dict[str, Any]:
    # Packages are kept as JSON dicts: embedded package SBOMs are copied into the image's as
    # they are, and apko's key order differs from formats.spdx's Package writer.
    creators = [f"Tool: nanodistro ({__version__})", "Organization: nanodistro"]
    return to_dict(Document(name=name, namespace=namespace, created=created, creators=creators))


def _relate(doc: dict[str, Any], a: str, kind: str, b: str) -> None:
    doc["relationships"].append(
        {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}
    )


def read_embedded_sbom(
    read: Callable[[str], bytes | None], name: str, version: str
) -> dict[str, Any] | None:
    """A package's own SBOM from an image root (``read``: a root file's bytes, or None), trying
    apko's three file names; None when there is none or it is not a JSON object."""
    for path in embedded_sbom_names(name, version):
        data = read(path)
        if data:
            try:
                doc = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                return None
            return doc if isinstance(doc, dict) else None
    return None


def embedded_sbom(package: InstalledImagePackage, root_read: Any) -> dict[str, Any] | None:
    """The package's own SBOM from the image root."""
    info = package.apk.info
    return read_embedded_sbom(root_read, info.name, info.version)


def _package_from_metadata(
    package: InstalledImagePackage, arch: str, distro: str
) -> dict[str, Any]:
    info = package.apk.info
    return {
        "SPDXID": spdx_ref("Package", "apk", info.name, info.version),
        "name": info.name,
        "versionInfo": info.version,
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": info.license or "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "originator": f"Organization: {info.maintainer}" if info.maintainer else "NOASSERTION",
        "supplier": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "description": info.description,
        "primaryPackagePurpose": "APPLICATION",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": apk_purl(distro, info.name, info.version, arch),
            }
        ],
    }


def _copy_described(
    doc: dict[str, Any], source: dict[str, Any], seen: set[str], parent: str
) -> bool:
    """Copy the packages ``source`` describes (and what they relate to) into ``doc``."""
    packages = {p.get("SPDXID"): p for p in source.get("packages") or [] if isinstance(p, dict)}
    relationships = [r for r in source.get("relationships") or [] if isinstance(r, dict)]
    described = [d for d in source.get("documentDescribes") or [] if d in packages]
    if not described:
        return False
    queue = list(described)
    closure: list[str] = []
    while queue:
        current = queue.pop(0)
        if current in closure:
            continue
        closure.append(current)
        for rel in relationships:
            if rel.get("spdxElementId") == current and rel.get("relatedSpdxElement") in packages:
                queue.append(rel["relatedSpdxElement"])
    for package_id in closure:
        if package_id in seen:
            continue
        seen.add(package_id)
        doc["packages"].append(packages[package_id])
    for rel in relationships:
        if rel.get("spdxElementId") in closure and rel.get("relatedSpdxElement") in closure:
            doc["relationships"].append(rel)
    for package_id in described:
        _relate(doc, parent, "CONTAINS", package_id)
    return True


def arch_sbom(image: ArchImage, *, repo_name: str, distro: str | None = None) -> dict[str, Any]:
    created = json.loads(image.config)["created"]
    manifest_digest = image.descriptor.digest
    layer0 = image.layers[0].digest if image.layers else manifest_digest
    doc = _document(
        f"sbom-{layer0}", created, f"{NAMESPACE_BASE}{image.arch.apk}-{manifest_digest[7:]}"
    )
    image_id = spdx_ref("Package", "Image", manifest_digest)
    doc["documentDescribes"].append(image_id)
    doc["packages"].append(
        {
            "SPDXID": image_id,
            "name": manifest_digest,
            "versionInfo": manifest_digest,
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": image_purl(
                        repo_name, manifest_digest, image.arch.architecture
                    ),
                }
            ],
        }
    )
    seen = {image_id}
    for number, layer in enumerate(image.layers):
        layer_id = spdx_ref("Package", "ImageLayer", layer.digest)
        if layer_id in seen:
            continue
        seen.add(layer_id)
        doc["packages"].append(
            {
                "SPDXID": layer_id,
                "name": layer.digest,
                "versionInfo": layer.digest,
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "comment": f"layer {number + 1} of {len(image.layers)}",
            }
        )
        _relate(doc, image_id, "CONTAINS", layer_id)
    os_release = image.root.fs.read("etc/os-release")
    purl_distro = image_distro(os_release, distro)
    os_package = _operating_system(os_release)
    if os_package is not None:
        seen.add(os_package["SPDXID"])
        doc["packages"].append(os_package)
        _relate(doc, image_id, "CONTAINS", os_package["SPDXID"])
    for package in image.root.packages:
        sbom = embedded_sbom(package, image.root.fs.read)
        if sbom is not None and _copy_described(doc, sbom, seen, image_id):
            continue
        entry = _package_from_metadata(package, image.arch.apk, purl_distro)
        if entry["SPDXID"] in seen:
            continue
        seen.add(entry["SPDXID"])
        doc["packages"].append(entry)
        _relate(doc, image_id, "CONTAINS", entry["SPDXID"])
    return doc


def os_release_fields(os_release: bytes | None) -> dict[str, str]:
    """``KEY=value`` pairs of an ``/etc/os-release`` (quotes removed)."""
    fields: dict[str, str] = {}
    for line in (os_release or b"").decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    return fields


def image_distro(os_release: bytes | None, distro: str | None = None) -> str:
    """The purl distro of installed packages that carry no SBOM of their own: ``distro`` (the
    workspace's, the namespace its own packages carry), else the image's os-release ``ID`` as
    apko uses it, else formats.purl's default."""
    if distro:
        return distro_name(distro)
    return os_release_fields(os_release).get("ID", "").lower() or DEFAULT_DISTRO


def image_purl(repo_name: str, digest: str, architecture: str) -> str:
    """apko's purl of an image manifest (with ``architecture``) or index (without)."""
    if not architecture:
        return f"pkg:oci/{repo_name}@{digest}?mediaType=application%2Fvnd.oci.image.index.v1%2Bjson"
    return (
        f"pkg:oci/{repo_name}@{digest}?arch={architecture}"
        "&os=linux&mediaType=application%2Fvnd.oci.image.manifest.v1%2Bjson"
    )


def _operating_system(os_release: bytes | None) -> dict[str, Any] | None:
    """``SPDXRef-OperatingSystem-<ID>`` from ``/etc/os-release``, as apko adds it."""
    fields = os_release_fields(os_release)
    os_id = fields.get("ID")
    if not os_id:
        return None
    return {
        "SPDXID": spdx_ref("OperatingSystem", os_id),
        "name": os_id,
        "versionInfo": fields.get("VERSION_ID", ""),
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "description": fields.get("PRETTY_NAME", fields.get("NAME", "")),
        "primaryPackagePurpose": "OPERATING-SYSTEM",
    }


def index_sbom(result: BuildResult, *, repo_name: str) -> dict[str, Any]:
    digest = result.index_descriptor.digest
    created = str(json.loads(result.images[0].config)["created"]) if result.images else ""
    doc = _document(f"sbom-{digest}", created, f"{NAMESPACE_BASE}index-{digest[7:]}")
    index_id = spdx_ref("Package", "Index", digest)
    doc["documentDescribes"].append(index_id)
    base = {
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    }
    doc["packages"].append(
        {
            "SPDXID": index_id,
            "name": digest,
            "versionInfo": digest,
            **base,
            "primaryPackagePurpose": "CONTAINER",
        }
    )
    for image in result.images:
        image_id = spdx_ref("Package", "Image", image.descriptor.digest)
        doc["packages"].append(
            {
                "SPDXID": image_id,
                "name": image.descriptor.digest,
                "versionInfo": image.descriptor.digest,
                **base,
                "primaryPackagePurpose": "CONTAINER",
            }
        )
        _relate(doc, image_id, "VARIANT_OF", index_id)
    return doc


def image_sboms(
    result: BuildResult, *, config_path: Path | None = None, distro: str | None = None
) -> dict[str, bytes]:
    """File name -> SPDX (``.spdx.json``) and CycloneDX (``.cdx.json``) bytes, for every arch
    and the index (``distro``: as :func:`image_distro`)."""
    repo_name = config_path.stem if config_path is not None else "image"
    files = {
        f"sbom-{image.arch.apk}.spdx.json": dict_to_json(
            arch_sbom(image, repo_name=repo_name, distro=distro)
        )
        for image in result.images
    }
    if result.images:
        files["sbom-index.spdx.json"] = dict_to_json(index_sbom(result, repo_name=repo_name))
    # CycloneDX beside each SPDX document, from the same installed packages (a module of its
    # own that imports this one, hence imported here)
    from nanodistro.image.cyclonedx import image_cyclonedx

    files.update(image_cyclonedx(result, config_path=config_path, distro=distro))
    return files
