"""Runs: queued by the API, taken one at a time by the serving process's runner."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from webapp import bearer, console, empty_workspace

from nanodistro.errors import ConfigError
from nanodistro.web.runs import FAILED, QUEUED, RUNNING, SUCCEEDED, RunStore


def wait_done(client: object, run_id: int, timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, object] = client.get(f"/api/runs/{run_id}").json()  # type: ignore[attr-defined]
        if run["state"] in (SUCCEEDED, FAILED):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} not done after {timeout}s")


def test_store_claims_each_run_once_and_dedups_deliveries(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws")) as (_client, context):
        store: RunStore = context.runs
        first, created = store.submit("check", {"recipes": ["zlib"]}, "github", dedup_key="d-1")
        again, created_again = store.submit("check", {}, "github", dedup_key="d-1")
        assert created and not created_again and again.id == first.id
        second, _ = store.submit("cycle", {}, "alice")
        with pytest.raises(ConfigError, match="unknown run kind"):
            store.submit("format-disk", {}, "alice")
        claimed = [store.claim_next(), store.claim_next(), store.claim_next()]
        assert [r.id if r else None for r in claimed] == [first.id, second.id, None]
        assert {r.state for r in store.list()} == {RUNNING}
        # a serving process that died mid-run: its runs are failed, not left running forever
        assert store.interrupt_running() == 2
        assert {r.state for r in store.list()} == {FAILED}
        assert store.counts() == {("check", FAILED): 1, ("cycle", FAILED): 1}


def test_posted_cycle_runs_and_its_log_streams_to_the_end(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws"), runner=True) as (client, context):
        answer = client.post("/api/cycles", json={"monitor": False}, headers=bearer(context))
        assert answer.status_code == 202
        run = answer.json()
        assert run["state"] in (QUEUED, RUNNING) and run["requested_by"] == "tester"
        done = wait_done(client, run["id"])
        assert done["state"] == SUCCEEDED, done
        assert done["result"]["status"] == "nothing-published"  # type: ignore[index]
        with client.stream("GET", f"/api/runs/{run['id']}/log") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            body = "".join(stream.iter_text())
        lines = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
        assert "event: end" in body.splitlines()[-3:]
        assert any(f"run {run['id']}: cycle" in line for line in lines)
        assert not any("monitor: checking" in line for line in lines)  # {"monitor": false}
        assert any(f"run {run['id']} succeeded" in line for line in lines)


def test_failed_runs_say_why(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws"), runner=True) as (client, context):
        headers = bearer(context)
        promote = client.post("/api/promote", headers=headers).json()
        rollback = client.post("/api/rollback", json={"to": 3}, headers=headers).json()
        assert "nothing is in staging" in str(wait_done(client, promote["id"])["error"])
        assert "never promoted" in str(wait_done(client, rollback["id"])["error"])
        unknown = client.post("/api/recipes/nope/rebuild", headers=headers)
        assert unknown.status_code == 404 and "no recipe 'nope'" in unknown.json()["detail"]
        assert client.get("/api/runs/999").status_code == 404
        assert [r["kind"] for r in client.get("/api/runs").json()] == ["rollback", "promote"]


def test_a_run_that_breaks_the_runner_fails_and_the_runner_goes_on(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws"), runner=True) as (client, context):
        headers = bearer(context)
        log_dir = context.runs.log_dir
        log_dir.rmdir()
        log_dir.write_text("")  # the run's log cannot be opened: execute() raises
        broken = client.post("/api/promote", headers=headers).json()
        failed = wait_done(client, broken["id"])
        assert failed["state"] == FAILED and "internal error" in str(failed["error"])
        assert context.runner is not None and context.runner.alive
        # its log stream ends rather than waiting for a run that never finishes
        with client.stream("GET", f"/api/runs/{broken['id']}/log") as stream:
            assert "event: end" in "".join(stream.iter_text())
        log_dir.unlink()
        log_dir.mkdir()
        later = client.post("/api/promote", headers=headers).json()
        assert "nothing is in staging" in str(wait_done(client, later["id"])["error"])
