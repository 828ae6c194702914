"""The event log and the factory's jobs in the API and the console: filters, newest first,
links from subjects, job logs as server-sent events, and the run/job pages a browser watches."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from querycount import count_statements
from webapp import console, empty_workspace

from nanodistro.factory import events
from nanodistro.factory.records import record_package
from nanodistro.factory.state.models import EventRow, JobRow, PackageRow
from nanodistro.web.context import WebContext

NOW = datetime.now(UTC)


@pytest.fixture
def activity(tmp_path: Path) -> Iterator[tuple[TestClient, WebContext, Path]]:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        state = context.write_state
        record_package(state, name="libgreet-dev", version="1.2.0-r0", arch="x86_64",
                       sha256="0" * 64, recipe="libgreet", repo_version=1)  # fmt: skip
        record_package(state, name="libgreet", version="1.2.0-r0", arch="x86_64",
                       sha256="1" * 64, recipe="libgreet", repo_version=1)  # fmt: skip
        record_package(state, name="hello-tools", version="2.0-r0", arch="x86_64",
                       sha256="2" * 64, recipe="hello", repo_version=1)  # fmt: skip
        at = NOW - timedelta(hours=3)
        events.record(state, events.RELEASE_DETECTED, "recipe:libgreet", {"version": "1.3.0"}, at)
        events.record(state, events.BUILD_SUCCEEDED, "recipe:libgreet", {"version": "1.3.0"})
        events.record(state, events.BUILD_SUCCEEDED, "recipe:hello", {"version": "2.0-r1"})
        events.record(state, events.BUILD_FAILED, "recipe:ghost", {"error": "no such recipe"})
        events.record(state, events.IMAGE_BUILT, "image:hello", {"digest": "sha256:" + "a" * 64})
        events.record(state, events.PROMOTED, "channel:stable", {"version": 2})
        yield client, context, root


def test_events_newest_first_with_filters_and_links(
    activity: tuple[TestClient, WebContext, Path],
) -> None:
    client, _context, _root = activity
    listed = client.get("/api/events").json()
    assert [e["type"] for e in listed] == [
        "promoted", "image-built", "build-failed", "build-succeeded", "build-succeeded",
        "release-detected",
    ]  # fmt: skip
    assert [e["id"] for e in listed] == sorted((e["id"] for e in listed), reverse=True)
    links = {e["subject"]: e["link"] for e in listed}
    assert links == {
        "channel:stable": None,
        "image:hello": "/images/hello",
        "recipe:ghost": None,  # no package made by it: no page to link to
        "recipe:hello": "/packages/hello-tools",  # the recipe's only package
        "recipe:libgreet": "/packages/libgreet",  # the package named like the recipe
    }

    def types(**params: Any) -> list[str]:
        answer = client.get("/api/events", params=params)
        assert answer.status_code == 200, answer.text
        return [e["type"] for e in answer.json()]

    assert types(type="build-succeeded") == ["build-succeeded", "build-succeeded"]
    assert types(subject="recipe:libgreet") == ["build-succeeded", "release-detected"]
    assert types(subject="recipe:") == [
        "build-failed", "build-succeeded", "build-succeeded", "release-detected",
    ]  # fmt: skip
    assert types(subject="recipe:%") == []  # a LIKE wildcard is a character, not "anything"
    assert types(since="1h") == types()[:-1]
    assert types(since=(NOW - timedelta(hours=4)).isoformat()) == types()
    assert types(limit=2) == ["promoted", "image-built"]
    before = listed[1]["id"]
    assert types(before=before, limit=2) == ["build-failed", "build-succeeded"]
    # what a client may get wrong is answered 400/422 with a reason, never 500
    assert client.get("/api/events", params={"since": "yesterday"}).status_code == 400
    assert "ISO-8601" in client.get("/api/events", params={"since": "soon"}).json()["detail"]
    assert client.get("/api/events", params={"since": "9" * 30 + "d"}).status_code == 400
    for bad in ({"limit": 0}, {"limit": 1001}, {"type": "exploded"}, {"before": 2**70}):
        assert client.get("/api/events", params=bad).status_code == 422, bad


def test_events_page_has_filters_and_subject_links(
    activity: tuple[TestClient, WebContext, Path],
) -> None:
    client, _context, _root = activity
    page = client.get("/events")
    assert page.status_code == 200
    html = page.text
    assert '<select name="type" id="filter-type">' in html
    assert '<option value="vulnerability-fixed">' in html
    assert 'id="filter-subject"' in html and 'id="filter-since"' in html
    assert '<a href="/images/hello">image:hello</a>' in html
    assert '<a href="/packages/libgreet">recipe:libgreet</a>' in html
    assert len(re.findall(r"<tr data-event=", html)) == 6
    filtered = client.get("/events", params={"type": "build-failed"}).text
    assert len(re.findall(r"<tr data-event=", filtered)) == 1
    assert '<option value="build-failed" selected>' in filtered
    refused = client.get("/events", params={"since": "whenever"})
    assert refused.status_code == 400 and 'id="filter-error"' in refused.text
    assert client.get("/events", params={"type": "nope"}).status_code == 400


def add_job(
    context: WebContext, *, kind: str, state: str, log: Path | None = None, **inputs: Any
) -> int:
    with context.write_state.session() as session, session.begin():
        row = JobRow(
            kind=kind, key=f"{kind}-{len(inputs)}-{time.monotonic_ns()}", state=state,
            attempts=1, max_attempts=3, not_before=NOW, inputs=inputs, result=None,
            error="boom: exit 2" if state == "failed" else None,
            log_path=str(log) if log else None, created_at=NOW, started_at=NOW,
            finished_at=NOW if state in ("succeeded", "failed") else None,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def test_jobs_list_detail_filters_and_404(activity: tuple[TestClient, WebContext, Path]) -> None:
    client, context, root = activity
    log = root / "build.log"
    log.write_text("compiling\nlinking\n")
    build = add_job(context, kind="build", state="succeeded", log=log, recipe="libgreet")
    image = add_job(context, kind="image", state="failed", image="hello")
    queued = add_job(context, kind="test", state="queued", recipe="hello")
    listed = client.get("/api/jobs").json()
    assert [j["id"] for j in listed] == [queued, image, build]
    assert [j["label"] for j in listed] == ["hello", "hello", "libgreet"]
    assert [j["id"] for j in client.get("/api/jobs", params={"state": "failed"}).json()] == [image]
    assert [j["id"] for j in client.get("/api/jobs", params={"kind": "build"}).json()] == [build]
    detail = client.get(f"/api/jobs/{image}").json()
    assert detail["error"] == "boom: exit 2" and detail["inputs"] == {"image": "hello"}
    assert detail["log_url"] == f"/api/jobs/{image}/log"
    assert client.get("/api/jobs/999").status_code == 404
    for bad in ("0", str(2**70), "x"):
        assert client.get(f"/api/jobs/{bad}").status_code == 422, bad
        assert client.get(f"/api/jobs/{bad}/log").status_code == 422, bad
    assert client.get("/api/jobs", params={"state": "lost"}).status_code == 422
    assert client.get("/api/jobs/999/log").status_code == 404


def sse(client: TestClient, url: str) -> tuple[list[str], list[str]]:
    """(data lines, event names) of a finished server-sent event stream."""
    with client.stream("GET", url) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    lines = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
    kinds = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
    return lines, kinds


def test_job_log_streams_lines_then_end_also_when_it_ends_later(
    activity: tuple[TestClient, WebContext, Path],
) -> None:
    client, context, root = activity
    log = root / "build.log"
    log.write_text("compiling\nlinking\nok")
    done = add_job(context, kind="build", state="succeeded", log=log, recipe="libgreet")
    lines, kinds = sse(client, f"/api/jobs/{done}/log")
    assert kinds[-1] == "end" and lines[:3] == ["compiling", "linking", "ok"]

    # a running job has no log path yet: the stream waits, then follows the log it gets
    running = add_job(context, kind="build", state="running", recipe="hello")
    later = root / "later.log"

    def finish() -> None:
        time.sleep(0.6)
        later.write_text("step 1\nstep 2\n")
        with context.write_state.session() as session, session.begin():
            row = session.get(JobRow, running)
            assert row is not None
            row.state, row.log_path, row.finished_at = "succeeded", str(later), datetime.now(UTC)

    thread = threading.Thread(target=finish)
    thread.start()
    try:
        lines, kinds = sse(client, f"/api/jobs/{running}/log")
    finally:
        thread.join()
    assert kinds[-1] == "end" and lines[:2] == ["step 1", "step 2"]

    # a path named in an error is not followed (only what the executor recorded is a log):
    # the error itself is shown
    named = root / "named.log"
    named.write_text("secret from elsewhere\n")
    failed = add_job(context, kind="build", state="failed", recipe="x")
    with context.write_state.session() as session, session.begin():
        row = session.get(JobRow, failed)
        assert row is not None
        row.error = f"build failed; last lines of {named}:\ncc: error"
    lines, kinds = sse(client, f"/api/jobs/{failed}/log")
    assert kinds[-1] == "end" and lines[1:3] == [
        f"build failed; last lines of {named}:",
        "cc: error",
    ]
    assert "secret from elsewhere" not in lines
    # no log at all: one line says so (with the error), then the end, never a hang
    bare = add_job(context, kind="image", state="failed", image="hello")
    lines, kinds = sse(client, f"/api/jobs/{bare}/log")
    assert kinds == ["line", "line", "end"]
    assert lines[:2] == [f"no log recorded for job {bare}", "boom: exit 2"]


def test_runs_page_run_page_and_job_page(activity: tuple[TestClient, WebContext, Path]) -> None:
    client, context, root = activity
    run, _ = context.runs.submit("cycle", {"monitor": True}, "alice")
    job = add_job(context, kind="build", state="failed", log=root / "none.log", recipe="libgreet")
    runs = client.get("/runs")
    assert runs.status_code == 200
    assert f'<a href="/runs/{run.id}">#{run.id}</a>' in runs.text
    assert f'<a href="/jobs/{job}">#{job}</a>' in runs.text and "boom: exit 2" in runs.text
    page = client.get(f"/runs/{run.id}").text
    assert re.search(r'<span id="run-state" class="badge queued" data-state="queued">queued<', page)
    assert '<pre id="run-log" class="log"></pre>' in page
    assert f'api: "/api/runs/{run.id}"' in page and f"/api/runs/{run.id}/log" in page
    job_page = client.get(f"/jobs/{job}").text
    assert 'id="job-state" class="badge failed"' in job_page and 'id="job-log"' in job_page
    assert (
        client.get("/runs/999").status_code == 404 and "no run 999" in client.get("/runs/999").text
    )
    assert client.get("/jobs/999").status_code == 404
    assert client.get("/runs/0").status_code == 422


def test_events_page_stays_fast_with_thousands_of_events(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        with context.write_state.session() as session, session.begin():
            session.add_all(
                EventRow(type=events.BUILD_SUCCEEDED, subject=f"recipe:r{i % 1000}",
                         time=NOW - timedelta(seconds=i), payload={"version": f"1.{i}"})
                for i in range(5000)
            )  # fmt: skip
            session.add_all(
                JobRow(kind="build", key=f"k{i}", state="succeeded", attempts=1, max_attempts=3,
                       not_before=NOW, inputs={"recipe": f"r{i}"}, result={}, created_at=NOW)
                for i in range(3000)
            )  # fmt: skip
            session.add_all(
                PackageRow(name=f"r{i}", version="1-r0", arch="x86_64", sha256=f"{i:064x}",
                           recipe=f"r{i}", repo_version=1)
                for i in range(1000)
            )  # fmt: skip
        for path in ("/events", "/api/events", "/runs", "/api/jobs"):
            assert client.get(path).status_code == 200  # warm
            # a bounded number of queries whatever the number of rows (bench/bench_console.py
            # measures the time)
            with count_statements(context.state.engine, context.write_state.engine) as sql:
                answer = client.get(path)
            assert answer.status_code == 200
            assert len(sql) <= 6, (path, sql)
        assert len(client.get("/api/events", params={"limit": 1000}).json()) == 1000
