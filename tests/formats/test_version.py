"""APK versions and dependency atoms against apk-tools' own test vectors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanodistro.errors import VersionError
from nanodistro.formats import version as V
from nanodistro.formats.version import Dependency, parse_dependencies, parse_dependency


def _rows(path: Path) -> list[str]:
    rows = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            rows.append(line)
    return rows


def _row_passes(row: str) -> bool:
    parts = row.split()
    if len(parts) == 1:
        text = parts[0]
        return not V.is_valid(text[1:]) if text.startswith("!") else V.is_valid(text)
    left, op, right = parts
    mask = V.op_mask(op.lstrip("!"))
    if op.startswith("!"):
        mask |= V.CONFLICT
    return V.match(left, mask, right)


def test_version_data_all_rows(third_party: Path, scoreboard: Callable[[str], None]) -> None:
    rows = _rows(third_party / "alpinelinux+apk-tools" / "test" / "unit" / "version.data")
    failures = [row for row in rows if not _row_passes(row)]
    scoreboard(f"apk-tools version.data: {len(rows) - len(failures)}/{len(rows)} passed")
    assert len(rows) == 785
    assert failures == []


def test_compare_basics() -> None:
    assert V.compare("1.0", "1.0.1") == -1
    assert V.compare("1.0_p1", "1.0") == 1
    assert V.compare("1.0_rc1", "1.0") == -1
    assert V.compare("1.0-r1", "1.0") == 1
    assert V.compare("8.2.0015", "8.2.002") == -1
    assert V.compare("3.6.0", "3.6", fuzzy=True) == 0
    assert V.compare("2.0", "2.0") == 0
    versions = ["1.10", "1.2", "1.2_rc1", "1.2-r1", "1.2a", "0.9"]
    assert sorted(versions, key=V.version_key) == [
        "0.9",
        "1.2_rc1",
        "1.2",
        "1.2-r1",
        "1.2a",
        "1.10",
    ]


def test_validate_raises_naming_version() -> None:
    assert V.validate("1.2.3-r0") == "1.2.3-r0"
    with pytest.raises(VersionError, match=r"'1\.2-beta'"):
        V.validate("1.2-beta", where="recipe.yaml")


# Valid versions by construction of the grammar in reference/formats.md §4.1.
_number = st.integers(min_value=0, max_value=120).map(str) | st.sampled_from(["0", "01", "007"])
_suffix = st.tuples(
    st.sampled_from(["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"]),
    st.one_of(st.just(""), st.integers(0, 20).map(str)),
).map(lambda t: f"_{t[0]}{t[1]}")
_versions = st.builds(
    lambda first, rest, letter, suffixes, commit, rev: (
        str(first) + "".join("." + r for r in rest) + letter + "".join(suffixes) + commit + rev
    ),
    st.integers(0, 30),
    st.lists(_number, max_size=3),
    st.sampled_from(["", "a", "b", "z"]),
    st.lists(_suffix, max_size=2),
    st.sampled_from(["", "~1234abcd", "~ff"]),
    st.one_of(st.just(""), st.integers(0, 9).map(lambda r: f"-r{r}")),
)


@given(_versions)
def test_generated_versions_are_valid(v: str) -> None:
    assert V.is_valid(v), v
    assert V.compare(v, v) == 0


@settings(max_examples=300)
@given(_versions, _versions)
def test_order_is_antisymmetric(a: str, b: str) -> None:
    assert V.compare(a, b) == -V.compare(b, a)


@settings(max_examples=300)
@given(_versions, _versions, _versions)
def test_order_is_transitive(a: str, b: str, c: str) -> None:
    ordered = sorted([a, b, c], key=V.version_key)
    assert V.compare(ordered[0], ordered[1]) <= 0
    assert V.compare(ordered[1], ordered[2]) <= 0
    assert V.compare(ordered[0], ordered[2]) <= 0


@settings(max_examples=200)
@given(st.lists(_versions, min_size=2, max_size=8))
def test_order_is_total(vs: list[str]) -> None:
    ordered = sorted(vs, key=V.version_key)
    for i, x in enumerate(ordered):
        for y in ordered[i + 1 :]:
            assert V.compare(x, y) <= 0


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("busybox", Dependency("busybox")),
        ("musl=1.2.3-r0", Dependency("musl", V.EQUAL, "1.2.3-r0")),
        ("python3>=3.10", Dependency("python3", V.GREATER | V.EQUAL, "3.10")),
        ("foo<2", Dependency("foo", V.LESS, "2")),
        ("python3~3.11", Dependency("python3", V.EQUAL | V.FUZZY, "3.11")),
        ("!openssl", Dependency("openssl", conflict=True)),
        ("!foo<2", Dependency("foo", V.LESS, "2", conflict=True)),
        ("so:libc.so.6", Dependency("so:libc.so.6")),
        ("so:libc.musl-x86_64.so.1", Dependency("so:libc.musl-x86_64.so.1")),
        ("cmd:sh", Dependency("cmd:sh")),
        ("pc:zlib", Dependency("pc:zlib")),
        ("/bin/sh", Dependency("/bin/sh")),
        ("py3.11:setuptools", Dependency("py3.11:setuptools")),
        ("foo@edge", Dependency("foo", tag="edge")),
        ("foo@edge=1.0", Dependency("foo", V.EQUAL, "1.0", tag="edge")),
        ("foo<~2.0", Dependency("foo", V.LESS | V.EQUAL | V.FUZZY, "2.0")),
        ("foo>~2.0", Dependency("foo", V.GREATER | V.EQUAL | V.FUZZY, "2.0")),
        (
            "busybox><Q12l/v/+abc=",
            Dependency("busybox", V.CHECKSUM, "Q12l/v/+abc="),
        ),
    ],
)
def test_parse_dependency(atom: str, expected: Dependency) -> None:
    dep = parse_dependency(atom)
    assert dep == expected
    assert str(dep) == atom
    assert parse_dependency(str(dep)) == dep


def test_apko_tag_after_version() -> None:
    dep = parse_dependency("foo=1.0@edge")
    assert dep == Dependency("foo", V.EQUAL, "1.0", tag="edge")
    assert str(dep) == "foo@edge=1.0"


def test_identity_and_matching() -> None:
    dep = parse_dependency("busybox><Q1abc=")
    assert dep.identity == "Q1abc="
    assert dep.matches_version("1.0", "Q1abc=")
    assert not dep.matches_version("1.0", "Q1xyz=")
    assert parse_dependency("foo~1.2").matches_version("1.2.9-r3")
    assert not parse_dependency("foo~1.2").matches_version("1.3")
    assert parse_dependency("foo>=1.2").matches_version("1.2")
    assert parse_dependency("foo").matches_version("0.1")
    assert parse_dependency("!foo<2").matches_version("1.5")


@pytest.mark.parametrize("atom", ["", "foo=", "foo=abc", "foo=>1", "foo!bar", "=1.0", "foo bar"])
def test_invalid_atoms_name_the_atom(atom: str) -> None:
    with pytest.raises(VersionError) as info:
        parse_dependency(atom, where="APKINDEX")
    assert repr(atom) in str(info.value)


def test_parse_dependencies_lists() -> None:
    deps = parse_dependencies("so:libc.musl-x86_64.so.1  busybox=1.35.0-r29 \n cmd:sh ")
    assert [str(d) for d in deps] == ["so:libc.musl-x86_64.so.1", "busybox=1.35.0-r29", "cmd:sh"]
    assert parse_dependencies(["a b", "c"]) == [Dependency("a"), Dependency("b"), Dependency("c")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo-1.2-r0", ("foo", "1.2-r0")),
        ("py3-foo-bar-0.1_rc2-r10", ("py3-foo-bar", "0.1_rc2-r10")),
        ("libstdc++-12.2.1_git20220924-r4", ("libstdc++", "12.2.1_git20220924-r4")),
        ("font-2-1.0", ("font-2", "1.0")),
    ],
)
def test_split_name_version(text: str, expected: tuple[str, str]) -> None:
    assert V.split_name_version(text) == expected


def test_split_name_version_rejects() -> None:
    with pytest.raises(VersionError, match="'noversion' is not name-version"):
        V.split_name_version("noversion")


def test_legacy_versions_of_apk_tools_2() -> None:
    """Alpine 3.16 ships ``6.8.0p2-r4`` (opensmtpd): invalid for apk-tools 3, fine for 2.x."""
    assert not V.is_valid("6.8.0p2-r4")
    assert V.is_valid("6.8.0p2-r4", legacy=True)
    assert not V.is_valid("v2.4", legacy=True)
    assert V.compare("6.8.0p2-r4", "6.8.0p2-r5") == -1
    assert V.compare("6.8.0p10", "6.8.0p2") == 1
    with pytest.raises(VersionError, match=r"invalid version '6\.8\.0p2-r4'"):
        parse_dependency("opensmtpd=6.8.0p2-r4")
    assert parse_dependency("opensmtpd=6.8.0p2-r4", legacy=True).version == "6.8.0p2-r4"
