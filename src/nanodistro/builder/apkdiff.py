"""Compare two ``.apk`` files member by member and tar entry by tar entry.

Used by the reproducibility report (builder/reproducibility.py): when a rebuilt package's bytes
differ from the published ones, the report names every differing path and what differs about it
(type, mode, owner, mtime, content digest, link target, device numbers, xattrs), so the cause
(a build time embedded in a file, a umask-dependent mode, ...) can be found without unpacking
anything. Pure: bytes in, differences out.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from nanodistro.formats.apk import ApkPackage, read_apk
from nanodistro.formats.tarball import TarEntry

# Small text files (control files, a stamp file) get their differing lines in the detail; past
# this size only digests are shown.
_TEXT_DIFF_LIMIT = 16 * 1024
_DIFF_LINES = 4
_LINE_WIDTH = 100


@dataclass(frozen=True)
class EntryDifference:
    """One difference: in ``member`` (signature, control or data), at ``path`` ("" for the
    member as a whole), of the attributes in ``fields``; ``detail`` says published vs rebuilt."""

    member: str
    path: str
    fields: tuple[str, ...]
    detail: str

    def __str__(self) -> str:
        where = f"{self.member}: {self.path}" if self.path else self.member
        return f"{where}: {self.detail}"

    def to_json(self) -> dict[str, object]:
        return {
            "member": self.member,
            "path": self.path,
            "fields": list(self.fields),
            "detail": self.detail,
        }


def compare_apks(
    published: bytes, rebuilt: bytes, *, where: str, signature: bool = True
) -> list[EntryDifference]:
    """What differs between two packages ([] when they are the same bytes). Without
    ``signature`` the signature members are not compared (a rebuild without the signing key)."""
    if published == rebuilt:
        return []
    old = read_apk(published, where=f"{where} (published)")
    new = read_apk(rebuilt, where=f"{where} (rebuilt)")
    differences = [
        *_compare_entries("control", old.control_entries, new.control_entries),
        *_compare_entries("data", old.entries, new.entries),
    ]
    for name in ("control", "data"):
        if not any(d.member == name for d in differences) and _raw(old, name) != _raw(new, name):
            differences.append(
                EntryDifference(
                    name,
                    "",
                    ("compression",),
                    "every entry is equal but the compressed member differs (gzip or tar framing)",
                )
            )
    if signature and not differences:
        old_sig = old.signature.raw if old.signature else b""
        new_sig = new.signature.raw if new.signature else b""
        if old_sig != new_sig:
            names = sorted({s.name for s in old.signatures} | {s.name for s in new.signatures})
            differences.append(
                EntryDifference(
                    "signature",
                    "",
                    ("signature",),
                    f"control and data are identical; the signatures differ ({', '.join(names)}): "
                    "signed with another key?",
                )
            )
    return differences


def _raw(pkg: ApkPackage, member: str) -> bytes:
    return pkg.control.raw if member == "control" else pkg.data.raw


def _compare_entries(
    member: str, old: Sequence[TarEntry], new: Sequence[TarEntry]
) -> list[EntryDifference]:
    old_by_path = {e.path: e for e in old}
    new_by_path = {e.path: e for e in new}
    differences: list[EntryDifference] = []
    for path in sorted(old_by_path.keys() | new_by_path.keys()):
        before, after = old_by_path.get(path), new_by_path.get(path)
        if before is None:
            differences.append(
                EntryDifference(member, path, ("presence",), "only in the rebuilt package")
            )
        elif after is None:
            differences.append(
                EntryDifference(member, path, ("presence",), "only in the published package")
            )
        else:
            found = _entry_difference(member, before, after)
            if found is not None:
                differences.append(found)
    if not differences and [e.path for e in old] != [e.path for e in new]:
        differences.append(
            EntryDifference(member, "", ("order",), "the same entries in another order")
        )
    return differences


def _entry_difference(member: str, old: TarEntry, new: TarEntry) -> EntryDifference | None:
    fields: list[str] = []
    details: list[str] = []

    def differ(name: str, before: object, after: object, shown: str | None = None) -> None:
        if before != after:
            fields.append(name)
            details.append(shown or f"{name} {before} -> {after}")

    differ("type", old.type, new.type)
    differ("mode", old.mode, new.mode, f"mode {old.mode:04o} -> {new.mode:04o}")
    differ(
        "owner",
        (old.uid, old.gid, old.uname, old.gname),
        (new.uid, new.gid, new.uname, new.gname),
        f"owner {old.uid}:{old.gid} ({old.uname}:{old.gname}) -> "
        f"{new.uid}:{new.gid} ({new.uname}:{new.gname})",
    )
    differ("mtime", old.mtime, new.mtime)
    if old.data != new.data:
        fields.append("content")
        details.append(_content_detail(old.data, new.data))
    differ("link", old.linkname, new.linkname, f"link {old.linkname!r} -> {new.linkname!r}")
    differ("device", (old.devmajor, old.devminor), (new.devmajor, new.devminor))
    if old.xattrs != new.xattrs:
        names = sorted(
            k
            for k in old.xattrs.keys() | new.xattrs.keys()
            if old.xattrs.get(k) != new.xattrs.get(k)
        )
        fields.append("xattrs")
        details.append(f"xattrs {', '.join(names)}")
    if not fields:
        return None
    return EntryDifference(member, old.path, tuple(fields), "; ".join(details))


def _content_detail(old: bytes, new: bytes) -> str:
    digest = (
        f"content sha256 {hashlib.sha256(old).hexdigest()[:12]} -> "
        f"{hashlib.sha256(new).hexdigest()[:12]} ({len(old)} -> {len(new)} bytes)"
    )
    if max(len(old), len(new)) > _TEXT_DIFF_LIMIT:
        return digest
    try:
        before, after = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        return digest
    removed, added = [], []
    for line in difflib.unified_diff(before, after, lineterm="", n=0):
        if line.startswith(("---", "+++")):
            continue
        if line[:1] == "-":
            removed.append(line[1:])
        elif line[:1] == "+":
            added.append(line[1:])
    if not removed and not added:
        return digest
    shown: list[str] = []
    for index in range(max(len(removed), len(added))):
        old_line = removed[index] if index < len(removed) else None
        new_line = added[index] if index < len(added) else None
        # long lines (JSON, minified text) are cut around where the pair starts to differ
        start = _common_prefix(old_line or "", new_line or "") if old_line and new_line else 0
        shown += [f"-{_window(old_line, start)}"] if old_line is not None else []
        shown += [f"+{_window(new_line, start)}"] if new_line is not None else []
    more = f" (+{len(shown) - _DIFF_LINES} more)" if len(shown) > _DIFF_LINES else ""
    return f"{digest}: {' | '.join(shown[:_DIFF_LINES])}{more}"


def _common_prefix(a: str, b: str) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def _window(line: str, start: int) -> str:
    """``line`` cut to ``_LINE_WIDTH`` characters, keeping position ``start`` in view."""
    if len(line) <= _LINE_WIDTH:
        return line.strip()
    begin = max(0, min(start - _LINE_WIDTH // 3, len(line) - _LINE_WIDTH))
    text = line[begin : begin + _LINE_WIDTH]
    return ("…" if begin else "") + text + ("…" if begin + _LINE_WIDTH < len(line) else "")
