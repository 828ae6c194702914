"""Image SBOMs in CycloneDX 1.6 JSON, beside the SPDX ones (image/sbom.py).

One document per architecture (``sbom-<apkarch>.cdx.json``) and one for the index
(``sbom-index.cdx.json``). The data is the SPDX documents' data: the image's installed database
(every installed package, with the purl, licenses and sources of its embedded package SBOM —
formats/apk_cyclonedx.py), ``/etc/os-release`` and the image's digests; on top, CycloneDX records
which installed package satisfies each dependency of another (``dependencies``).

The facts come either from a fresh build (:func:`facts_from_build`) or from a finished OCI layout
(:func:`facts_from_layout`, read back from its layers); both give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro import __version__
from nanodistro.errors import FormatError, VersionError
from nanodistro.formats import cyclonedx
from nanodistro.formats.apk_cyclonedx import SBOM_DIR, apk_component
from nanodistro.formats.installed_db import parse_installed
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.version import parse_dependency
from nanodistro.image.diff import INSTALLED_DB_PATHS
from nanodistro.image.sbom import image_distro, image_purl, os_release_fields, read_embedded_sbom
from nanodistro.resolve.provides import provides
from nanodistro.resolve.universe import Candidate

if TYPE_CHECKING:
    from nanodistro.image.build import BuildResult
    from nanodistro.image.oci_layout import Layout

OS_RELEASE = ("etc/os-release", "usr/lib/os-release")


@dataclass
class ArchFacts:
    """What an architecture's CycloneDX document is made of."""

    name: str  # the image's repository name (config file stem / layout directory)
    apk_arch: str
    oci_arch: str
    manifest_digest: str
    created: str
    layers: list[str]
    packages: list[PackageInfo]  # installed db order
    read: Callable[[str], bytes | None] = field(repr=False)  # a file of the root filesystem
    distro: str | None = None  # purl distro for packages without an SBOM (image_distro)


@dataclass
class IndexFacts:
    name: str
    digest: str
    created: str
    images: list[tuple[str, str]] = field(default_factory=list)  # (manifest digest, oci arch)


def _providers(packages: list[PackageInfo]) -> dict[str, list[tuple[Candidate, str | None]]]:
    claims: dict[str, list[tuple[Candidate, str | None]]] = {}
    for info in packages:
        candidate = Candidate(info, 0)
        for name, version in candidate.claims():
            claims.setdefault(name, []).append((candidate, version))
    return claims


def _dependency_graph(packages: list[PackageInfo], refs: dict[str, str]) -> dict[str, list[str]]:
    """package bom-ref -> bom-refs of the installed packages that satisfy its dependencies."""
    claims = _providers(packages)
    graph: dict[str, list[str]] = {}
    for info in packages:
        found: set[str] = set()
        for atom in info.depends:
            try:
                dep = parse_dependency(atom, legacy=True)
            except VersionError:
                continue
            if dep.conflict:
                continue
            for candidate, version in claims.get(dep.name, []):
                if candidate.name != info.name and provides(dep, candidate, version):
                    found.add(refs[candidate.name])
        graph[refs[info.name]] = sorted(found)
    return graph


def _os_release(read: Callable[[str], bytes | None]) -> bytes | None:
    return next((d for d in map(read, OS_RELEASE) if d), None)


def _operating_system(os_release: bytes | None) -> cyclonedx.Component | None:
    fields = os_release_fields(os_release)
    os_id = fields.get("ID")
    if not os_id:
        return None
    version = fields.get("VERSION_ID", "")
    return cyclonedx.Component(
        type="operating-system",
        name=os_id,
        bom_ref=f"os:{os_id}" + (f"@{version}" if version else ""),
        version=version,
        description=fields.get("PRETTY_NAME", fields.get("NAME", "")),
    )


def _image_component(
    name: str, digest: str, oci_arch: str, properties: list[tuple[str, str]] | None = None
) -> cyclonedx.Component:
    """An image manifest (``oci_arch`` set) or index (``oci_arch`` empty), by its purl."""
    ref = image_purl(name, digest, oci_arch)
    return cyclonedx.Component(
        type="container",
        name=name,
        bom_ref=ref,
        version=digest,
        purl=ref,
        hashes=[cyclonedx.Hash("SHA-256", digest.removeprefix("sha256:"))],
        properties=properties or [],
    )


def arch_bom(facts: ArchFacts) -> cyclonedx.Bom:
    os_release = _os_release(facts.read)
    distro = image_distro(os_release, facts.distro)
    image = _image_component(
        facts.name,
        facts.manifest_digest,
        facts.oci_arch,
        properties=[("nanodistro:image:layer", layer) for layer in facts.layers],
    )
    image_ref = image.bom_ref
    components: list[cyclonedx.Component] = []
    os_component = _operating_system(os_release)
    if os_component is not None:
        components.append(os_component)
    refs: dict[str, str] = {}
    for info in facts.packages:
        component = apk_component(
            info,
            read_embedded_sbom(facts.read, info.name, info.version),
            distro=distro,
            arch=facts.apk_arch,
        )
        refs[info.name] = component.bom_ref
        components.append(component)
    dependencies = {image_ref: [c.bom_ref for c in components]}
    dependencies.update(_dependency_graph(facts.packages, refs))
    if os_component is not None:
        dependencies[os_component.bom_ref] = []
    return cyclonedx.Bom(
        component=image,
        timestamp=facts.created,
        tools=[("nanodistro", __version__)],
        components=components,
        dependencies=dependencies,
    )


