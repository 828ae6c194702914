"""``APKINDEX`` text and ``APKINDEX.tar.gz`` container (reference/formats.md §2).

The text is a list of records separated by an empty line, each line ``<letter>:<value>``; the
letters are the ``INDEX_LETTERS`` table of ``pkginfo``. The container is
``[signature gzip member] + index gzip member``, the index member holding a tar with ``APKINDEX``
and ``DESCRIPTION``; the signatures cover the compressed bytes of the index member.

The record codec is shared with the installed database (``installed_db``), whose records start
with the same header lines.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import FormatError, NanodistroError
from nanodistro.formats.gzipstream import gzip_member, gzip_members
from nanodistro.formats.pkginfo import INDEX_LETTERS, PackageInfo
from nanodistro.formats.signature import (
    SIGNATURE_ALGORITHMS,
    BadSignatureError,
    Keyring,
    SignatureEntry,
    SigningKey,
    UntrustedSignatureError,
    find_key,
    read_signature_entries,
    signature_member,
    split_signature,
    verify,
)
from nanodistro.formats.tarentry import TarEntry
from nanodistro.formats.tarread import read_tar
from nanodistro.formats.tarwrite import write_tar
from nanodistro.formats.version import compare as compare_versions

# Tar/gzip parts are imported from their own modules, not ``tarball``: that one also loads
# extraction, directory walking and parallel compression, which reading an index never uses.

# Letter -> attribute, split by how the value is decoded. Built once from the shared table so the
# per-line work of the parser is one dict lookup.
_STR_LETTERS = {letter: attr for letter, (attr, kind) in INDEX_LETTERS.items() if kind == "str"}
_INT_LETTERS = {letter: attr for letter, (attr, kind) in INDEX_LETTERS.items() if kind == "int"}
_LIST_LETTERS = {letter: attr for letter, (attr, kind) in INDEX_LETTERS.items() if kind == "list"}


def split_list_value(value: str) -> list[str]:
    """Split a dependency-style list on runs of spaces, tolerating trailing ones (AT ctype.c).

    apko renders Go slices without ``join`` (``i:[]``, ``i:[a b]``, formats.md §2.2 quirk); the
    brackets are not part of any atom, so they are dropped here.
    """
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return value.split()


def parse_uint(value: str, *, where: str, line: int | None, field_name: str) -> int:
    # int() alone would also accept "1_000", "+5", " 5" and non-ASCII digits; AT does not.
    if value.isascii() and value.isdigit():
        return int(value)
    raise FormatError(
        f"expected a non-negative integer, got {value[:40]!r}",
        where=where,
        line=line,
        field=field_name,
    )


def split_letter_line(text: str, *, where: str, line: int) -> tuple[str, str]:
    """``"P:zlib"`` -> ``("P", "zlib")``: one line of an index or installed-db record."""
    if text[1:2] != ":":
        raise FormatError(f"expected '<letter>:<value>', got {text[:60]!r}", where=where, line=line)
    return text[0], text[2:]


def apply_header_line(
    fields: dict[str, Any], letter: str, value: str, *, where: str, line: int
) -> bool:
    """Store one APKINDEX header line into ``fields`` (PackageInfo kwargs).

    Returns False for a letter that is not an index header letter. Scalars: last value wins;
    lists: values accumulate (as AT appends dependencies).
    """
    attr = _STR_LETTERS.get(letter)
    if attr is not None:
        fields[attr] = value
        return True
    attr = _LIST_LETTERS.get(letter)
    if attr is not None:
        items = split_list_value(value)
        existing = fields.get(attr)
        if existing is None:
            fields[attr] = items
        else:
            existing.extend(items)
        return True
    attr = _INT_LETTERS.get(letter)
    if attr is not None:
        fields[attr] = parse_uint(value, where=where, line=line, field_name=f"{letter}:")
        return True
    return False


def finish_record(
    fields: dict[str, Any], extra: list[tuple[str, str]], *, where: str, line: int
) -> PackageInfo:
    if not fields.get("name"):
        raise FormatError("record has no 'P:' (package name) line", where=where, line=line)
    if not fields.get("version"):
        raise FormatError(
            f"record for {fields['name']!r} has no 'V:' (version) line", where=where, line=line
        )
    return PackageInfo(**fields, extra=extra)


_ATTR_OF = {letter: attr for letter, (attr, _kind) in INDEX_LETTERS.items()}


_INFO_FIELDS = dataclasses.fields(PackageInfo)
#: Plain defaults (shared safely: strings, ints, None) and per-instance factories of PackageInfo.
_SCALAR_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in _INFO_FIELDS if f.default is not dataclasses.MISSING
}
_INDEX_LIST_ATTRS = tuple(_LIST_LETTERS.values())  # depends, provides, install_if
_OTHER_FACTORIES = tuple(
    (f.name, f.default_factory)
    for f in _INFO_FIELDS
    if f.default_factory is not dataclasses.MISSING and f.name not in _INDEX_LIST_ATTRS
)
# A PackageInfo field without a default could not be built without __init__: use the general
# parser then (slower, same result).
# parse_apkindex_text also relies on every PackageInfo being true (``all(infos)`` spots a None).
_FAST_PATH_OK = len(_SCALAR_DEFAULTS) + len(_INDEX_LIST_ATTRS) + len(_OTHER_FACTORIES) == len(
    _INFO_FIELDS
) and not any(hasattr(PackageInfo, name) for name in ("__bool__", "__len__"))
_INT_ATTRS = tuple(_INT_LETTERS.values())
#: Every field in declaration order (as ``__init__`` would set them), lists as placeholders: a
#: copy has its final size, so filling it in never grows the dict.
_STATE_TEMPLATE: dict[str, Any] = {f.name: _SCALAR_DEFAULTS.get(f.name) for f in _INFO_FIELDS}
#: "C" -> "checksum".
_ATTR_OF_LETTER = {letter: attr for letter, attr in _ATTR_OF.items()}
_new_object = object.__new__


def _fast_record(
    lines: list[str], attr_of_letter: dict[str, str] = _ATTR_OF_LETTER
) -> PackageInfo | None:
    """Decode a well-formed record; None means "take the general parser" (malformed line,
    repeated or unknown letter, bad integer, missing name), which keeps extras in order and
    reports exact lines.

    This is the hot loop of reading an index with thousands of packages: one dict
    comprehension per record, and the instance is built without ``__init__``
    (``test_fast_path_equals_general_parser`` checks both paths agree). Letters are looked up
    as ``line[0]`` and the colon compared as ``line[1]``: one-character strings are not
    allocated, a two-character slice per line would be.
    """
    try:
        fields = {attr_of_letter[line[0]]: line[2:] for line in lines if line[1] == ":"}
    except (KeyError, IndexError):  # unknown letter, empty or one-character line
        return None
    return _record_from_fields(fields, len(lines))


def _record_from_fields(fields: dict[str, str], line_count: int) -> PackageInfo | None:
    if len(fields) != line_count:  # a repeated letter or a line without the colon
        return None
    state = _STATE_TEMPLATE.copy()
    state.update(fields)
    for attr in _INT_ATTRS:
        value = state[attr]
        if value is not None:
            if not (value.isascii() and value.isdigit()):
                return None
            state[attr] = int(value)
    for attr in _INDEX_LIST_ATTRS:
        value = fields.get(attr)
        if value is None:
            state[attr] = []
        else:
            state[attr] = value.split() if value[:1] != "[" else split_list_value(value)
    for attr, factory in _OTHER_FACTORIES:
        state[attr] = factory()
    if not state["name"] or not state["version"]:
        return None
    info: PackageInfo = _new_object(PackageInfo)
    info.__dict__ = state
    return info


def _parse_lines(lines: list[str], where: str, first_line: int) -> list[PackageInfo]:
    """The general parser: any number of records in ``lines``, exact line numbers in errors."""
    packages: list[PackageInfo] = []
    fields: dict[str, Any] = {}
    extra: list[tuple[str, str]] = []
    start = first_line
    for lineno, line in enumerate(lines, start=first_line):
        if not line:
            if fields or extra:
                packages.append(finish_record(fields, extra, where=where, line=start))
                fields = {}
                extra = []
            start = lineno + 1
            continue
        letter, value = split_letter_line(line, where=where, line=lineno)
        if not apply_header_line(fields, letter, value, where=where, line=lineno):
            extra.append((letter, value))
    if fields or extra:
        packages.append(finish_record(fields, extra, where=where, line=start))
    return packages


def parse_apkindex_text(text: str, where: str = "APKINDEX") -> list[PackageInfo]:
    """Parse ``APKINDEX`` text into one ``PackageInfo`` per record, in file order.

    Unknown letters are kept in ``extra`` (AT ignores unknown lower-case letters and marks the
    package uninstallable for unknown upper-case ones; we keep both so the text can be reproduced).
    """
    records = text.split("\n\n")
    if _FAST_PATH_OK:
        infos = [_fast_record(record.split("\n")) for record in records if record]
        if all(infos):  # only a None is false (_FAST_PATH_OK checks PackageInfo)
            return infos  # type: ignore[return-value]
    packages: list[PackageInfo] = []
    append = packages.append
    lineno, counted = 1, 0  # first line number of records[counted]
    for number, record in enumerate(records):
        if not record:
            continue
        lines = record.split("\n")
        info = _fast_record(lines) if _FAST_PATH_OK else None
        if info is None:
            # Rare: count lines up to this record only when the general parser needs them.
            while counted < number:
                lineno += records[counted].count("\n") + 2
                counted += 1
            packages.extend(_parse_lines(lines, where, lineno))
        else:
            append(info)
    return packages


def _check_value(value: str, letter: str, info: PackageInfo) -> str:
    if "\n" in value:
        raise FormatError(
            f"value contains a newline: {value[:60]!r}",
            where=f"{info.name}-{info.version}",
            field=f"{letter}:",
        )
    return value


def format_record_header(info: PackageInfo, out: list[str]) -> None:
    """Append the index header lines of ``info`` in apk-tools order.

    Order and omissions as ``apk_pkg_write_index_header`` (AT src/package.c):
    ``C P V [A] S I T U L [o] [m] [t] [c] [k] [D] [p] [i]``. Deviation kept for round trips:
    ``t``/``k`` are written whenever set, so apko's ``t:0``/``k:0`` survive.
    """
    check = _check_value
    if info.checksum is not None:
        out.append("C:" + check(info.checksum, "C", info))
    out.append("P:" + check(info.name, "P", info))
    out.append("V:" + check(info.version, "V", info))
    if info.arch:
        out.append("A:" + check(info.arch, "A", info))
    if info.file_size is not None:
        out.append(f"S:{info.file_size}")
    if info.installed_size is not None:
        out.append(f"I:{info.installed_size}")
    out.append("T:" + check(info.description, "T", info))
    out.append("U:" + check(info.url, "U", info))
    out.append("L:" + check(info.license, "L", info))
    if info.origin:
        out.append("o:" + check(info.origin, "o", info))
    if info.maintainer:
        out.append("m:" + check(info.maintainer, "m", info))
    if info.builddate is not None:
        out.append(f"t:{info.builddate}")
    if info.commit:
        out.append("c:" + check(info.commit, "c", info))
    if info.provider_priority is not None:
        out.append(f"k:{info.provider_priority}")
    for letter, values in (("D", info.depends), ("p", info.provides), ("i", info.install_if)):
        if values:
            out.append(letter + ":" + check(" ".join(values), letter, info))


def format_extra(info: PackageInfo, out: list[str]) -> None:
    for letter, value in info.extra:
        if len(letter) != 1 or letter in "\n:":
            raise FormatError(
                f"unknown field {letter!r} cannot be written as an index letter",
                where=f"{info.name}-{info.version}",
            )
        out.append(letter + ":" + _check_value(value, letter, info))


def sort_packages(packages: Iterable[PackageInfo]) -> list[PackageInfo]:
    """Sort by name, then version (apk version order; newest last), then identity."""

    def cmp(a: PackageInfo, b: PackageInfo) -> int:
        if a.name != b.name:
            return -1 if a.name < b.name else 1
        if a.version != b.version:
            try:
                result = compare_versions(a.version, b.version)
            except NanodistroError:  # an invalid version still gets a stable place
                result = 0
            if result:
                return -1 if result < 0 else 1
            return -1 if a.version < b.version else 1
        ac, bc = a.checksum or "", b.checksum or ""
        return (ac > bc) - (ac < bc)

    return sorted(packages, key=functools.cmp_to_key(cmp))


def format_apkindex_text(packages: Iterable[PackageInfo]) -> str:
    """Render ``APKINDEX`` text: records sorted by name then version, file ends with ``\\n\\n``."""
    out: list[str] = []
    for info in sort_packages(packages):
        format_record_header(info, out)
        format_extra(info, out)
        out.append("")
    out.append("")
    return "\n".join(out) if len(out) > 1 else ""


# --------------------------------------------------------------------------------------------
# APKINDEX.tar.gz container

INDEX_NAME = "APKINDEX"
DESCRIPTION_NAME = "DESCRIPTION"
#: Ceiling for the inflated index. Alpine's largest (community) inflates to about 10 MB and
#: Wolfi's, holding every version ever published, to about 100 MB; parsing multiplies the
#: memory several times over, so a hostile index is refused well before that hurts.
MAX_INDEX_INFLATED = 256 * 1024**2


@dataclass
class ApkIndex:
    packages: list[PackageInfo]
    description: str | None = None
    signatures: list[SignatureEntry] = field(default_factory=list)
    #: Key file name whose signature verified (None when read without a keyring).
    verified_by: str | None = None
    #: Newest tar mtime of the ``APKINDEX``/``DESCRIPTION`` entries: when the indexer made it
    #: (v2 indexes have no date field); replay protection compares it (``resolve.replay``).
    timestamp: int = 0

    def by_filename(self) -> dict[str, PackageInfo]:
        return {info.filename: info for info in self.packages}


def index_record(info: PackageInfo) -> PackageInfo:
    """The part of a package's metadata an APKINDEX carries: the ``INDEX_LETTERS`` fields only.

    ``.PKGINFO``-only facts (packager, datahash, replaces, triggers, unknown keys) are dropped,
    as ``apk index`` does; ``C:``/``S:`` must already be set (``read_apk`` sets them).
    """
    record = PackageInfo()
    for attr, kind in INDEX_LETTERS.values():
        value = getattr(info, attr)
        setattr(record, attr, list(value) if kind == "list" else value)
    return record


def _decode_text(data: bytes, *, where: str, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(
            f"{name} is not UTF-8 text (byte {error.start})", where=where, field=name
        ) from None


def verify_index_signatures(
    signatures: list[SignatureEntry], signed: bytes, keyring: Keyring, *, where: str
) -> str:
    """Return the key file name of a valid signature by a trusted key over ``signed``.

    Any one valid trusted signature is enough (an index may carry several, e.g. during a key
    rotation, formats.md §2.1 ``signing/``). ``BadSignatureError`` when trusted keys signed but
    none matches, ``UntrustedSignatureError`` when no signature is by a key in ``keyring``.
    """
    if not signatures:
        raise UntrustedSignatureError("index is not signed", where=where)
    bad: list[str] = []
    for entry in signatures:
        if entry.algorithm not in SIGNATURE_ALGORITHMS:
            continue  # DSA and unknown algorithms are skipped, as apko does
        found = find_key(keyring, entry.keyname)
        if found is None:
            continue
        keyname, pem = found
        if verify(pem, signed, entry.signature, entry.algorithm):
            return keyname
        bad.append(entry.name)
    if bad:
        raise BadSignatureError(
            f"BAD signature: {', '.join(bad)} does not match the index", where=where
        )
    names = ", ".join(entry.name for entry in signatures)
    raise UntrustedSignatureError(f"UNTRUSTED: no key in the keyring for {names}", where=where)


def verify_index(data: bytes, *, where: str, keyring: Keyring) -> str:
    """Check the signature of ``APKINDEX.tar.gz`` bytes; the key file name that verified.

    Trust first, as apk-tools: only the small signature member is inflated before the
    signature over the rest of the file is checked.
    """
    entries, signed_from = split_signature(data, where=where)
    return verify_index_signatures(entries, data[signed_from:], keyring, where=where)


def read_index(
    data: bytes,
    *,
    where: str,
    keyring: Keyring | None = None,
    max_inflated: int = MAX_INDEX_INFLATED,
) -> ApkIndex:
    """Read ``APKINDEX.tar.gz`` bytes.

    With a ``keyring`` the signature over the index member(s) is verified first (DESIGN
    invariant 5); without one the signatures are only reported.
    """
    verified_by = None if keyring is None else verify_index(data, where=where, keyring=keyring)
    members = gzip_members(data, where=where, max_inflated=max_inflated)
    signatures: list[SignatureEntry] = []
    index_members = members
    if len(members) > 1:
        found = read_signature_entries(members[0].inflated, where=where)
        if found is not None:
            signatures = found
            index_members = members[1:]
    tar_bytes = (
        index_members[0].inflated
        if len(index_members) == 1
        else b"".join(m.inflated for m in index_members)
    )
    text: str | None = None
    description: str | None = None
    timestamp = 0
    for entry in read_tar(tar_bytes, where=where):
        if entry.type != "file":
            continue
        if entry.path in (INDEX_NAME, DESCRIPTION_NAME):
            timestamp = max(timestamp, entry.mtime)
        if entry.path == INDEX_NAME:
            text = _decode_text(entry.data, where=where, name=INDEX_NAME)
        elif entry.path == DESCRIPTION_NAME:
            description = _decode_text(entry.data, where=where, name=DESCRIPTION_NAME)
    if text is None:
        raise FormatError("no APKINDEX entry in the index archive", where=where)
    packages = parse_apkindex_text(text, where=f"{where}!APKINDEX")
    return ApkIndex(packages, description, signatures, verified_by, timestamp)


def write_index(
    packages: Iterable[PackageInfo],
    *,
    description: str | None = None,
    key: SigningKey | None = None,
    source_date_epoch: int = 0,
    algorithm: str = "RSA256",
) -> bytes:
    """``APKINDEX.tar.gz`` bytes: optional signature member + gzip(tar(DESCRIPTION, APKINDEX)).

    Deterministic: fixed mtimes (``source_date_epoch``), root owner, gzip without time or name,
    PKCS#1 v1.5 signatures. Entry order and EOA as apk-tools ``apk index`` (AT src/app_index.c).
    """
    entries: list[TarEntry] = []
    if description is not None:
        entries.append(
            TarEntry(
                path=DESCRIPTION_NAME,
                mode=0o644,
                mtime=source_date_epoch,
                data=description.encode("utf-8"),
            )
        )
    entries.append(
        TarEntry(
            path=INDEX_NAME,
            mode=0o644,
            mtime=source_date_epoch,
            data=format_apkindex_text(packages).encode("utf-8"),
        )
    )
    index_member = gzip_member(write_tar(entries, end_of_archive=True))
    if key is None:
        return index_member
    return signature_member(key, index_member, algorithm, mtime=source_date_epoch) + index_member


def __getattr__(name: str) -> Any:
    # ``package_identity`` is re-exported for callers of this module; the package codec it
    # lives in is loaded on first use only (reading an index never needs it).
    if name == "package_identity":
        from nanodistro.formats.apk import identity

        return identity
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ApkIndex",
    "Keyring",
    "SigningKey",
    "format_apkindex_text",
    "index_record",
    "package_identity",  # noqa: F822 - provided by the module __getattr__ above
    "parse_apkindex_text",
    "read_index",
    "sort_packages",
    "verify_index",
    "verify_index_signatures",
    "write_index",
]
