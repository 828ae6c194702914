"""builder/apkdiff: two packages compared entry by entry, every kind of difference named."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanodistro.builder.apkdiff import compare_apks
from nanodistro.formats.apk import write_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.tarball import TarEntry
from signing_keys import make_key

SDE = 1_700_000_000


def entries(changes: dict[str, dict[str, object]] | None = None) -> list[TarEntry]:
    """A small package tree, with ``changes`` (path -> TarEntry fields; type "gone" drops it)."""
    tree: dict[str, dict[str, object]] = {
        "usr": {"type": "dir", "mode": 0o755},
        "usr/bin": {"type": "dir", "mode": 0o755},
        "usr/bin/tool": {"mode": 0o755, "data": b"\x7fELF binary"},
        "usr/share/stamp": {"data": b"built at 1700000000\n"},
        "usr/lib/link.so": {"type": "symlink", "linkname": "real.so.1"},
    }
    for path, values in (changes or {}).items():
        tree[path] = {**tree.get(path, {}), **values}
    return [
        TarEntry(path, **{"mtime": SDE, **values})  # type: ignore[arg-type]
        for path, values in sorted(tree.items())
        if values.get("type") != "gone"
    ]


def apk(key: object, items: list[TarEntry], **info: object) -> bytes:
    pkginfo = PackageInfo(name="tool", version="1.0-r0", arch="x86_64", **info)  # type: ignore[arg-type]
    return write_apk(pkginfo, items, key=key, source_date_epoch=SDE)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> object:
    return make_key(tmp_path_factory.mktemp("keys"))[0]


def test_same_bytes_have_no_differences(key: object) -> None:
    data = apk(key, entries())
    assert compare_apks(data, apk(key, entries()), where="tool") == []


def test_each_differing_attribute_is_named_with_its_path(key: object) -> None:
    published = apk(key, entries())
    rebuilt = apk(
        key,
        entries(
            {
                "usr/share/stamp": {"data": b"built at 1733600000\n"},
                "usr/bin/tool": {"mode": 0o775, "uid": 1000, "uname": "build"},
                "usr/lib/link.so": {"linkname": "real.so.2"},
                "usr/bin": {"mtime": SDE + 1, "xattrs": {"user.note": b"x"}},
            }
        ),
    )
    found = {(d.member, d.path): d for d in compare_apks(published, rebuilt, where="tool")}
    stamp = found[("data", "usr/share/stamp")]
    assert stamp.fields == ("content",)
    assert "-built at 1700000000 | +built at 1733600000" in stamp.detail
    assert found[("data", "usr/bin/tool")].fields == ("mode", "owner")
    assert "mode 0755 -> 0775" in found[("data", "usr/bin/tool")].detail
    assert found[("data", "usr/lib/link.so")].fields == ("link",)
    assert found[("data", "usr/bin")].fields == ("mtime", "xattrs")
    assert "xattrs user.note" in found[("data", "usr/bin")].detail
    # the data member changed, so .PKGINFO's datahash did too: named, with the line
    pkginfo = found[("control", ".PKGINFO")]
    assert "content" in pkginfo.fields and "datahash = " in pkginfo.detail
    assert ("data", "usr") not in found  # equal entries are not listed
    assert str(stamp).startswith("data: usr/share/stamp: content sha256 ")


def test_entries_only_on_one_side(key: object) -> None:
    published = apk(key, entries())
    rebuilt = apk(key, entries({"usr/share/stamp": {"type": "gone"}, "usr/share/new": {}}))
    found = {d.path: d.detail for d in compare_apks(published, rebuilt, where="tool")}
    assert found["usr/share/stamp"] == "only in the published package"
    assert found["usr/share/new"] == "only in the rebuilt package"


def test_signature_alone_differs_with_another_key(key: object, tmp_path: Path) -> None:
    other = make_key(tmp_path, "other")[0]
    published, rebuilt = apk(key, entries()), apk(other, entries())
    (difference,) = compare_apks(published, rebuilt, where="tool")
    assert difference.member == "signature" and "another key" in difference.detail
    # without a signing key for the rebuild only control and data are compared
    assert compare_apks(published, rebuilt, where="tool", signature=False) == []