def index_bom(facts: IndexFacts) -> cyclonedx.Bom:
    index = _image_component(facts.name, facts.digest, "")
    index_ref = index.bom_ref
    images = [_image_component(facts.name, digest, oci_arch) for digest, oci_arch in facts.images]
    return cyclonedx.Bom(
        component=index,
        timestamp=facts.created,
        tools=[("nanodistro", __version__)],
        components=images,
        dependencies={index_ref: [i.bom_ref for i in images]},
    )


# ---- facts from a build -----------------------------------------------------------------------


def _installed(read: Callable[[str], bytes | None], where: str) -> list[PackageInfo]:
    """The installed database as the image holds it: the one source of the package list (a
    record there lacks what the database does not store, e.g. ``datahash``, in every path)."""
    new, old = INSTALLED_DB_PATHS
    db = read(new) or read(old)
    if db is None:
        raise FormatError("image has no installed database (usr/lib/apk/db/installed)", where=where)
    return [r.info for r in parse_installed(db, where=f"{where}: installed db")]


def facts_from_build(
    result: BuildResult, name: str, distro: str | None = None
) -> tuple[list[ArchFacts], IndexFacts]:
    archs = [
        ArchFacts(
            name=name,
            apk_arch=image.arch.apk,
            oci_arch=image.arch.architecture,
            manifest_digest=image.descriptor.digest,
            created=str(json.loads(image.config)["created"]),
            layers=[layer.digest for layer in image.layers],
            packages=_installed(image.root.fs.read, f"{name} ({image.arch.apk})"),
            read=image.root.fs.read,
            distro=distro,
        )
        for image in result.images
    ]
    index = IndexFacts(
        name=name,
        digest=result.index_descriptor.digest,
        created=archs[0].created if archs else "",
        images=[(a.manifest_digest, a.oci_arch) for a in archs],
    )
    return archs, index


def image_cyclonedx(
    result: BuildResult, *, config_path: Path | None = None, distro: str | None = None
) -> dict[str, bytes]:
    """File name -> CycloneDX JSON bytes, for every arch and the index (as image_sboms)."""
    name = config_path.stem if config_path is not None else "image"
    archs, index = facts_from_build(result, name, distro)
    files = {f"sbom-{a.apk_arch}.cdx.json": cyclonedx.to_json(arch_bom(a)) for a in archs}
    if archs:
        files["sbom-index.cdx.json"] = cyclonedx.to_json(index_bom(index))
    return files


# ---- facts from an OCI layout -----------------------------------------------------------------


def _wanted(path: str) -> bool:
    return (
        path in INSTALLED_DB_PATHS
        or path in OS_RELEASE
        or (path.startswith(f"{SBOM_DIR}/") and path.endswith(".spdx.json"))
    )


def _root_files(layout: Layout, layers: list[Any], where: str) -> dict[str, bytes]:
    """The few files the SBOM needs, as the unpacked root would hold them (upper layers win)."""
    files: dict[str, bytes] = {}
    for descriptor in layers:
        for entry in layout.layer_entries(descriptor, label=where):
            path = entry.path.removeprefix("./")
            if entry.type == "file" and _wanted(path):
                files[path] = entry.data
    return files


def facts_from_layout(
    location: Path,
    *,
    name: str | None = None,
    tag: str | None = "latest",
    distro: str | None = None,
) -> tuple[list[ArchFacts], IndexFacts]:
    """The facts of a layout's image (the one tagged ``tag``; all of them when it has no such
    tag), read from its blobs."""
    from nanodistro.formats.oci import ANNOTATION_REF_NAME
    from nanodistro.image.diff import _arch_name
    from nanodistro.image.oci_layout import Layout

    layout = Layout(location)
    name = name or location.name
    top = layout.index()
    if tag is not None and any(d.annotations.get(ANNOTATION_REF_NAME) == tag for d in top):
        images = layout.images(tag)
        top = [d for d in top if d.annotations.get(ANNOTATION_REF_NAME) == tag]
    else:
        images = layout.images()
    archs: list[ArchFacts] = []
    for image in images:
        files = _root_files(layout, image.manifest.layers, str(location))
        archs.append(
            ArchFacts(
                name=name,
                apk_arch=_arch_name(image.config),
                oci_arch=str(image.config.get("architecture", "")),
                manifest_digest=image.descriptor.digest,
                created=str(image.config.get("created", "")),
                layers=[layer.digest for layer in image.manifest.layers],
                packages=_installed(files.get, f"{location}@{image.descriptor.digest}"),
                read=files.get,
                distro=distro,
            )
        )
    digest = top[0].digest if top else ""
    index = IndexFacts(
        name=name,
        digest=digest,
        created=archs[0].created if archs else "",
        images=[(a.manifest_digest, a.oci_arch) for a in archs],
    )
    return archs, index
