"""Reading a Debian archive: Release and Sources indexes, version strings, orig tarball names.

Formats as Debian Policy and the archive define them: deb822 stanzas (Policy §5.1), the Release
file's ``SHA256`` list (https://wiki.debian.org/DebianRepository/Format), the version
``[epoch:]upstream[-revision]`` (Policy §5.6.12) and source file names
``<source>_<upstream>.orig.tar.<comp>`` (``<source>_<version>.tar.<comp>`` for native packages).
Pure functions: the provider (``providers/debian.py``) does the fetching and verification.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nanodistro.builder.mirrors import APT_SOURCE_FILES, apt_source_texts

_COMPRESSIONS = ("gz", "bz2", "xz", "lzma", "zst")
_FIELDS_KEPT = ("Package", "Version", "Directory", "Checksums-Sha256")


def deb822(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a deb822 document; continuation lines are joined with newlines."""
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        last = None
        for line in block.splitlines():
            if not line or line.startswith("#"):
                continue
            if line[0] in " \t":
                if last is not None:
                    fields[last] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            last = key.strip()
            fields[last] = value.strip()
        if fields:
            yield fields


@dataclass(frozen=True)
class IndexFile:
    """One file a Release lists: its path under ``dists/<suite>/``, sha256 and size."""

    path: str
    sha256: str
    size: int


def release_files(release: dict[str, str]) -> dict[str, IndexFile]:
    """The Release's ``SHA256`` entries by path (``main/source/Sources.xz`` ...)."""
    files: dict[str, IndexFile] = {}
    for line in release.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3 and re.fullmatch(r"[0-9a-f]{64}", parts[0]) and parts[1].isdigit():
            files[parts[2]] = IndexFile(parts[2], parts[0], int(parts[1]))
    return files


def sources_index(release: dict[str, str], component: str) -> IndexFile | None:
    """The compressed Sources index of ``component`` the Release vouches for (xz, then gz)."""
    files = release_files(release)
    for suffix in (".xz", ".gz"):
        found = files.get(f"{component}/source/Sources{suffix}")
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class SourceEntry:
    """A source package version in a Sources index: what the monitor needs of its stanza."""

    package: str
    version: str
    directory: str
    files: tuple[tuple[str, str, int], ...]  # (name, sha256, size)


def parse_sources(text: str) -> dict[str, list[SourceEntry]]:
    """Every stanza of a Sources index, by source package name (only the fields used)."""
    index: dict[str, list[SourceEntry]] = {}
    for stanza in deb822(text):
        name, version = stanza.get("Package"), stanza.get("Version")
        if not name or not version:
            continue
        files = []
        for line in stanza.get("Checksums-Sha256", "").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                files.append((parts[2], parts[0], int(parts[1])))
        entry = SourceEntry(name, version, stanza.get("Directory", ""), tuple(files))
        index.setdefault(name, []).append(entry)
    return index


def split_version(version: str) -> tuple[int, str, str]:
    """``[epoch:]upstream[-revision]`` into its parts (epoch 0, revision "" when absent)."""
    epoch = 0
    head, sep, rest = version.partition(":")
    if sep and head.isdigit():
        epoch, version = int(head), rest
    upstream, sep, revision = version.rpartition("-")
    if not sep:
        return epoch, version, ""
    return epoch, upstream, revision


# A stable update, backport or non-maintainer upload of a native package (ca-certificates
# 20230311+deb12u1, 20260816+nmu1), or a binNMU: not a different upstream release.
_STABLE_SUFFIX = re.compile(r"(?:[+~](?:deb\d+u\d+|bpo\d+(?:\+\d+)?)|\+(?:b|nmu)\d+)+$")
# Repacks: the same upstream release with files removed (DFSG) or re-compressed.
_REPACK = re.compile(r"[.+~](?:dfsg|ds|repack)(?:\.?\d+)?(?=$|[.+~])", re.IGNORECASE)
_PRE = re.compile(r"~(alpha|beta|pre|rc)\.?(\d*)", re.IGNORECASE)


