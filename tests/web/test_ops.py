"""``/healthz`` and ``/metrics``: the numbers Prometheus reads are the state database's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from webapp import bearer, console, empty_workspace

from nanodistro import __version__
from nanodistro.factory import events
from nanodistro.factory.records import record_image, record_package, record_release
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import JobRow
from nanodistro.web.metrics import DURATION_BUCKETS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, over every family of the exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def add_job(state: State, key: str, kind: str, job_state: str, seconds: float | None) -> None:
    started = T0 if seconds is not None else None
    finished = T0 + timedelta(seconds=seconds) if seconds is not None else None
    with state.session() as session, session.begin():
        session.add(
            JobRow(
                kind=kind,
                key=key,
                state=job_state,
                attempts=1,
                max_attempts=3,
                not_before=T0,
                inputs={},
                created_at=T0,
                started_at=started,
                finished_at=finished,
            )
        )


def fill(state: State) -> None:
    add_job(state, "k1", "build", "succeeded", 3.0)
    add_job(state, "k2", "build", "succeeded", 40.0)
    add_job(state, "k3", "build", "queued", None)
    add_job(state, "k4", "test", "failed", 0.5)
    # three package versions released, then promoted to stable 100 s, 200 s, 1000 s later
    files = []
    for name, lead in (("a", 100), ("b", 200), ("c", 1000)):
        record_release(state, name, "1.0", "github", T0)
        record_package(
            state, name=name, version="1.0-r0", arch="x86_64", sha256="0" * 64, recipe=name,
            repo_version=1,
        )  # fmt: skip
        files.append(f"x86_64/{name}-1.0-r0.apk")
        events.record(
            state,
            events.PROMOTED,
            "channel:stable",
            {"packages": [files[-1]]},
            time=T0 + timedelta(seconds=lead),
        )
    record_package(
        state, name="a-dev", version="1.0-r0", arch="x86_64", sha256="1" * 64, recipe="a",
        repo_version=1,
    )  # fmt: skip
    events.record(state, events.GATE_BLOCKED, "channel:stable", {"reasons": ["x"]})
    for digest in ("sha256:1", "sha256:2"):
        record_image(
            state, name="base", digest=digest, tag="latest", repo_version=1, packages=["a-1.0-r0"]
        )


def test_metrics_are_the_rows_of_the_state_database(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws")) as (client, context):
        fill(context.write_state)
        context.runs.submit("cycle", {}, "alice")
        context.runs.submit("check", {"recipes": ["a"]}, "github")
        context.runs.submit("check", {"recipes": ["b"]}, "github")
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        got = samples(answer.text)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("nanodistro_up") == 1
    assert value("nanodistro_jobs", kind="build", state="succeeded") == 2
    assert value("nanodistro_jobs", kind="build", state="queued") == 1
    assert value("nanodistro_jobs", kind="test", state="failed") == 1
    # durations of finished jobs: build 3 s and 40 s, test 0.5 s
    assert value("nanodistro_job_duration_seconds_count", kind="build") == 2
    assert value("nanodistro_job_duration_seconds_sum", kind="build") == 43
    assert value("nanodistro_job_duration_seconds_bucket", kind="build", le="5.0") == 1
    assert value("nanodistro_job_duration_seconds_bucket", kind="build", le="60.0") == 2
    assert value("nanodistro_job_duration_seconds_bucket", kind="build", le="+Inf") == 2
    assert value("nanodistro_job_duration_seconds_bucket", kind="test", le="1.0") == 1
    assert len([k for k in got if k[0] == "nanodistro_job_duration_seconds_bucket"]) == 2 * (
        len(DURATION_BUCKETS) + 1
    )
    assert value("nanodistro_runs", kind="check", state="queued") == 2
    assert value("nanodistro_runs", kind="cycle", state="queued") == 1
    assert value("nanodistro_events_total", type="promoted") == 3
    assert value("nanodistro_events_total", type="gate-blocked") == 1
    # nearest-rank p50/p95 over 100, 200, 1000 s
    assert value("nanodistro_freshness_seconds", step="release_to_promoted", quantile="0.5") == 200
    assert (
        value("nanodistro_freshness_seconds", step="release_to_promoted", quantile="0.95") == 1000
    )
    assert value("nanodistro_freshness_package_versions", step="release_to_promoted") == 3
    assert value("nanodistro_packages") == 4
    assert value("nanodistro_package_names") == 4
    assert value("nanodistro_images") == 2
    assert value("nanodistro_image_names") == 1


def test_metrics_of_an_empty_workspace_and_each_app_its_own_registry(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "one")) as (one, context):
        fill(context.write_state)
        with console(empty_workspace(tmp_path / "two")) as (two, _):
            empty = samples(two.get("/metrics").text)
            full = samples(one.get("/metrics").text)
    assert empty[("nanodistro_packages", ())] == 0 and full[("nanodistro_packages", ())] == 4
    assert not [k for k in empty if k[0] == "nanodistro_freshness_seconds"]


def test_metrics_follow_public_reads(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws", "\n[serve]\npublic-reads = false\n")
    with console(root) as (client, context):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(context)).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes carry no token


def test_healthz(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws")) as (client, _context):
        answer = client.get("/healthz")
        assert answer.status_code == 200
        assert answer.json() == {
            "status": "ok",
            "version": __version__,
            "database": "ok",
            "runner": "not running",
            "services": {},
        }
    with console(empty_workspace(tmp_path / "ws2"), runner=True) as (client, context):
        assert client.get("/healthz").json()["runner"] == "alive"
        assert context.runner is not None
        context.runner.stop(timeout=5)  # the runner thread gone: the process is not healthy
        answer = client.get("/healthz")
        assert answer.status_code == 503
        assert answer.json()["status"] == "unavailable" and answer.json()["runner"] == "stopped"


def test_healthz_503_and_metrics_down_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        context.state.engine.dispose()
        context.write_state.engine.dispose()
        database = root / ".nanodistro" / "state.db"
        for extra in ("-wal", "-shm"):
            database.with_name(database.name + extra).unlink(missing_ok=True)
        database.write_bytes(b"this is not a database" * 100)
        answer = client.get("/healthz")
        assert answer.status_code == 503
        body = answer.json()
        # the reason (it names paths) is logged, not told to whoever asks
        assert body["status"] == "unavailable" and body["database"] == "unreadable"
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert samples(metrics.text)[("nanodistro_up", ())] == 0
