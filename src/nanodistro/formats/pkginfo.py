"""Package metadata shared by ``.PKGINFO``, ``APKINDEX`` records and the installed database.

One ``PackageInfo`` serves all three: the ``.PKGINFO`` keys and the single-letter index fields are
the same facts under different names (reference/formats.md §1.5, §2.2, §3.2). The tables below are
the single source of that mapping; codecs for each container format iterate over them.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from nanodistro.errors import FormatError

FieldKind = Literal["str", "int", "list"]


@dataclass
class PackageInfo:
    name: str = ""
    version: str = ""
    arch: str = ""
    description: str = ""
    url: str = ""
    license: str = ""
    origin: str = ""
    maintainer: str = ""
    packager: str = ""
    commit: str = ""
    builddate: int | None = None
    installed_size: int | None = None
    depends: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    install_if: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    provider_priority: int | None = None
    replaces_priority: int | None = None
    datahash: str | None = None
    # Facts about the .apk file rather than its .PKGINFO (APKINDEX ``C:`` and ``S:``).
    checksum: str | None = None  # package identity, "Q1" + base64(sha1(control gzip member))
    file_size: int | None = None
    # Keys/letters this codec does not know, kept in order so a round trip loses nothing.
    extra: list[tuple[str, str]] = field(default_factory=list)

    @property
    def filename(self) -> str:
        """``<name>-<version>.apk``, the name apk clients fetch from ``<repo>/<arch>/``."""
        return apk_filename(self.name, self.version)

    def copy(self) -> PackageInfo:
        return dataclasses.replace(
            self,
            depends=list(self.depends),
            provides=list(self.provides),
            install_if=list(self.install_if),
            replaces=list(self.replaces),
            triggers=list(self.triggers),
            extra=list(self.extra),
        )


# .PKGINFO key -> (attribute, kind). Repeatable keys ("list") appear once per value, except
# ``triggers`` and ``install_if`` which abuild/melange write as one space-separated line.
PKGINFO_KEYS: dict[str, tuple[str, FieldKind]] = {
    "pkgname": ("name", "str"),
    "pkgver": ("version", "str"),
    "pkgdesc": ("description", "str"),
    "url": ("url", "str"),
    "builddate": ("builddate", "int"),
    "packager": ("packager", "str"),
    "size": ("installed_size", "int"),
    "arch": ("arch", "str"),
    "origin": ("origin", "str"),
    "commit": ("commit", "str"),
    "maintainer": ("maintainer", "str"),
    "replaces_priority": ("replaces_priority", "int"),
    "provider_priority": ("provider_priority", "int"),
    "license": ("license", "str"),
    "replaces": ("replaces", "list"),
    "depend": ("depends", "list"),
    "provides": ("provides", "list"),
    "triggers": ("triggers", "list"),
    "install_if": ("install_if", "list"),
    "datahash": ("datahash", "str"),
}

# APKINDEX / installed-db letter -> (attribute, kind), in the order apk-tools writes them
# (``apk_pkg_write_index_header``): C P V A S I T U L o m t c k D p i.
INDEX_LETTERS: dict[str, tuple[str, FieldKind]] = {
    "C": ("checksum", "str"),
    "P": ("name", "str"),
    "V": ("version", "str"),
    "A": ("arch", "str"),
    "S": ("file_size", "int"),
    "I": ("installed_size", "int"),
    "T": ("description", "str"),
    "U": ("url", "str"),
    "L": ("license", "str"),
    "o": ("origin", "str"),
    "m": ("maintainer", "str"),
    "t": ("builddate", "int"),
    "c": ("commit", "str"),
    "k": ("provider_priority", "int"),
    "D": ("depends", "list"),
    "p": ("provides", "list"),
    "i": ("install_if", "list"),
}

_SPACE_SEPARATED = {"triggers", "install_if"}


def apk_filename(name: str, version: str) -> str:
    """``<name>-<version>.apk`` (version with its ``-r<N>``): a package's file name in a
    repository's ``<arch>/`` directory, as apk-tools fetches it."""
    return f"{name}-{version}.apk"


def q1_checksum(sha1: bytes) -> str:
    """apk's ``Q1`` checksum text: ``Q1`` + base64 of a SHA-1 digest (package identity ``C:``,
    file ``Z:``, xattr hash ``a:``)."""
    return "Q1" + base64.b64encode(sha1).decode("ascii")


def parse_int(value: str, *, where: str, line: int | None, field_name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FormatError(
            f"expected an integer, got {value!r}", where=where, line=line, field=field_name
        ) from None


def parse_pkginfo(text: str, *, where: str = ".PKGINFO") -> PackageInfo:
    """Parse ``.PKGINFO``: ``key = value`` lines split at the first `` = ``; ``#`` comments.

    For repeated scalar keys the last value wins, as in apk-tools (``apk_pkgtmpl_add_info``).
    """
    info = PackageInfo()
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition(" = ")
        if not sep:
            if line.endswith(" ="):  # "url =" with the trailing space stripped by an editor
                key, value = line[:-2], ""
            else:
                raise FormatError(
                    f"expected 'key = value', got {line[:80]!r}", where=where, line=lineno
                )
        key = key.strip()
        spec = PKGINFO_KEYS.get(key)
        if spec is None:
            info.extra.append((key, value))
            continue
        attribute, kind = spec
        if kind == "int":
            setattr(info, attribute, parse_int(value, where=where, line=lineno, field_name=key))
        elif kind == "list":
            values = value.split() if key in _SPACE_SEPARATED else [value.strip()]
            getattr(info, attribute).extend(v for v in values if v)
        else:
            setattr(info, attribute, value)
    for required in ("pkgname", "pkgver"):
        if not getattr(info, PKGINFO_KEYS[required][0]):
            raise FormatError(f"missing required key {required!r}", where=where)
    return info


def format_pkginfo(info: PackageInfo, *, generator: str = "nanodistro") -> str:
    """Render ``.PKGINFO`` in melange's layout (reference/formats.md §1.5), ``datahash`` last."""
    lines = [f"# Generated by {generator}"]

    def add(key: str, value: object) -> None:
        lines.append(f"{key} = {value}")

    add("pkgname", info.name)
    add("pkgver", info.version)
    add("arch", info.arch)
    if info.installed_size is not None:
        add("size", info.installed_size)
    add("origin", info.origin or info.name)
    add("pkgdesc", info.description)
    add("url", info.url)
    add("commit", info.commit)
    if info.maintainer:
        add("maintainer", info.maintainer)
    if info.packager:
        add("packager", info.packager)
    if info.builddate:
        add("builddate", info.builddate)
    if info.license:
        add("license", info.license)
    for dep in info.depends:
        add("depend", dep)
    for provide in info.provides:
        add("provides", provide)
    for replace in info.replaces:
        add("replaces", replace)
    if info.provider_priority is not None:
        add("provider_priority", info.provider_priority)
    if info.replaces_priority is not None:
        add("replaces_priority", info.replaces_priority)
    if info.triggers:
        add("triggers", " ".join(info.triggers))
    if info.install_if:
        add("install_if", " ".join(info.install_if))
    for key, value in info.extra:
        add(key, value)
    if info.datahash:
        add("datahash", info.datahash)
    return "\n".join(lines) + "\n"
