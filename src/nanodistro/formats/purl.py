"""Package URLs (purl) for what nanodistro builds, pure codec over packageurl-python.

One form everywhere (SPDX ``externalRefs``, CycloneDX ``purl``, provenance subjects, the
scanner): ``pkg:apk/<distro>/<name>@<version>?arch=<arch>`` — the purl spec's ``apk`` type with
the distribution as namespace, as apko writes it for installed packages. melange adds a redundant
``distro=<namespace>`` qualifier; :func:`parse_apk_purl` accepts (and ignores) it, so purls from
Wolfi/Chainguard SBOMs compare equal to ours by :meth:`ApkPurl.key`.

``distro`` is the workspace name, lowercased (the ``apk`` type is case-insensitive and
packageurl-python lowercases namespace and name); outside a workspace it is ``nanodistro``.
"""

from __future__ import annotations

from dataclasses import dataclass

from packageurl import PackageURL

from nanodistro.errors import FormatError

DEFAULT_DISTRO = "nanodistro"


def distro_name(workspace_name: str | None) -> str:
    """The purl namespace for packages of a workspace (``None`` or empty: outside one)."""
    name = (workspace_name or "").strip().lower()
    return name or DEFAULT_DISTRO


def apk_purl(distro: str, name: str, version: str, arch: str) -> str:
    """``pkg:apk/<distro>/<name>@<version>?arch=<arch>`` (percent-encoded by packageurl)."""
    if not (distro and name and version and arch):
        raise FormatError(
            f"an apk purl needs distro, name, version and arch (got {distro!r}, {name!r}, "
            f"{version!r}, {arch!r})",
            field="purl",
        )
    return str(
        PackageURL(
            type="apk",
            namespace=distro.lower(),
            name=name,
            version=version,
            qualifiers={"arch": arch},
        ).to_string()
    )


@dataclass(frozen=True)
class ApkPurl:
    distro: str
    name: str
    version: str
    arch: str

    def to_string(self) -> str:
        return apk_purl(self.distro, self.name, self.version, self.arch)

    def key(self) -> tuple[str, str, str, str]:
        """What identifies the package; two purls naming it differently compare equal here."""
        return (self.distro, self.name, self.version, self.arch)


def parse_purl(text: str, *, where: str = "<purl>") -> PackageURL:
    """Any purl, parsed (``FormatError`` naming ``where`` when it is not one)."""
    try:
        return PackageURL.from_string(text)
    except ValueError as error:
        raise FormatError(f"not a package URL {text!r}: {error}", where=where) from None


def parse_apk_purl(text: str, *, where: str = "<purl>") -> ApkPurl:
    """A ``pkg:apk/...`` purl with distro, name, version and arch (extra qualifiers ignored)."""
    purl = parse_purl(text, where=where)
    if purl.type != "apk":
        raise FormatError(
            f"expected a pkg:apk purl, got type {purl.type!r} in {text!r}", where=where
        )
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    arch = qualifiers.get("arch", "")
    missing = [
        label
        for label, value in (
            ("distro (namespace)", purl.namespace),
            ("version", purl.version),
            ("arch qualifier", arch),
        )
        if not value
    ]
    if missing:
        raise FormatError(f"apk purl {text!r} has no {', '.join(missing)}", where=where)
    return ApkPurl(str(purl.namespace), purl.name, str(purl.version), arch)
