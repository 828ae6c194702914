"""The scanner's codecs: OSV (real records from the fixtures), CVSS v3, semver, Go build info,
language metadata, and OSV range evaluation in each ecosystem's order."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from scan_fixture import GOMOD, go_binary

from nanodistro.errors import FormatError, VersionError
from nanodistro.formats import semver
from nanodistro.formats.cvss import base_score, level_of_score
from nanodistro.formats.gobuildinfo import read_buildinfo
from nanodistro.formats.langmeta import npm_package, python_distribution
from nanodistro.formats.osv import Affected, Event, Range, parse_record
from nanodistro.vuln.match import GitSource, comparator, in_range, match_git, tag_version
from nanodistro.vuln.osvdb import normalize_repo


def test_real_osv_records_parse(fixtures_dir: Path) -> None:
    chainguard = fixtures_dir / "third_party/anchore+vunnel/tests/unit/providers/chainguard"
    wolfictl = fixtures_dir / "third_party/wolfi-dev+wolfictl@af8a800a-parent/pkg/advisory"
    paths = sorted((chainguard / "test-fixtures/input/osv").glob("CGA-*.json"))
    paths += sorted((wolfictl / "testdata/osv/expected").glob("CGA-*.json"))
    assert len(paths) == 9
    for path in paths:
        record = parse_record(path.read_bytes(), where=str(path))
        assert record.id == path.stem and record.affected
    record = parse_record(
        (chainguard / "test-fixtures/input/osv/CGA-22hv-wp9q-4779.json").read_bytes(), where="x"
    )
    assert record.upstream == ("CVE-2026-24398", "GHSA-r354-f388-2fhh")
    assert "CVE-2026-24398" in record.ids
    first = record.affected[0]
    assert first.package is not None
    assert first.package.purl == "pkg:apk/chainguard/langfuse-3-worker?arch=x86_64"
    assert first.ranges[0].events == (Event("introduced", "0"), Event("fixed", "3.153.0-r0"))
    # CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N
    assert base_score(record.severity[0].score) == 6.5


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"affected": []}, "id: expected a non-empty string"),
        (
            {
                "id": "X",
                "affected": [{"ranges": [{"type": "RANGE", "events": [{"introduced": "0"}]}]}],
            },
            "affected[0].ranges[0].type: expected one of ECOSYSTEM, SEMVER, GIT",
        ),
        (
            {"id": "X", "affected": [{"ranges": [{"type": "GIT", "events": [{"fixed": "a"}]}]}]},
            "a GIT range needs 'repo'",
        ),
        ({"id": "X", "aliases": "CVE-1"}, "aliases: expected a list of strings"),
    ],
)
def test_bad_osv_records_name_the_field(document: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_record(json.dumps(document).encode(), where="rec.json")


@pytest.mark.parametrize(
    ("vector", "score", "level"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "medium"),  # typical XSS
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, "critical"),
        ("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.8, "low"),  # 1.4124 + 0.3330
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, "none"),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1, "high"),
    ],
)
def test_cvss3_base_scores(vector: str, score: float, level: str) -> None:
    assert base_score(vector) == score
    assert level_of_score(score) == level


def test_cvss_rejects_malformed_vectors() -> None:
    for vector in (
        "CVSS:2.0/AV:N",
        "CVSS:3.1/AV:N/AC:L",
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    ):
        with pytest.raises(FormatError):
            base_score(vector)


def test_semver_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "v1.0.1",
        "1.2",
        "1.10.0",
    ]
    for low, high in itertools.pairwise(ordered):
        assert semver.compare(low, high) == -1, (low, high)
        assert semver.compare(high, low) == 1
    assert semver.compare("v0.0.0-20210101000000-abcdef123456", "0.0.1") == -1
    assert semver.compare("v2.0.0+incompatible", "2.0.0") == 0
    with pytest.raises(VersionError):
        semver.compare("latest", "1.0.0")


def test_ranges_in_each_ecosystem_order() -> None:
    def rng(*events: tuple[str, str]) -> Range:
        return Range("ECOSYSTEM", tuple(Event(k, v) for k, v in events))  # type: ignore[arg-type]

    pep440 = comparator("pypi", "x")
    apk = comparator("wolfi", "x")
    assert pep440 is not None and apk is not None
    fixed = rng(("introduced", "2.0.0rc1"), ("fixed", "2.0.1"))
    assert in_range("2.0.0", fixed, pep440).affected  # rc1 < 2.0.0 < 2.0.1
    assert not in_range("2.0.0b1", fixed, pep440).affected
    assert not in_range("2.0.1", fixed, pep440).affected
    last = rng(("introduced", "0"), ("last_affected", "1.2.3-r1"))
    assert in_range("1.2.3-r1", last, apk).affected
    assert not in_range("1.2.3-r2", last, apk).affected
    assert in_range("1.2.3_rc1-r9", last, apk).affected  # _rc sorts below the release
    limited = rng(("introduced", "1.0-r0"), ("limit", "2.0-r0"))
    assert (
        in_range("1.5-r0", limited, apk).affected and not in_range("2.1-r0", limited, apk).affected
    )
    reopened = rng(
        ("introduced", "0"), ("fixed", "1.1-r0"), ("introduced", "2.0-r0"), ("fixed", "2.2-r0")
    )
    assert [
        in_range(v, reopened, apk).affected for v in ("1.0-r0", "1.5-r0", "2.1-r0", "2.2-r0")
    ] == [True, False, True, False]
    assert in_range("2.1-r0", reopened, apk).fixed_in == "2.2-r0"


def test_git_ranges_against_a_recipe_upstream() -> None:
    repo = "https://github.com/example/lib"
    assert normalize_repo("git@github.com:Example/lib.git") == normalize_repo(repo + "/")
    assert tag_version("lib-1_2_3") == "1.2.3" and tag_version("v2.0") == "2.0"
    assert tag_version("a" * 40) is None
    commits = Range("GIT", (Event("introduced", "1" * 40), Event("fixed", "2" * 40)), repo)
    entry = Affected(None, (commits,))
    # Commits cannot be ordered without history: identity only, never a guess.
    assert match_git("1.0-r0", GitSource(repo, "1" * 40, "1.0"), entry, commits).affected
    assert not match_git("1.0-r0", GitSource(repo, "2" * 40, "1.0"), entry, commits).affected
    assert not match_git("1.0-r0", GitSource(repo, "3" * 40, "1.0"), entry, commits).affected
    # The recipe's commit describes another version than the one installed: not used.
    assert not match_git("0.9-r0", GitSource(repo, "1" * 40, "1.0"), entry, commits).affected
    tags = Range("GIT", (Event("introduced", "v1.0"), Event("fixed", "v1.4")), repo)
    assert match_git("1.3.9-r2", GitSource(repo), Affected(None, (tags,)), tags).fixed_in == "v1.4"
    assert not match_git("1.4-r0", GitSource(repo), Affected(None, (tags,)), tags).affected


def test_go_buildinfo_from_a_real_elf(tmp_path: Path) -> None:
    binary = tmp_path / "gotool"
    go_binary(binary, tmp_path)
    info = read_buildinfo(binary.read_bytes())
    assert info is not None
    assert info.go_version == "go1.21.0" and info.path == "example.com/gotool"
    assert info.main is not None and info.main.version == "v1.0.0"
    # the "=>" line replaces the dependency before it
    assert [(d.path, d.version) for d in info.deps] == [
        ("golang.org/x/net", "v0.7.0"),
        ("golang.org/x/text", "v0.14.0"),
    ]
    assert info.settings == {"GOOS": "linux"}
    assert "golang.org/x/net" in GOMOD
    true = Path("/bin/true").read_bytes()
    assert read_buildinfo(true) is None  # an ELF without Go build info
    assert read_buildinfo(b"#!/bin/sh\n") is None
    assert read_buildinfo(true[:200]) is None  # truncated ELF: no answer, no exception


def test_language_metadata() -> None:
    assert python_distribution(b"Metadata-Version: 2.1\nName: a-b\nVersion: 1.0\n\nName: c") == (
        "a-b",
        "1.0",
    )
    assert python_distribution(b"Name: only-name\n") is None
    assert npm_package(b'{"name": "@scope/x", "version": "1.0.0"}') == ("@scope/x", "1.0.0")
    assert npm_package(b'{"name": "fixture"}') is None and npm_package(b"[1]") is None
