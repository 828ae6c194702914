"""Monitor a catalog: 5,000 recipes against loopback upstreams answering like PyPI, GitHub and
release-monitoring.org; the whole ``nanodistro monitor DIR --json`` process is timed.

The recipes mix the monitors a catalog uses most: PyPI projects, GitHub releases, GitHub tags
(with a pinned ``expected-commit``, so the tag list and the chosen commit's date are asked for
too) and release-monitoring.org projects. Each upstream is its own threaded HTTP/1.1 server on
127.0.0.1 (its own host for the per-host limit), answering with documents shaped like the real
APIs (a few dozen releases each, ETags, ``Link`` headers) and 304 to a matching
``If-None-Match``. About a third of the recipes are behind their upstream.

Two runs share one cache directory: the first fills it, the second revalidates every answer
(304s). Each run's output is checked: one result per recipe, in recipe order, the expected
status for each. Aim: the first run under 30 s for 5,000 recipes on 2 cores.

    .venv/bin/python bench/bench_monitor.py [-n RECIPES] [--concurrency J] [--per-host H]
                                            [--workers W]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

AIM_SECONDS = 30.0
RELEASES = 40  # versions each upstream lists
KINDS = ("pypi", "github", "github-tags", "release-monitor")


def _version(index: int) -> str:
    return f"{1 + index // 10}.{index % 10}.0"


LATEST = _version(RELEASES - 1)
NAME, SHA = "@NAME@", "@SHA@"  # placeholders in the documents the servers answer with


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _commit(version: str) -> str:
    return _sha("tag " + version)[:40]


# ------------------------------------------------------------------ upstream documents


def pypi_document(project: str) -> Any:
    releases = {}
    for i in range(RELEASES):
        version = _version(i)
        when = f"20{10 + i // 12:02d}-{1 + i % 12:02d}-03T04:05:06.000000Z"
        releases[version] = [
            {
                "comment_text": "",
                "digests": {"blake2b_256": _sha(version)[:64], "sha256": _sha(project + version)},
                "filename": f"{project}-{version}.tar.gz",
                "packagetype": "sdist",
                "python_version": "source",
                "requires_python": ">=3.8",
                "size": 123456,
                "upload_time_iso_8601": when,
                "url": f"https://files.pythonhosted.org/packages/aa/bb/{project}-{version}.tar.gz",
                "yanked": False,
                "yanked_reason": None,
            },
            {
                "comment_text": "",
                "digests": {"sha256": _sha(project + version + "whl")},
                "filename": f"{project}-{version}-py3-none-any.whl",
                "packagetype": "bdist_wheel",
                "python_version": "py3",
                "requires_python": ">=3.8",
                "size": 98765,
                "upload_time_iso_8601": when,
                "url": f"https://files.pythonhosted.org/packages/cc/dd/{project}-{version}.whl",
                "yanked": False,
                "yanked_reason": None,
            },
        ]
    return {
        "info": {
            "name": project,
            "version": LATEST,
            "summary": f"The {project} project",
            "home_page": f"https://example.org/{project}",
            "license": "MIT",
            "requires_python": ">=3.8",
        },
        "last_serial": 123456,
        "releases": releases,
        "urls": releases[LATEST],
        "vulnerabilities": [],
    }


def _author() -> dict[str, Any]:
    return {
        "login": "octocat",
        "id": 1,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": "https://github.com/images/error/octocat_happy.gif",
        "url": "https://api.github.com/users/octocat",
        "type": "User",
        "site_admin": False,
    }


def github_releases(repo: str) -> Any:
    items = []
    for i in reversed(range(RELEASES)):
        tag = f"v{_version(i)}"
        items.append(
            {
                "url": f"https://api.github.com/repos/{repo}/releases/{1000 + i}",
                "html_url": f"https://github.com/{repo}/releases/tag/{tag}",
                "id": 1000 + i,
                "author": _author(),
                "node_id": "MDc6UmVsZWFzZTE=",
                "tag_name": tag,
                "target_commitish": "main",
                "name": tag,
                "draft": False,
                "prerelease": False,
                "created_at": f"20{10 + i // 12:02d}-{1 + i % 12:02d}-03T04:05:06Z",
                "published_at": f"20{10 + i // 12:02d}-{1 + i % 12:02d}-03T04:05:06Z",
                "assets": [],
                "tarball_url": f"https://api.github.com/repos/{repo}/tarball/{tag}",
                "zipball_url": f"https://api.github.com/repos/{repo}/zipball/{tag}",
                "body": "Bug fixes and improvements.\n" * 4,
            }
        )
    return items


def github_tags(repo: str) -> Any:
    return [
        {
            "name": f"v{_version(i)}",
            "zipball_url": f"https://api.github.com/repos/{repo}/zipball/v{_version(i)}",
            "tarball_url": f"https://api.github.com/repos/{repo}/tarball/v{_version(i)}",
            "commit": {
                "sha": _commit(_version(i)),
                "url": f"https://api.github.com/repos/{repo}/commits/{_sha(repo)[:40]}",
            },
            "node_id": "MDM6UmVmMTI=",
        }
        for i in reversed(range(RELEASES))
    ]


def github_commit(repo: str, sha: str) -> Any:
    when = "2024-05-06T07:08:09Z"
    person = {"name": "Octo Cat", "email": "octocat@example.org", "date": when}
    return {
        "sha": sha,
        "commit": {"author": person, "committer": person, "message": "Release"},
        "html_url": f"https://github.com/{repo}/commit/{sha}",
    }


def release_monitoring(project: str) -> Any:
    versions = [_version(i) for i in reversed(range(RELEASES))]
    return {
        "latest_version": LATEST,
        "latest_version_created_on": "2024-05-06T07:08:09Z",
        "versions": versions,
        "stable_versions": versions,
    }


@functools.cache
def template(document: str) -> str:
    """A document's JSON text with ``NAME``/``SHA`` placeholders: the servers answer every
    project by substitution, so they spend their CPU on HTTP as a real upstream would, not
    on building documents."""
    if document == "pypi":
        return json.dumps(pypi_document(NAME))
    if document == "releases":
        return json.dumps(github_releases(NAME))
    if document == "tags":
        return json.dumps(github_tags(NAME))
    if document == "commit":
        return json.dumps(github_commit(NAME, SHA))
    return json.dumps(release_monitoring(NAME))


def answer(kind: str, path: str) -> str | None:
    """The JSON text for ``path`` on the ``kind`` upstream, or None (404)."""
    parts = urlsplit(path)
    segments = parts.path.strip("/").split("/")
    if kind == "pypi" and len(segments) == 3 and segments[0] == "pypi" and segments[2] == "json":
        return template("pypi").replace(NAME, segments[1])
    if kind == "github" and len(segments) >= 4 and segments[0] == "repos":
        repo = f"{segments[1]}/{segments[2]}"
        if segments[3] in ("releases", "tags") and len(segments) == 4:
            return template(segments[3]).replace(NAME, repo)
        if segments[3] == "commits" and len(segments) == 5:
            return template("commit").replace(NAME, repo).replace(SHA, segments[4])
    if kind == "release-monitoring" and parts.path == "/api/v2/versions/":
        project = parse_qs(parts.query).get("project_id", [""])[0]
        return template("release-monitoring").replace(NAME, project) if project else None
    return None


class Upstream:
    """One threaded HTTP/1.1 server (keep-alive) answering like ``kind``; counts statuses."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _count(self, status: int) -> None:
        with self._lock:
            self.statuses[status] += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the body waits for
            # the client's delayed ACK (40 ms), which no real upstream costs.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream._count(status)

            def do_GET(self) -> None:
                text = answer(upstream.kind, self.path)
                if text is None:
                    self._send(404, b'{"message": "Not Found"}', {})
                    return
                body = text.encode()
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", {"ETag": etag})
                    return
                headers = {"Content-Type": "application/json", "ETag": etag}
                if upstream.kind == "github":
                    headers["X-RateLimit-Remaining"] = "4999"
                self._send(200, body, headers)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ recipes


