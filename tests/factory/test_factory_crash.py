"""``kill -9`` the factory at several points of a cycle, restart it: the result is the same as an
uninterrupted run's.

The miniature catalog (tests/mini_catalog.py) after its first cycle (built once per session,
tests/factory_catalog.py) is copied for the module; then
upstream publishes libgreet 1.3.0, so the next cycle detects it, bumps (git commit), builds and
publishes libgreet, epoch-bumps and rebuilds hello (it embeds the static library), rebuilds the
hello image, smoke-tests and promotes. The reference runs that cycle uninterrupted; each crash
case runs it as a real ``nanodistro factory run --once`` process with ``NANODISTRO_TEST_CRASH_AT``
set (factory/crashpoints.py: the process SIGKILLs itself there), checks it died by SIGKILL, runs it
again without the variable and compares with the reference: channel targets, image tags, the
files (and bytes) of the working repository and of every ``versions/N``, one ``published`` event
per package version, no temporary file left, no job left ``running``, and every channel's index
installs every package with the reference apk clients.

Every case runs at the same absolute path (the image's /etc/apk/repositories names the
workspace's staging channel) and with fixed git dates (a bump commit's time is the rebuilt
package's SOURCE_DATE_EPOCH), so an uninterrupted run is byte-for-byte reproducible.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apk_reference import ApkClient, apk_clients
from factory_catalog import FirstCycle, copy_first_cycle
from mini_catalog import release_libgreet

pytestmark = pytest.mark.slow

ARCH = "x86_64"
GIT_DATE = "2024-05-01T12:00:00+00:00"

#: where the cycle is killed (factory/crashpoints.py POINTS), each restarted once
CRASH_POINTS = [
    "after-bump",  # recipe rewritten, not committed
    "during-build",  # libgreet's build is running
    "during-index-write",  # libgreet's .apk is published, the new index is in its temp file
    "after-publish",  # libgreet published, no snapshot yet
    "before-promote",  # staging moved, gates passed, stable not yet
    "during-promote",  # stable channel moved, image stable tags not yet
]


def _env(crash_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env.pop("NANODISTRO_TEST_CRASH_AT", None)
    env.update(GIT_AUTHOR_DATE=GIT_DATE, GIT_COMMITTER_DATE=GIT_DATE, COLUMNS="200")
    if crash_at:
        env["NANODISTRO_TEST_CRASH_AT"] = crash_at
    return env


def factory_run(root: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """One ``nanodistro factory run ROOT --once --json`` process."""
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", "factory", "run", str(root), "--once", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=_env(crash_at),
        timeout=900,
    )


def cycle_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=_env()
    ).stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 (or ``-> target`` for a symlink) of every file under a folder."""
    files: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            files[relative] = "-> " + os.readlink(path)
        elif path.is_file():
            if path.name == "version.json":  # its 'created' time differs run to run
                record = json.loads(path.read_bytes())
                record.pop("created", None)
                files[relative] = json.dumps(record, sort_keys=True)
            elif path.name.endswith(".intoto.jsonl"):
                # run details (times, invocation id) and ECDSA signatures differ run to run;
                # what was built from what must not
                files[relative] = json.dumps(_provenance_facts(path), sort_keys=True)
            elif path.name != "db.lock" and not path.name.endswith(".lock"):
                files[relative] = _sha(path)
    return files


def _provenance_facts(path: Path) -> list[dict[str, Any]]:
    """Subject and buildDefinition of each statement in a ``.intoto.jsonl`` file."""
    from nanodistro.formats.dsse import decode_envelope

    facts = []
    for line in path.read_bytes().splitlines():
        statement = decode_envelope(line, where=str(path)).statement(where=str(path))
        predicate: Any = statement["predicate"]
        facts.append({"subject": statement["subject"], "build": predicate["buildDefinition"]})
    return facts


def final_state(root: Path) -> dict[str, Any]:
    """Everything an uninterrupted run and a crashed + restarted one must agree on."""
    from nanodistro.image.tags import list_tags

    repo = root / "out" / "packages"
    layouts = root / "out" / "images"
    return {
        "channels": {c: os.readlink(repo / c) for c in ("staging", "stable")},
        "tags": {
            layout.name: list_tags(layout)
            for layout in sorted(layouts.iterdir())
            if (layout / "index.json").is_file()
        },
        "repository": _tree(repo),
        "head": git(root, "rev-parse", "HEAD").strip(),
        "recipes": {p.name: _sha(p) for p in sorted((root / "recipes").glob("*.yaml"))},
    }


def published_events(root: Path) -> Counter[tuple[str, str]]:
    with sqlite3.connect(root / ".nanodistro" / "state.db") as db:
        rows = db.execute("SELECT subject, payload FROM events WHERE type = 'published'")
        return Counter((subject, json.loads(payload)["version"]) for subject, payload in rows)


