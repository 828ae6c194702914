"""The per-package SPDX SBOM embedded at ``var/lib/db/sbom/<pkg>-<ver>-r<N>.spdx.json``.

Layout as melange (pkg/build/sbom/spdx/spdx.go, reference §7.5): an operating-system package
for the namespace, the apk package with its purl and declared licenses, the recipe
(``DESCRIBED_BY``) and one package per upstream source (``GENERATED_FROM``) with its checksums
and purl. ``created`` is SOURCE_DATE_EPOCH, so the document is reproducible. The apk package's
purl is formats.purl's one form (``pkg:apk/<distro>/<name>@<version>?arch=<arch>``, without
melange's redundant ``distro=`` qualifier), the same string image SBOMs and CycloneDX carry.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote, urlparse

from nanodistro import __version__
from nanodistro.builder.mirrors import is_mirror_uri
from nanodistro.builder.sources import SourceRecord
from nanodistro.formats import cyclonedx, spdx
from nanodistro.formats.apk import ApkPackage
from nanodistro.formats.apk_cyclonedx import SBOM_DIR, embedded_sbom_names, package_bom
from nanodistro.formats.purl import DEFAULT_DISTRO, apk_purl, distro_name
from nanodistro.util.timestamps import rfc3339


def sbom_path(name: str, full_version: str) -> str:
    return f"{SBOM_DIR}/{name}-{full_version}.spdx.json"


# Schemes an SPDX downloadLocation may name (spec §7.7: a URL or <vcs>+<url>). A recipe's
# ``mirror://NAME/...`` is nanodistro's own indirection, no location anyone else can fetch: the
# fetch resolved it (SourceRecord.download_url, through [mirrors]) and the document names that
# URL, in downloadLocation and the purl's download_url; unresolvable, it says NOASSERTION.
_LOCATION_SCHEMES = ("http", "https", "ftp", "sftp", "ssh", "git", "svn")


def _download_location(uri: str, location: str) -> str:
    scheme = urlparse(uri).scheme.lower()
    return location if scheme in _LOCATION_SCHEMES else spdx.NOASSERTION


def source_package(source: SourceRecord) -> spdx.Package:
    """An SPDX package for one fetched tarball or git checkout (melange
    ``SBOMPackageForUpstreamSource``)."""
    if source.kind == "fetch":
        name = source.purl_name or urlparse(source.uri).path.rsplit("/", 1)[-1]
        version = source.purl_version
        url = source.download_url or ("" if is_mirror_uri(source.uri) else source.uri)
        qualifiers = f"checksum=sha256:{source.sha256}"
        if url:
            qualifiers += f"&download_url={quote(url, safe='')}"
        purl = f"pkg:generic/{quote(name)}@{quote(version)}?{qualifiers}"
        checksums = [spdx.Checksum("SHA256", source.sha256), spdx.Checksum("SHA512", source.sha512)]
        location = _download_location(url, url)
    else:
        parsed = urlparse(source.repository)
        path = parsed.path.strip("/").removesuffix(".git")
        name = path.rsplit("/", 1)[-1] or "source"
        version = source.tag or source.commit
        if parsed.hostname in ("github.com", "gitlab.com") and path.count("/") >= 1:
            kind = parsed.hostname.split(".")[0]
            purl = f"pkg:{kind}/{path}@{quote(version)}"
        else:
            vcs = quote(f"git+{source.repository}@{source.commit}", safe="")
            purl = f"pkg:generic/{quote(name)}@{quote(version)}?vcs_url={vcs}"
        checksums = [spdx.Checksum("SHA1", source.commit)] if len(source.commit) == 40 else []
        location = _download_location(source.repository, f"git+{source.repository}@{source.commit}")
    return spdx.Package(
        spdx_id=spdx.spdx_id("Source", name, version),
        name=name,
        version=version,
        download_location=location,
        primary_purpose="SOURCE",
        checksums=[c for c in checksums if c.value],
        external_refs=[spdx.ExternalRef("PACKAGE-MANAGER", "purl", purl)],
    )


def package_sbom(
    *,
    name: str,
    full_version: str,
    arch: str,
    licenses: list[str],
    copyright_text: str,
    description: str,
    sources: list[SourceRecord],
    recipe_path: str,
    recipe_commit: str,
    source_date_epoch: int,
    namespace: str = DEFAULT_DISTRO,
) -> bytes:
    """The SBOM of one built package as deterministic SPDX 2.3 JSON bytes."""
    apk_id = spdx.spdx_id("apk", name, full_version)
    supplier = f"Organization: {namespace.title()}"
    os_package = spdx.Package(
        spdx_id="SPDXRef-OperatingSystem",
        name=namespace,
        supplier=supplier,
        primary_purpose="OPERATING-SYSTEM",
    )
    main = spdx.Package(
        spdx_id=apk_id,
        name=name,
        version=full_version,
        supplier=supplier,
        originator=supplier,
        license_declared=" AND ".join(licenses) if licenses else spdx.NOASSERTION,
        copyright_text=copyright_text or spdx.NOASSERTION,
        description=description,
        primary_purpose="APPLICATION",
        external_refs=[
            spdx.ExternalRef(
                "PACKAGE-MANAGER",
                "purl",
                apk_purl(distro_name(namespace), name, full_version, arch),
            )
        ],
    )
    recipe = spdx.Package(
        spdx_id=spdx.spdx_id("Melange", recipe_path, recipe_commit),
        name=recipe_path,
        version=recipe_commit,
        supplier=supplier,
        download_location=spdx.NOASSERTION,
        primary_purpose="INSTALL",
    )
    source_packages = [source_package(s) for s in sources]
    relationships = [
        spdx.Relationship("SPDXRef-DOCUMENT", "DESCRIBES", apk_id),
        spdx.Relationship(apk_id, "DESCRIBED_BY", recipe.spdx_id),
        *(spdx.Relationship(apk_id, "GENERATED_FROM", p.spdx_id) for p in source_packages),
    ]
    document = spdx.Document(
        name=f"apk-{name}-{full_version}",
        namespace=(
            "https://spdx.org/spdxdocs/nanodistro/"
            + spdx.fnv128a_hex(f"apk-{namespace}-{full_version}-{name}")
        ),
        created=rfc3339(source_date_epoch),
        creators=[f"Tool: nanodistro ({__version__})", supplier],
        describes=[apk_id],
        packages=[os_package, main, recipe, *source_packages],
        relationships=relationships,
    )
    return spdx.to_json(document)


# ---- the SBOMs of a finished .apk ------------------------------------------------------------


def embedded_sbom(pkg: ApkPackage) -> bytes | None:
    """The package's own SPDX document (apko's three file names, in its order), if any."""
    files = {e.path: e.data for e in pkg.entries if e.type == "file"}
    for path in embedded_sbom_names(pkg.info.name, pkg.info.version):
        if files.get(path):
            return files[path]
    return None


def apk_spdx(pkg: ApkPackage, *, distro: str = DEFAULT_DISTRO) -> bytes:
    """The package's SPDX document: the embedded one as it is, else one made from ``.PKGINFO``
    the way the builder would (no sources known)."""
    embedded = embedded_sbom(pkg)
    if embedded is not None:
        spdx.from_json(embedded, where=f"{pkg.where}: embedded SBOM")  # it must be SPDX
        return embedded
    info = pkg.info
    return package_sbom(
        name=info.name,
        full_version=info.version,
        arch=info.arch,
        licenses=[info.license] if info.license else [],
        copyright_text="",
        description=info.description,
        sources=[],
        recipe_path=info.origin or info.name,
        recipe_commit=info.commit,
        source_date_epoch=info.builddate or 0,
        namespace=distro,
    )


def apk_cyclonedx(pkg: ApkPackage, data: bytes, *, distro: str = DEFAULT_DISTRO) -> bytes:
    """The package's CycloneDX document (formats/apk_cyclonedx.package_bom) from its embedded
    SPDX and ``.PKGINFO``; ``data`` is the ``.apk`` file (its SHA-256 is the component hash)."""
    embedded = embedded_sbom(pkg)
    document = json.loads(embedded) if embedded is not None else None
    created = document.get("creationInfo", {}).get("created") if document else None
    bom = package_bom(
        pkg.info,
        document if isinstance(document, dict) else None,
        distro=distro,
        timestamp=str(created or rfc3339(pkg.info.builddate or 0)),
        tool_version=__version__,
        identity=pkg.identity,
        file_sha256=hashlib.sha256(data).hexdigest(),
    )
    return cyclonedx.to_json(bom)