def recipe(index: int) -> tuple[str, str, str]:
    """``(name, yaml text, expected status)`` of recipe ``index``."""
    kind = KINDS[index % len(KINDS)]
    name = f"pkg{index:05d}-{kind}"
    behind = index % 3 == 0
    version = _version(RELEASES - 5) if behind else LATEST
    repo = f"org{index % 97}/{name}"
    pipeline = [
        "pipeline:",
        "  - uses: fetch",
        "    with:",
        f"      uri: https://example.org/{name}/{name}-${{{{package.version}}}}.tar.gz",
        f"      expected-sha256: {_sha(name)}",
        "  - uses: autoconf/configure",
        "  - uses: autoconf/make",
        "  - uses: autoconf/make-install",
    ]
    if kind == "pypi":
        update = ["  pypi:", f"    identifier: {name}"]
    elif kind == "github":
        update = ["  github:", f"    identifier: {repo}", "    strip-prefix: v"]
    elif kind == "github-tags":
        update = [
            "  github:",
            f"    identifier: {repo}",
            "    strip-prefix: v",
            "    use-tag: true",
        ]
        pipeline = [
            "pipeline:",
            "  - uses: git-checkout",
            "    with:",
            f"      repository: https://github.com/{repo}",
            "      tag: v${{package.version}}",
            f"      expected-commit: {_commit(version)}",
            "  - uses: autoconf/configure",
            "  - uses: autoconf/make",
            "  - uses: autoconf/make-install",
        ]
    else:
        update = ["  release-monitor:", f"    identifier: {10000 + index}"]
    text = "\n".join(
        [
            "package:",
            f"  name: {name}",
            f"  version: {version}",
            "  epoch: 0",
            f"  description: benchmark recipe {index}",
            "  copyright:",
            "    - license: MIT",
            "environment:",
            "  contents:",
            "    packages:",
            "      - build-base",
            "      - busybox",
            *pipeline,
            "update:",
            "  enabled: true",
            *update,
            "",
        ]
    )
    return name, text, "update" if behind else "up-to-date"