def upstream_version(debian_version: str) -> tuple[str, bool]:
    """The upstream release a Debian version packages, and whether it is a pre-release.

    ``1:1.3.dfsg+really1.3.1-1`` -> ``1.3.1`` (``+really`` names what is really inside),
    ``1.2.13.dfsg-1`` -> ``1.2.13``, ``20230311+deb12u1`` -> ``20230311``,
    ``2.0~rc1-1`` -> ``2.0_rc1`` (APK's pre-release spelling; ``~`` sorts before the release
    in Debian as ``_rc`` does in APK), any other ``~`` is a pre-release too.
    """
    _, upstream, _ = split_version(debian_version)
    upstream = _STABLE_SUFFIX.sub("", upstream)
    if "+really" in upstream:
        upstream = upstream.rsplit("+really", 1)[1]
    upstream = _REPACK.sub("", upstream)
    upstream = _STABLE_SUFFIX.sub("", upstream)
    prerelease = "~" in upstream
    upstream = _PRE.sub(lambda m: f"_{m[1].lower()}{m[2]}", upstream)
    return upstream, prerelease


def source_tarball(entry: SourceEntry) -> tuple[str, str, int] | None:
    """(name, sha256, size) of the entry's orig tarball (a native package's only tarball);
    component tarballs (``.orig-NAME.tar``) and signatures (``.asc``) are not it."""
    _, upstream, revision = split_version(entry.version)
    stem = f"{entry.package}_{upstream}"
    wanted = (
        [rf"{re.escape(stem)}\.orig\.tar\.(?:{'|'.join(_COMPRESSIONS)})"]
        if revision
        else [rf"{re.escape(stem)}\.tar\.(?:{'|'.join(_COMPRESSIONS)})"]
    )
    for pattern in wanted:
        for name, sha256, size in entry.files:
            if re.fullmatch(pattern, name):
                return name, sha256, size
    return None


def _order(char: str) -> int:
    # dpkg's lexical order: '~' before everything (even the end), letters before non-letters
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    while a or b:
        lead_a = re.match(r"[^\d]*", a)[0]  # type: ignore[index]
        lead_b = re.match(r"[^\d]*", b)[0]  # type: ignore[index]
        for i in range(max(len(lead_a), len(lead_b))):
            ca = _order(lead_a[i]) if i < len(lead_a) else 0
            cb = _order(lead_b[i]) if i < len(lead_b) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(lead_a) :], b[len(lead_b) :]
        num_a = re.match(r"\d*", a)[0]  # type: ignore[index]
        num_b = re.match(r"\d*", b)[0]  # type: ignore[index]
        if int(num_a or 0) != int(num_b or 0):
            return -1 if int(num_a or 0) < int(num_b or 0) else 1
        a, b = a[len(num_a) :], b[len(num_b) :]
    return 0


def compare_versions(a: str, b: str) -> int:
    """dpkg's version comparison (Policy §5.6.12): -1, 0 or 1."""
    ea, ua, ra = split_version(a)
    eb, ub, rb = split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def apt_suite(sources: tuple[Path, ...] = APT_SOURCE_FILES) -> str | None:
    """The suite of the host's first Debian archive entry in its apt sources, or None."""
    for path, text in apt_source_texts(sources):
        if path.suffix == ".sources":
            for stanza in deb822(text):
                uris = stanza.get("URIs", "").split()
                suites = stanza.get("Suites", "").split()
                if suites and any(u.rstrip("/").endswith("/debian") for u in uris):
                    return suites[0]
            continue
        for line in text.splitlines():
            match = re.match(r"^deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
            if match and match[1].rstrip("/").endswith("/debian"):
                return match[2]
    return None


def os_release_codename(path: Path = Path("/etc/os-release")) -> str | None:
    """``VERSION_CODENAME`` of the host (bookworm, trixie), or None."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"^VERSION_CODENAME=\"?([\w-]+)\"?$", text, re.MULTILINE)
    return match[1] if match else None