def job_states(root: Path) -> Counter[str]:
    with sqlite3.connect(root / ".nanodistro" / "state.db") as db:
        return Counter(state for (state,) in db.execute("SELECT state FROM jobs"))


def leftovers(root: Path) -> list[str]:
    """Temporary files (atomic writes, snapshot/tag temp dirs) anywhere under the outputs."""
    found = []
    for path in (root / "out").rglob("*"):
        name = path.name
        if name.endswith(".tmp") or ".tmp-" in name or name.startswith(".tmp"):
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def check_channels_install(root: Path, clients: list[ApkClient], scratch: Path) -> None:
    """Every package of every channel's version installs alone with each reference client."""
    from nanodistro.formats.apk import read_apk

    repo = root / "out" / "packages"
    keys = scratch / "keys"
    keys.mkdir(parents=True)
    for public in (root / "keys").glob("*.pub"):
        shutil.copy2(public, keys / public.name)
    failures = []
    for channel in ("staging", "stable"):
        for file in sorted((repo / channel / ARCH).glob("*.apk")):
            info = read_apk(file.read_bytes(), where=str(file)).info
            for client in clients:
                target = scratch / f"{channel}-{client.name}-{info.name}"
                result = client.run(
                    "--root", str(target), "--initdb", "--keys-dir", str(keys),
                    "--repositories-file", "/dev/null", "--repository", str(repo / channel),
                    "--no-network", "--no-cache", "--arch", ARCH,
                    "add", f"{info.name}={info.version}",
                    check=False,
                )  # fmt: skip
                if result.returncode != 0:
                    failures.append(
                        f"{client} {channel} {info.name}: {result.stdout}{result.stderr}"
                    )
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def built(first_cycle: FirstCycle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The miniature catalog after its first cycle (a git work tree: this module's copy of the
    session's, tests/factory_catalog.py); then upstream publishes libgreet 1.3.0, which the next
    cycle of every case picks up (and which is withdrawn after the module: the session's
    upstream serves the other modules too)."""
    root = copy_first_cycle(first_cycle, tmp_path_factory.mktemp("built"))
    release = release_libgreet(first_cycle.served, "1.3.0")
    try:
        yield root
    finally:
        release.unlink()


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one path every case's workspace is copied to (and removed from afterwards)."""
    return tmp_path_factory.mktemp("run") / "ws"


def fresh_copy(built: Path, place: Path) -> Path:
    if place.exists():
        shutil.rmtree(place)
    shutil.copytree(built, place, symlinks=True)
    return place


@pytest.fixture(scope="module")
def reference(built: Path, place: Path) -> dict[str, Any]:
    """The final state of the uninterrupted cycle."""
    root = fresh_copy(built, place)
    report = cycle_report(factory_run(root))
    assert report["status"] == "promoted", json.dumps(report, indent=1)[:3000]
    builds = {b["recipe"]: (b["status"], b["version"]) for b in report["builds"]}
    assert builds["libgreet"] == ("built", "1.3.0-r0")
    assert builds["hello"] == ("built", "2.0-r1")
    assert report["channels"] == {"staging": 2, "stable": 2}
    state = final_state(root)
    assert published_events(root)[("package:libgreet", "1.3.0-r0")] == 1
    assert not leftovers(root)
    # a second uninterrupted cycle changes nothing (so the comparison below is meaningful)
    again = cycle_report(factory_run(root))
    assert again["status"] == "up-to-date", json.dumps(again, indent=1)[:3000]
    assert final_state(root) == state
    return state


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_then_restart_ends_like_an_uninterrupted_run(
    point: str, built: Path, place: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    clients = apk_clients()
    root = fresh_copy(built, place)
    crashed = factory_run(root, crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, (
        f"{point}: exit {crashed.returncode}, expected SIGKILL\n{crashed.stderr[-3000:]}"
    )
    restarted = cycle_report(factory_run(root))
    assert restarted["status"] == "promoted", json.dumps(restarted, indent=1)[:3000]
    assert restarted["channels"] == {"staging": 2, "stable": 2}

    state = final_state(root)
    differ = sorted(
        path
        for path in set(state["repository"]) | set(reference["repository"])
        if state["repository"].get(path) != reference["repository"].get(path)
    )
    assert not differ, f"{point}: repository files differ: {differ}"
    for part in ("channels", "head", "recipes", "tags"):
        assert state[part] == reference[part], f"{point}: {part} differs"
    assert state == reference
    published = published_events(root)
    assert published and set(published.values()) == {1}, published
    assert published[("package:libgreet", "1.3.0-r0")] == 1
    assert published[("package:hello", "2.0-r1")] == 1
    jobs = job_states(root)
    assert not jobs.get("running") and not jobs.get("queued"), jobs
    assert not leftovers(root), leftovers(root)
    check_channels_install(root, clients, tmp_path / "apk")