# ------------------------------------------------------------------ run


def run_monitor(
    recipes: Path, cache: Path, env: dict[str, str], options: list[str]
) -> tuple[float, dict[str, Any], str]:
    command = [
        *(sys.executable, "-m", "nanodistro", "monitor", str(recipes), "--json"),
        *("--cache-dir", str(cache), *options),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  monitor process: {elapsed:.2f} s wall, {cpu:.2f} s CPU (its workers included)")
    if done.returncode not in (0, 10):
        sys.exit(f"nanodistro monitor failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return elapsed, json.loads(done.stdout), done.stderr


def check_output(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    results = document["results"]
    names = [r["name"] for r in results]
    if names != [name for name, _ in expected]:
        sys.exit("results are not one per recipe in recipe order")
    wrong = [
        f"{r['name']}: {r['status']} ({r['message']})"
        for r, (_, status) in zip(results, expected, strict=True)
        if r["status"] != status
    ]
    if wrong:
        sys.exit(f"{len(wrong)} unexpected results, first: {wrong[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--recipes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=None, help="monitor -j")
    parser.add_argument("--per-host", type=int, default=None, help="monitor --per-host")
    parser.add_argument("--workers", type=int, default=None, help="monitor --workers")
    args = parser.parse_args()

    upstreams = {kind: Upstream(kind) for kind in ("pypi", "github", "release-monitoring")}
    env = {
        **os.environ,
        "NANODISTRO_PYPI_URL": upstreams["pypi"].base,
        "NANODISTRO_GITHUB_API_URL": upstreams["github"].base,
        "NANODISTRO_RELEASE_MONITORING_URL": upstreams["release-monitoring"].base,
    }
    for token in ("GITHUB_TOKEN", "GH_TOKEN", "RELEASE_MONITOR_TOKEN"):
        env.pop(token, None)
    options: list[str] = []
    if args.concurrency:
        options += ["--concurrency", str(args.concurrency)]
    if args.per_host:
        options += ["--per-host", str(args.per_host)]
    if args.workers:
        options += ["--workers", str(args.workers)]

    def requests(status: int) -> int:
        return sum(u.statuses[status] for u in upstreams.values())

    report: Callable[[str, float], None] = lambda label, seconds: print(  # noqa: E731
        f"{label:<28}{seconds:7.2f} s  {args.recipes / seconds:8.0f} recipes/s"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-monitor-") as scratch:
            recipes = Path(scratch) / "recipes"
            recipes.mkdir()
            expected = []
            for index in range(args.recipes):
                name, text, status = recipe(index)
                (recipes / f"{name}.yaml").write_text(text)
                expected.append((name, status))
            cache = Path(scratch) / "cache"

            first, document, _ = run_monitor(recipes, cache, env, options)
            check_output(document, expected)
            asked, fresh = requests(200), requests(304)
            second, document, _ = run_monitor(recipes, cache, env, options)
            check_output(document, expected)
            revalidated = requests(304) - fresh
            answered = requests(200) - asked
    finally:
        for upstream in upstreams.values():
            upstream.close()

    updates = sum(status == "update" for _, status in expected)
    print(f"recipes:                    {args.recipes} ({updates} behind their upstream)")
    print(f"requests, first run:        {asked} answered 200")
    report("first run (empty cache):", first)
    print(f"requests, second run:       {revalidated} answered 304, {answered} answered 200")
    report("second run (cached):", second)
    verdict = "met" if first < AIM_SECONDS * args.recipes / 5000 else "NOT met"
    print(f"aim: {AIM_SECONDS:g} s per 5,000 recipes: {verdict}")


if __name__ == "__main__":
    main()
