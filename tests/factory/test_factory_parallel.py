"""The factory runs independent work at the same time, never more than its bound.

Recipes build in waves of the build order (builder/order.py ``build_waves``): a wave's build jobs
are submitted together and the executor runs ``[executor] concurrency`` of them at once; images
and their smoke tests likewise. Concurrency is shown with barriers, not timing: the first two
builds (and the first two publishes, and the two image builds) each wait until the other has
arrived, which can only happen when they run at the same time; a counter records the most that
ever ran at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mini_catalog import serve_upstream, write_workspace
from nanodistro.cli import app
from nanodistro.errors import ConfigError
from nanodistro.factory.workspace import load_workspace
from needs_tools import require_tools

ARCH = "x86_64"


class Gate:
    """Counts the calls running at once; the first ``together`` calls wait for each other."""

    def __init__(self, together: int) -> None:
        self.lock = threading.Lock()
        self.active = self.most = self.entered = 0
        self.together = together
        self.barrier = threading.Barrier(together, timeout=300)

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.active += 1
                self.most = max(self.most, self.active)
                self.entered += 1
                first = self.entered <= self.together
            try:
                if first:  # broken (a failed job) unless the others run at the same time
                    self.barrier.wait()
                return call(*args, **kwargs)
            finally:
                with self.lock:
                    self.active -= 1

        return wrapped


def _wrap_handler(
    factory: Callable[[Any], Callable[[dict[str, Any]], dict[str, Any]]], gate: Gate
) -> Callable[[Any], Callable[[dict[str, Any]], dict[str, Any]]]:
    return lambda plan: gate.wrap(factory(plan))


def test_build_waves_of_the_mini_catalog(tmp_path: Path) -> None:
    from nanodistro.builder.order import build_order, build_waves

    digests = dict.fromkeys(
        ["mini-baselayout-1.0", "ca-certs-2024.1", "libgreet-1.2.0", "hello-2.0"], "0" * 64
    )
    root = write_workspace(tmp_path / "ws", "http://127.0.0.1:1", digests)
    paths = sorted((root / "recipes").glob("*.yaml"))
    waves = build_waves(paths, ARCH)
    assert [[p.stem for p in wave] for wave in waves] == [
        ["ca-certs", "libgreet", "mini-baselayout"],
        ["hello"],  # needs libgreet (build environment)
    ]
    # every wave only needs earlier ones: flattened, the waves are a build order
    order = [p.stem for p in build_order(paths, ARCH)]
    flat = [p.stem for wave in waves for p in wave]
    assert sorted(flat) == sorted(order)
    assert flat.index("hello") > flat.index("libgreet")


def test_executor_concurrency_key(tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text("")
    assert load_workspace(tmp_path).concurrency is None  # the CPU count, decided by the cycle
    (tmp_path / "nanodistro.toml").write_text("[executor]\nconcurrency = 3\n")
    assert load_workspace(tmp_path).concurrency == 3
    for bad in ("0", "-1", '"2"', "true", "1.5"):
        (tmp_path / "nanodistro.toml").write_text(f"[executor]\nconcurrency = {bad}\n")
        with pytest.raises(ConfigError, match=r"executor\.concurrency"):
            load_workspace(tmp_path)
    (tmp_path / "nanodistro.toml").write_text("[executor]\nconcurency = 3\n")
    with pytest.raises(ConfigError, match="did you mean 'concurrency'"):
        load_workspace(tmp_path)


def test_jobs_option_reaches_the_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nanodistro.factory import loop
    from nanodistro.factory.cycle import CycleReport

    (tmp_path / "nanodistro.toml").write_text("[executor]\nconcurrency = 3\n")
    seen: list[int | None] = []

    def fake_cycle(workspace: Any, state: Any, **kwargs: Any) -> CycleReport:
        seen.append(kwargs["concurrency"])
        return CycleReport(cycle="c", workspace=str(workspace.root), started="s")

    monkeypatch.setattr(loop, "run_cycle", fake_cycle)
    runner = CliRunner()
    args = ["factory", "run", str(tmp_path), "--once", "--json", "--quiet"]
    assert runner.invoke(app, [*args, "--jobs", "2"]).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0  # the workspace's (the cycle reads it)
    assert runner.invoke(app, [*args, "--jobs", "0"]).exit_code == 2  # usage error
    assert seen == [2, None]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    require_tools("bwrap", "gcc", "umoci", "runc")
    with serve_upstream(tmp_path_factory.mktemp("upstream")) as (url, digests):
        yield url, digests


def _job_intervals(root: Path, kind: str) -> dict[str, tuple[datetime, datetime]]:
    """Job name (recipe or image) -> (started_at, finished_at) from the jobs table."""
    with sqlite3.connect(root / ".nanodistro" / "state.db") as db:
        rows = db.execute(
            "SELECT inputs, started_at, finished_at FROM jobs WHERE kind = ? AND state = ?",
            (kind, "succeeded"),
        ).fetchall()
    found = {}
    for inputs, started, finished in rows:
        data = json.loads(inputs)
        name = data.get("recipe") or data["image"]
        found[name] = (datetime.fromisoformat(started), datetime.fromisoformat(finished))
    return found


def _most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    return max(sum(1 for s, f in intervals if s <= start < f) for start, _ in intervals)


@pytest.mark.slow
def test_independent_recipes_and_images_run_at_once_within_the_bound(
    upstream: tuple[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nanodistro.repo
    from nanodistro.cli.factory import open_workspace_state
    from nanodistro.factory import cycle
    from nanodistro.factory.cycle import run_cycle
    from nanodistro.repo import load_index
    from nanodistro.trust.keys import load_keyring

    url, digests = upstream
    root = write_workspace(tmp_path / "ws", url, digests)
    with (root / "nanodistro.toml").open("a") as toml:
        toml.write("\n[executor]\nconcurrency = 2\n")
    builds, images, publishes = Gate(2), Gate(2), Gate(2)
    monkeypatch.setattr(cycle, "build_handler", _wrap_handler(cycle.build_handler, builds))
    monkeypatch.setattr(cycle, "image_handler", _wrap_handler(cycle.image_handler, images))
    # the builder looks publish up at call time: the first two publishes (of two recipes built
    # at the same time) enter it together and meet at the repository lock
    monkeypatch.setattr(nanodistro.repo, "publish", publishes.wrap(nanodistro.repo.publish))

    workspace = load_workspace(root)
    lines: list[str] = []
    state = open_workspace_state(workspace)
    assert state is not None
    with state:
        report = run_cycle(workspace, state, progress=lines.append, monitor_upstreams=False)
    assert report.status == "promoted", json.dumps(report.to_json(), indent=1)[:4000]
    assert {b.recipe: b.status for b in report.builds} == dict.fromkeys(
        ["ca-certs", "hello", "libgreet", "mini-baselayout"], "built"
    )
    assert report.catalog is not None
    assert {i.name: i.smoke.status for i in report.catalog.images} == {
        "hello": "passed",
        "static": "passed",
    }

    # two at once (the barriers were passed), never more than the bound of 2
    assert (builds.entered, builds.most) == (4, 2)
    assert (images.entered, images.most) == (2, 2)
    assert publishes.entered == 4 and publishes.most == 2
    # the job table agrees: wave 1 (three independent recipes) overlapped, at most two at once;
    # hello (wave 2) started only after libgreet, which it builds against, was finished
    built = _job_intervals(root, "build")
    assert set(built) == {"ca-certs", "hello", "libgreet", "mini-baselayout"}
    assert _most_at_once(list(built.values())) == 2
    first_wave = ("ca-certs", "libgreet", "mini-baselayout")
    assert built["hello"][0] >= max(built[name][1] for name in first_wave)
    assert _most_at_once(list(_job_intervals(root, "image").values())) == 2

    # both concurrent publishes landed: every package is in the signed index
    keyring = load_keyring(workspace.keys_dir)
    index = load_index(workspace.packages_dir / ARCH, keyring)
    assert index is not None
    assert {p.name for p in index.packages} >= {"ca-certs", "hello", "libgreet", "mini-baselayout"}
    # interleaved progress stays readable: builder lines name their recipe / image
    for name in ("ca-certs", "hello", "libgreet", "mini-baselayout"):
        assert any(line.startswith(f"[{name}] publish ") for line in lines), name
    assert any(line.startswith("[static] ") for line in lines)
    assert any(line.startswith("build wave 1/2: ") for line in lines)
