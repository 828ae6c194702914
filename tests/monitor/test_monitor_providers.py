"""Each provider against a loopback server answering with the real APIs' response shapes."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from upstream_server import Upstream

from git_helper import git
from nanodistro.monitor.check import check_targets_async, exit_status
from nanodistro.monitor.models import CheckResult
from nanodistro.monitor.providers.base import Endpoints
from nanodistro.monitor.recipes import target_from_document


def recipe(version: str, update: dict[str, Any], **extra: Any) -> dict[str, Any]:
    update = {"enabled": True, **update}
    document = {"package": {"name": "demo", "version": version, "epoch": 3}, "update": update}
    document.update(extra)
    return document


def check(
    upstream: Upstream, *documents: dict[str, Any], cache_dir: Path | None = None, **kw: Any
) -> list[CheckResult]:
    base = upstream.base
    endpoints = Endpoints(
        pypi=base, npm=base, github_api=base, gitlab_api=base, release_monitoring=base
    )
    targets = [target_from_document(d, None) for d in documents]
    return asyncio.run(
        check_targets_async(targets, endpoints=endpoints, cache_dir=cache_dir, backoff=0.01, **kw)
    )


PYPI_DOC = {
    "info": {"name": "demo", "version": "2.2.0"},
    "releases": {
        "1.0.0": [
            {
                "packagetype": "sdist",
                "upload_time_iso_8601": "2023-01-02T03:04:05.000000Z",
                "url": "https://files.example/demo-1.0.0.tar.gz",
                "digests": {"sha256": "aa" * 32},
                "yanked": False,
            }
        ],
        "2.1.0": [
            {
                "packagetype": "bdist_wheel",
                "upload_time_iso_8601": "2024-05-06T07:08:09.123456Z",
                "url": "https://files.example/demo-2.1.0-py3-none-any.whl",
                "digests": {"sha256": "bb" * 32},
                "yanked": False,
            },
            {
                "packagetype": "sdist",
                "upload_time_iso_8601": "2024-05-06T07:09:00.000000Z",
                "url": "https://files.example/demo-2.1.0.tar.gz",
                "digests": {"sha256": "cc" * 32},
                "yanked": False,
            },
        ],
        "2.2.0": [
            {
                "packagetype": "sdist",
                "upload_time_iso_8601": "2024-06-01T00:00:00Z",
                "url": "https://files.example/demo-2.2.0.tar.gz",
                "digests": {"sha256": "dd" * 32},
                "yanked": True,
                "yanked_reason": "broken",
            }
        ],
        "3.0.0rc1": [
            {
                "packagetype": "sdist",
                "upload_time_iso_8601": "2024-07-01T00:00:00Z",
                "url": "https://files.example/demo-3.0.0rc1.tar.gz",
                "digests": {"sha256": "ee" * 32},
                "yanked": False,
            }
        ],
        "0.9": [],
    },
}


def test_pypi_skips_yanked_and_prereleases(upstream: Upstream) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    (result,) = check(upstream, recipe("1.0.0", {"pypi": {"identifier": "demo"}}))
    assert result.status == "update"
    assert (result.latest, result.next_version) == ("2.1.0", "2.1.0")
    assert result.latest_published_at == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert result.latest_url == "https://files.example/demo-2.1.0.tar.gz"
    assert exit_status([result]) == 10


def test_pypi_prereleases_when_enabled(upstream: Upstream) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    update = {"pypi": {"identifier": "demo"}, "enable-prerelease-tags": True}
    (result,) = check(upstream, recipe("2.1.0", update))
    assert result.latest == "3.0.0rc1"


NPM_DOC = {
    "_id": "@scope/demo",
    "name": "@scope/demo",
    "dist-tags": {"latest": "1.10.0", "next": "2.0.0-beta.1"},
    "versions": {
        "1.9.0": {
            "version": "1.9.0",
            "dist": {"tarball": "https://r/demo-1.9.0.tgz", "shasum": "ab"},
        },
        "1.10.0": {
            "version": "1.10.0",
            "gitHead": "c" * 40,
            "dist": {"tarball": "https://r/demo-1.10.0.tgz", "integrity": "sha512-xyz"},
        },
        "1.11.0": {"version": "1.11.0", "deprecated": "do not use", "dist": {}},
        "2.0.0-beta.1": {"version": "2.0.0-beta.1", "dist": {}},
    },
    "time": {
        "created": "2020-01-01T00:00:00.000Z",
        "modified": "2024-03-01T00:00:00.000Z",
        "1.9.0": "2023-01-01T00:00:00.000Z",
        "1.10.0": "2024-02-29T12:00:00.000Z",
        "1.11.0": "2024-03-01T00:00:00.000Z",
        "2.0.0-beta.1": "2024-03-01T00:00:00.000Z",
    },
}


def test_npm_semver_order_time_and_scoped_name(upstream: Upstream) -> None:
    upstream.add("/@scope%2Fdemo", NPM_DOC)
    (result,) = check(upstream, recipe("1.9.0", {"npm": {"identifier": "@scope/demo"}}))
    assert (result.status, result.latest) == ("update", "1.10.0")
    assert result.latest_published_at == datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert result.latest_commit == "c" * 40


def _gh_release(tag: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": abs(hash(tag)) % 10**8,
        "tag_name": tag,
        "name": tag,
        "draft": False,
        "prerelease": False,
        "created_at": "2024-01-01T00:00:00Z",
        "published_at": "2024-01-02T00:00:00Z",
        "html_url": f"https://github.com/org/repo/releases/tag/{tag}",
        "target_commitish": "main",
        **kw,
    }


def test_github_releases_filters_and_pagination(upstream: Upstream) -> None:
    page1 = [
        _gh_release("v2.4.0", draft=True),
        _gh_release("v2.3.0-rc1"),
        _gh_release("v2.2.5", prerelease=True),
        _gh_release("v2.2.1p3", published_at="2024-04-04T04:04:04Z"),
    ]
    page2 = [_gh_release("v2.1.0"), _gh_release("v1.9.9"), _gh_release("nightly")]
    upstream.add(
        "/repos/org/repo/releases?per_page=100",
        page1,
        headers={"Link": '<{base}/repos/org/repo/releases?per_page=100&page=2>; rel="next"'},
    )
    upstream.add("/repos/org/repo/releases?per_page=100&page=2", page2)
    update = {
        "github": {"identifier": "org/repo", "strip-prefix": "v", "tag-filter-prefix": "v2."},
        "ignore-regex-patterns": ["-rc"],
        "version-transform": [{"match": r"p(\d+)$", "replace": ".${1}"}],
    }
    (result,) = check(upstream, recipe("2.1.0", update))
    assert (result.status, result.latest) == ("update", "2.2.1.3")
    assert result.latest_published_at == datetime(2024, 4, 4, 4, 4, 4, tzinfo=UTC)
    assert result.candidates == 2  # v2.2.1p3 and v2.1.0 survive the filters


def test_github_tags_retag_detected(upstream: Upstream) -> None:
    old, new = "1" * 40, "2" * 40
    upstream.add(
        "/repos/org/repo/tags?per_page=100",
        [
            {"name": "v1.2.0", "commit": {"sha": new, "url": "x"}, "tarball_url": "t"},
            {"name": "v1.1.0", "commit": {"sha": "3" * 40, "url": "x"}},
        ],
    )
    upstream.add(
        f"/repos/org/repo/commits/{new}",
        {"sha": new, "commit": {"committer": {"date": "2024-09-09T09:09:09Z"}}},
    )
    document = recipe(
        "1.2.0",
        {"github": {"identifier": "org/repo", "strip-prefix": "v", "use-tag": True}},
        pipeline=[
            {
                "uses": "git-checkout",
                "with": {
                    "repository": "https://github.com/org/repo",
                    "tag": "v${{package.version}}",
                    "expected-commit": old,
                },
            }
        ],
    )
    (result,) = check(upstream, document)
    assert result.status == "retagged"
    assert "re-tagged" in (result.message or "")
    assert result.latest_published_at == datetime(2024, 9, 9, 9, 9, 9, tzinfo=UTC)
    assert exit_status([result]) == 10


def test_gitlab_tags_and_releases(upstream: Upstream) -> None:
    upstream.add(
        "/projects/group%2Fsub%2Fproj/repository/tags?per_page=100",
        [
            {
                "name": "v0.5.0",
                "message": "",
                "target": "a" * 40,
                "commit": {"id": "a" * 40, "committed_date": "2024-02-02T10:00:00.000+01:00"},
                "release": None,
                "protected": False,
                "created_at": None,
            },
            {"name": "v0.4.0", "commit": {"id": "b" * 40}, "created_at": None},
        ],
    )
    upstream.add(
        "/projects/group%2Fsub%2Fproj/releases?per_page=100",
        [
            {
                "tag_name": "v0.6.0",
                "name": "0.6",
                "released_at": "2025-01-01T00:00:00.000Z",
                "upcoming_release": True,
                "commit": {"id": "c" * 40},
            },
            {
                "tag_name": "v0.5.0",
                "name": "0.5",
                "released_at": "2024-02-03T00:00:00.000Z",
                "upcoming_release": False,
                "commit": {"id": "a" * 40},
                "_links": {"self": "https://gitlab.com/group/sub/proj/-/releases/v0.5.0"},
            },
        ],
    )
    tags = {"gitlab": {"identifier": "group/sub/proj", "strip-prefix": "v", "use-tag": True}}
    releases = {"gitlab": {"identifier": "group/sub/proj", "strip-prefix": "v"}}
    by_tags, by_releases = check(upstream, recipe("0.4.0", tags), recipe("0.4.0", releases))
    assert (by_tags.latest, by_tags.latest_commit) == ("0.5.0", "a" * 40)
    assert by_tags.latest_published_at == datetime(2024, 2, 2, 9, tzinfo=UTC)
    assert (by_releases.latest, by_releases.status) == ("0.5.0", "update")


def test_release_monitoring_stable_versions_and_404(upstream: Upstream) -> None:
    upstream.add(
        "/api/v2/versions/?project_id=7",
        {
            "latest_version": "3.1_2",
            "latest_version_created_on": 1717243200.0,
            "versions": ["3.2_0rc1", "3.1_2", "3.1_1", "2.9"],
            "stable_versions": ["3.1_2", "3.1_1", "2.9"],
        },
    )
    ok = recipe("3.1.1", {"release-monitor": {"identifier": 7}, "version-separator": "_"})
    missing = recipe("1", {"release-monitor": {"identifier": 8}})
    found, failed = check(upstream, ok, missing)
    assert (found.status, found.latest) == ("update", "3.1.2")
    assert found.latest_published_at == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert failed.status == "error" and "HTTP 404" in (failed.message or "")
    assert "project_id=8" in (failed.message or "")
    assert exit_status([found, failed]) == 10
    assert exit_status([failed]) == 1


LISTING = """<html><head><title>Index of /pub/demo</title></head><body><pre>
<a href="demo-1.2.tar.xz">demo-1.2.tar.xz</a>   2023-01-01 10:00  1.0M
<a href="demo-1.10.tar.xz">demo-1.10.tar.xz</a>  2024-01-01 10:00  1.1M
<a href="demo-1.9.tar.xz">demo-1.9.tar.xz</a>   2023-06-01 10:00  1.0M
<a href="demo-2.0-beta.tar.xz">demo-2.0-beta.tar.xz</a>
</pre></body></html>"""


def test_http_regex_directory_listing(upstream: Upstream) -> None:
    upstream.add("/pub/demo/", LISTING)
    update = {
        "http-regex": {
            "url": upstream.base + "/pub/demo/",
            "pattern": r'href="${{package.name}}-(?P<version>[0-9][^"]*?)\.tar\.xz"',
        }
    }
    (result,) = check(upstream, recipe("1.9", update))
    assert (result.status, result.latest) == ("update", "1.10")


def test_git_provider_local_repository(tmp_path: Path, upstream: Upstream) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commits = {}
    for tag in ("font-demo-1.0.2", "font-demo-1.0.10", "font-demo-1.0.9", "XORG-7_1"):
        (repo / "f").write_text(tag)
        git(repo, "add", "f")
        git(repo, "commit", "-q", "-m", tag)
        git(repo, "tag", "-a", "-m", tag, tag)  # annotated: ls-remote peels ^{}
        commits[tag] = git(repo, "rev-parse", "HEAD")
    document = recipe(
        "1.0.9",
        {
            "git": {"strip-prefix": "font-demo-", "tag-filter-prefix": "font-demo-"},
            "ignore-regex-patterns": ["^XORG-.*"],
        },
        pipeline=[{"uses": "git-checkout", "with": {"repository": str(repo), "tag": "x"}}],
    )
    (result,) = check(upstream, document)
    assert (result.status, result.latest) == ("update", "1.0.10")
    assert result.latest_commit == commits["font-demo-1.0.10"]


def test_failing_upstream_does_not_stop_others_and_retries(upstream: Upstream) -> None:
    upstream.add("/pypi/flaky/json", PYPI_DOC, failures=[503, 502])
    upstream.add("/pypi/down/json", b"oops", status=500, failures=[500, 500, 500])
    flaky = recipe("2.1.0", {"pypi": {"identifier": "flaky"}})
    down = recipe("1", {"pypi": {"identifier": "down"}})
    bad = recipe("1", {"github": {"identifier": "not-a-repo"}})
    ok, failed, invalid = check(upstream, flaky, down, bad)
    assert ok.status == "up-to-date" and ok.latest == "2.1.0"
    assert upstream.paths().count("/pypi/flaky/json") == 3
    assert failed.status == "error" and "HTTP 500" in (failed.message or "")
    assert invalid.status == "error" and "org/repo" in (invalid.message or "")
    assert exit_status([ok, failed]) == 1


def test_etag_cache_and_schedule(upstream: Upstream, tmp_path: Path) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC, etag=True)
    daily = recipe("1.0.0", {"pypi": {"identifier": "demo"}, "schedule": {"period": "daily"}})
    always = recipe("1.0.0", {"pypi": {"identifier": "demo"}})
    always["package"]["name"] = "other"
    first = check(upstream, daily, always, cache_dir=tmp_path)
    assert [r.status for r in first] == ["update", "update"]
    upstream.requests.clear()
    second = check(upstream, daily, always, cache_dir=tmp_path)
    assert [r.status for r in second] == ["skipped-schedule", "update"]
    assert second[1].latest == "2.1.0"  # answered from the cache after a 304
    ((_, headers),) = upstream.requests
    served = upstream.routes["/pypi/demo/json"].body
    # the ETag the server sent, so the server answered 304 (upstream_server.py)
    assert headers.get("If-None-Match") == f'"{hashlib.sha256(served).hexdigest()[:16]}"'
    (forced, _) = check(upstream, daily, always, cache_dir=tmp_path, force=True)
    assert forced.status == "update"
    later = datetime.now(UTC) + timedelta(days=2)
    (third, _) = check(upstream, daily, always, cache_dir=tmp_path, now=later)
    assert third.status == "update"


def test_disabled_manual_sequential(upstream: Upstream) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    disabled = recipe("1", {"enabled": False, "exclude-reason": "vendored"})
    sequential = recipe(
        "0.9", {"pypi": {"identifier": "demo"}, "require-sequential": True, "manual": True}
    )
    off, seq = check(upstream, disabled, sequential)
    assert (off.status, off.message) == ("disabled", "vendored")
    assert (seq.next_version, seq.latest, seq.manual) == ("1.0.0", "2.1.0", True)


def test_every_sample_update_block_parses(fixtures_dir: Path) -> None:
    from nanodistro.monitor.recipes import load_target

    kinds = set()
    for path in sorted((fixtures_dir / "wolfi-os-sample").glob("*.yaml")):
        target = load_target(path)
        assert target.update is not None, path
        kinds.add(target.update.monitor_kind())
        if target.update.monitor_kind() == "git":
            assert target.git_checkouts, path
    assert {"github", "git", "release_monitoring"} <= kinds


def test_yaml_loader_keeps_versions_as_strings() -> None:
    from nanodistro.recipe.yamlsource import load_data

    assert load_data("package: {name: a, version: 1.10}", "x")["package"]["version"] == "1.10"
    assert yaml.safe_load("v: 1.10")["v"] == 1.1  # why a custom loader is needed


# The options every provider honours (melange update:), checked on each provider's own answers:
# (provider's update block, its routes, latest, runner-up, oldest).
GITLAB_TAGS = [
    {"name": "v0.5.0", "commit": {"id": "a" * 40}, "created_at": None},
    {"name": "v0.4.0", "commit": {"id": "b" * 40}, "created_at": None},
]
COMMON_OPTION_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str, str, str]] = {
    "pypi": (
        {"pypi": {"identifier": "demo"}},
        {"/pypi/demo/json": PYPI_DOC},
        "2.1.0",
        "1.0.0",
        "1.0.0",
    ),
    "npm": (
        {"npm": {"identifier": "@scope/demo"}},
        {"/@scope%2Fdemo": NPM_DOC},
        "1.10.0",
        "1.9.0",
        "1.9.0",
    ),
    "github": (
        {"github": {"identifier": "org/repo", "strip-prefix": "v"}},
        {
            "/repos/org/repo/releases?per_page=100": [
                _gh_release("v1.2.0"),
                _gh_release("v1.1.0"),
                _gh_release("v1.0.0"),
            ]
        },
        "1.2.0",
        "1.1.0",
        "1.0.0",
    ),
    "gitlab": (
        {"gitlab": {"identifier": "g/p", "strip-prefix": "v", "use-tag": True}},
        {"/projects/g%2Fp/repository/tags?per_page=100": GITLAB_TAGS},
        "0.5.0",
        "0.4.0",
        "0.4.0",
    ),
    "release-monitor": (
        {"release-monitor": {"identifier": 7}, "version-separator": "_"},
        {
            "/api/v2/versions/?project_id=7": {
                "versions": ["3.1_2", "3.1_1", "2.9"],
                "stable_versions": ["3.1_2", "3.1_1", "2.9"],
            }
        },
        "3.1.2",
        "3.1.1",
        "2.9",
    ),
    "http-regex": (
        {
            "http-regex": {
                "url": "{base}/pub/demo/",
                "pattern": r'href="demo-([0-9][^"]*?)\.tar\.xz"',
            }
        },
        {"/pub/demo/": LISTING},
        "1.10",
        "1.9",
        "1.2",
    ),
}


@pytest.mark.parametrize("kind", sorted(COMMON_OPTION_CASES))
def test_every_provider_honours_the_common_options(
    kind: str, upstream: Upstream, tmp_path: Path
) -> None:
    block, routes, latest, runner_up, oldest = COMMON_OPTION_CASES[kind]
    for path, body in routes.items():
        upstream.add(path, body)
    if "http-regex" in block:
        block = {"http-regex": {**block["http-regex"], "url": f"{upstream.base}/pub/demo/"}}

    def one(cache: str = "c", **options: Any) -> CheckResult:  # options: update: keys
        document = recipe("0.0.1", {**block, **options})
        (result,) = check(upstream, document, cache_dir=tmp_path / cache)
        return result

    assert (one().status, one().latest) == ("update", latest)
    # ignore-regex-patterns see the upstream spelling (before version-separator), as wolfictl
    upstream_spelling = re.escape(latest).replace(r"\.", "[._]")
    ignored = one("c", **{"ignore-regex-patterns": [f"^{upstream_spelling}$"]})
    assert ignored.latest == runner_up
    assert one("c", **{"version-transform": [{"match": "^(.*)$", "replace": "${1}.1"}]}).latest == (
        latest + ".1"
    )
    sequential = one("c", **{"require-sequential": True})
    assert (sequential.next_version, sequential.latest) == (oldest, latest)
    assert one(manual=True).manual is True
    upstream.requests.clear()
    assert one(enabled=False, **{"exclude-reason": "r"}).status == "disabled"
    assert upstream.requests == []  # a disabled recipe asks no one
    weekly = {"schedule": {"period": "weekly"}}
    assert one("weekly", **weekly).status == "update"
    assert one("weekly", **weekly).status == "skipped-schedule"
