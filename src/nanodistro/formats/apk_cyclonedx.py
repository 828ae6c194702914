"""One APK package as a CycloneDX component, from the facts every package carries, pure.

The facts are the package's ``.PKGINFO`` (or installed-db record) and its embedded melange-style
SPDX document (``var/lib/db/sbom/<name>-<version>.spdx.json``, the builder's builder/sbom.py):
the SPDX document gives the purl's distro, the declared licenses, the supplier, the recipe and
the upstream sources (with their checksums); ``.PKGINFO`` the rest. The same function serves the
package's own BOM and every image that installs it, so a package is the same component in both.
"""

from __future__ import annotations

import re
from typing import Any

from nanodistro.errors import FormatError
from nanodistro.formats.cyclonedx import HASH_ALGORITHMS, Bom, Component, Hash
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.purl import apk_purl, parse_apk_purl

SBOM_DIR = "var/lib/db/sbom"
_URL = re.compile(r"^(https?|ftp)://[^\s]+$")


def embedded_sbom_names(name: str, version: str) -> list[str]:
    """Paths an embedded package SBOM may have, in apko's order of preference."""
    base = re.sub(r"-r\d+$", "", version)
    return [f"{SBOM_DIR}/{n}.spdx.json" for n in (f"{name}-{version}", f"{name}-{base}", name)]


def _refs(package: dict[str, Any]) -> list[str]:
    return [
        str(r.get("referenceLocator", ""))
        for r in package.get("externalRefs") or []
        if isinstance(r, dict) and r.get("referenceType") == "purl"
    ]


def _described(spdx: dict[str, Any], name: str) -> dict[str, Any] | None:
    packages = {p.get("SPDXID"): p for p in spdx.get("packages") or [] if isinstance(p, dict)}
    for ref in spdx.get("documentDescribes") or []:
        package = packages.get(ref)
        if package is not None and package.get("name") == name:
            return package
    return next((p for p in packages.values() if p.get("name") == name and _refs(p)), None)


def _related(spdx: dict[str, Any], element: str, kind: str) -> list[dict[str, Any]]:
    packages = {p.get("SPDXID"): p for p in spdx.get("packages") or [] if isinstance(p, dict)}
    related = [
        packages[r.get("relatedSpdxElement")]
        for r in spdx.get("relationships") or []
        if isinstance(r, dict)
        and r.get("spdxElementId") == element
        and r.get("relationshipType") == kind
        and r.get("relatedSpdxElement") in packages
    ]
    return related


def _organization(value: object) -> str:
    text = str(value or "")
    for prefix in ("Organization:", "Person:"):
        if text.startswith(prefix):
            return text[len(prefix) :].strip()
    return ""


def _source_component(package: dict[str, Any]) -> Component:
    hashes = [
        Hash(HASH_ALGORITHMS[str(c.get("algorithm"))], str(c.get("checksumValue", "")).lower())
        for c in package.get("checksums") or []
        if isinstance(c, dict) and str(c.get("algorithm")) in HASH_ALGORITHMS
    ]
    location = str(package.get("downloadLocation", ""))
    refs: list[tuple[str, str]] = []
    if _URL.match(location):
        refs.append(("distribution", location))
    elif location.startswith("git+") and _URL.match(location[4:]):
        refs.append(("vcs", location[4:]))
    purls = _refs(package)
    return Component(
        type="library",
        name=str(package.get("name", "")),
        version=str(package.get("versionInfo", "")),
        purl=purls[0] if purls else "",
        hashes=[h for h in hashes if h.content],
        external_refs=refs,
    )


def package_purl(
    info: PackageInfo, spdx: dict[str, Any] | None, *, distro: str, arch: str = ""
) -> str:
    """The package's purl in formats.purl's form; the distro its own SBOM names wins over
    ``distro`` (the fallback for packages built without one)."""
    arch = arch or info.arch
    main = _described(spdx, info.name) if spdx else None
    for text in _refs(main) if main else []:
        try:
            found = parse_apk_purl(text)
        except FormatError:
            continue
        return apk_purl(found.distro, info.name, info.version, arch)
    return apk_purl(distro, info.name, info.version, arch)


def apk_component(
    info: PackageInfo,
    spdx: dict[str, Any] | None,
    *,
    distro: str,
    arch: str = "",
    identity: str = "",
    file_sha256: str = "",
) -> Component:
    """The package as a CycloneDX ``library`` whose bom-ref is its purl."""
    purl = package_purl(info, spdx, distro=distro, arch=arch)
    main = _described(spdx, info.name) if spdx else None
    licenses = info.license
    supplier = ""
    ancestors: list[Component] = []
    properties: list[tuple[str, str]] = []
    if main is not None and spdx is not None:
        declared = str(main.get("licenseDeclared", ""))
        if declared and declared != "NOASSERTION":
            licenses = declared
        supplier = _organization(main.get("supplier"))
        element = str(main.get("SPDXID", ""))
        ancestors = [_source_component(p) for p in _related(spdx, element, "GENERATED_FROM")]
        for recipe in _related(spdx, element, "DESCRIBED_BY"):
            commit = str(recipe.get("versionInfo", ""))
            properties.append(
                (
                    "nanodistro:recipe",
                    f"{recipe.get('name', '')}" + (f"@{commit}" if commit else ""),
                )
            )
    if info.origin:
        properties.append(("nanodistro:apk:origin", info.origin))
    if identity or info.checksum:
        properties.append(("nanodistro:apk:identity", identity or str(info.checksum)))
    if info.datahash:
        properties.append(("nanodistro:apk:datahash", info.datahash))
    properties.extend(("nanodistro:apk:depends", atom) for atom in info.depends)
    return Component(
        type="library",
        name=info.name,
        bom_ref=purl,
        version=info.version,
        supplier=supplier,
        description=info.description,
        licenses=licenses,
        purl=purl,
        hashes=[Hash("SHA-256", file_sha256)] if file_sha256 else [],
        external_refs=[("website", info.url)] if _URL.match(info.url) else [],
        ancestors=ancestors,
        properties=properties,
    )


def package_bom(
    info: PackageInfo,
    spdx: dict[str, Any] | None,
    *,
    distro: str,
    timestamp: str,
    tool_version: str,
    identity: str = "",
    file_sha256: str = "",
) -> Bom:
    """The BOM of one ``.apk``: the package itself, its sources as pedigree, its dependency
    atoms as properties (which packages satisfy them is the installing image's business)."""
    component = apk_component(info, spdx, distro=distro, identity=identity, file_sha256=file_sha256)
    return Bom(
        component=component,
        timestamp=timestamp,
        tools=[("nanodistro", tool_version)],
        dependencies={component.bom_ref: []},
    )
