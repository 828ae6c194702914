"""Deadlines at catalog scale: an upstream that accepts a connection and never answers, or trickles
one byte at a time, costs its recipe at most the recipe deadline (``--deadline``, ``[monitor]
deadline``); the deadline spans all of a recipe's requests but not its queueing behind other
recipes; a host that stayed silent is not asked again in the run; the other recipes report, in
recipe order."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_monitor_providers import PYPI_DOC

from nanodistro.errors import ConfigError
from nanodistro.factory.workspace import load_workspace
from nanodistro.monitor import shards
from nanodistro.monitor.check import check_paths, check_targets_async
from nanodistro.monitor.models import CheckResult
from nanodistro.monitor.providers.base import Endpoints
from nanodistro.monitor.recipes import target_from_document

# Margin for interpreter start-up and a loaded CI machine; the old behaviour (90 s per recipe
# and per queued recipe) is far outside it.
MARGIN = 10.0


@dataclass
class Slow:
    """A loopback upstream: ``delays`` holds answers back, ``/trickle`` sends a byte every half
    second, ``silent`` accepts connections and never answers (``accepted`` counts them)."""

    base: str
    silent: str
    stop: threading.Event
    routes: dict[str, tuple[float, bytes, dict[str, str]]] = field(default_factory=dict)
    accepted: list[socket.socket] = field(default_factory=list)

    def add(self, path: str, body: Any, delay: float = 0.0, **headers: str) -> None:
        self.routes[path] = (delay, json.dumps(body).encode(), headers)


@pytest.fixture
def slow() -> Iterator[Slow]:
    stop = threading.Event()
    routes: dict[str, tuple[float, bytes, dict[str, str]]] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/trickle":
                self.send_response(200)
                self.send_header("Content-Length", str(10**6))
                self.end_headers()
                while not stop.wait(0.5):
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        return
                return
            delay, body, headers = routes.get(self.path, (0.0, b"{}", {}))
            stop.wait(delay)
            self.send_response(200 if self.path in routes else 404)
            for key, value in headers.items():
                self.send_header(key, value.replace("{base}", base))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    state = Slow(base, f"http://127.0.0.1:{listener.getsockname()[1]}", stop, routes)

    def hold() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            state.accepted.append(connection)  # read nothing, answer nothing

    threading.Thread(target=hold, daemon=True).start()
    try:
        yield state
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        listener.close()
        for connection in state.accepted:
            connection.close()


def pypi(name: str, project: str) -> dict[str, Any]:
    return {
        "package": {"name": name, "version": "1.0.0", "epoch": 0},
        "update": {"enabled": True, "pypi": {"identifier": project}},
    }


def http_regex(name: str, url: str) -> dict[str, Any]:
    return {
        "package": {"name": name, "version": "1.0", "epoch": 0},
        "update": {"enabled": True, "http-regex": {"url": url, "pattern": r"demo-([\d.]+)"}},
    }


def github(name: str, repo: str) -> dict[str, Any]:
    return {
        "package": {"name": name, "version": "1.0.0", "epoch": 0},
        "update": {"enabled": True, "github": {"identifier": repo, "strip-prefix": "v"}},
    }


def run_checks(
    documents: list[dict[str, Any]], base: str, **options: Any
) -> tuple[list[CheckResult], float]:
    """Results (in recipe order) and seconds taken; the thread join is only a hang guard."""
    targets = [target_from_document(d, None) for d in documents]
    endpoints = Endpoints(pypi=base, github_api=base)
    found: list[list[CheckResult]] = []

    def work() -> None:
        found.append(
            asyncio.run(check_targets_async(targets, endpoints=endpoints, backoff=0.01, **options))
        )

    start = time.monotonic()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the monitor did not return"
    return found[0], time.monotonic() - start


def monitor_cli(recipes: Path, base: str, *args: str) -> tuple[dict[str, Any], float]:
    """``nanodistro monitor RECIPES --json ARGS`` as a user runs it; the JSON and seconds."""
    env = {**os.environ, "NANODISTRO_PYPI_URL": base, "NANODISTRO_GITHUB_API_URL": base}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "nanodistro", "monitor", str(recipes), "--json", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert done.returncode in (0, 1, 10), done.stderr
    return json.loads(done.stdout), elapsed


def write_recipes(directory: Path, documents: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for document in documents:
        (directory / f"{document['package']['name']}.yaml").write_text(json.dumps(document))


def test_silent_upstream_costs_the_deadline_given_on_the_command_line(
    slow: Slow, tmp_path: Path
) -> None:
    slow.add("/pypi/demo/json", PYPI_DOC)
    silent = http_regex("silent", f"{slow.silent}/releases")
    write_recipes(tmp_path / "recipes", [pypi("healthy", "demo"), silent])
    document, elapsed = monitor_cli(
        tmp_path / "recipes", slow.base, "--deadline", "2", "--cache-dir", str(tmp_path / "c")
    )
    assert elapsed < 2 + MARGIN
    results = {r["name"]: r for r in document["results"]}
    assert results["silent"]["status"] == "error"
    assert results["silent"]["message"] == (
        f"{slow.silent}/releases: no answer from 127.0.0.1 within the recipe deadline of 2 s "
        "(--deadline)"
    )
    assert results["healthy"]["status"] == "update"
    assert document["exit_status"] == 10


def test_trickling_upstream_is_cut_at_the_workspace_deadline(slow: Slow, tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text("[monitor]\ndeadline = 2\n")
    write_recipes(tmp_path / "recipes", [http_regex("trickled", f"{slow.base}/trickle")])
    # every single read is quick (a byte each half second): only a deadline stops it
    document, elapsed = monitor_cli(tmp_path, slow.base, "--cache-dir", str(tmp_path / "c"))
    assert elapsed < 2 + MARGIN
    (result,) = document["results"]
    assert result["status"] == "error"
    assert result["message"] == (
        f"{slow.base}/trickle: no answer from 127.0.0.1 within the recipe deadline of 2 s "
        "(--deadline)"
    )
    assert load_workspace(tmp_path).monitor_deadline == 2.0


@pytest.mark.parametrize("value", ["0", "-1", '"soon"', "true"])
def test_workspace_deadline_must_be_positive_seconds(tmp_path: Path, value: str) -> None:
    (tmp_path / "nanodistro.toml").write_text(f"[monitor]\ndeadline = {value}\n")
    with pytest.raises(ConfigError) as error:
        load_workspace(tmp_path)
    assert error.value.field == "monitor.deadline"
    assert "expected a positive number of seconds per recipe" in str(error.value)


def test_recipe_deadline_spans_all_its_requests(slow: Slow) -> None:
    # Three pages of releases, each answered within the request deadline (0.8 s < 1.5 s),
    # but together past the recipe's 2 s.
    releases = [{"tag_name": "v2.0.0", "published_at": "2024-01-01T00:00:00Z"}]
    for page in (1, 2, 3):
        link = {"Link": f'<{{base}}/repos/o/r/releases?per_page=100&page={page + 1}>; rel="next"'}
        path = "/repos/o/r/releases?per_page=100" + (f"&page={page}" if page > 1 else "")
        slow.add(path, releases, delay=0.8, **(link if page < 3 else {}))
    results, elapsed = run_checks(
        [github("paged", "o/r")], slow.base, request_timeout=1.5, recipe_timeout=2.0
    )
    assert elapsed < 2 + MARGIN
    (result,) = results
    assert result.status == "error"
    assert result.message == (
        f"{slow.base}/repos/o/r/releases?per_page=100&page=3: no answer from 127.0.0.1 within "
        "the recipe deadline of 2 s (--deadline)"
    )


def test_queueing_for_a_host_slot_is_not_charged_to_the_recipe(slow: Slow) -> None:
    # One request at a time to the host, 1 s each: the third recipe waits 2 s for its turn,
    # longer than its 1.8 s deadline, and is still checked.
    slow.add("/pypi/demo/json", PYPI_DOC, delay=1.0)
    documents = [pypi(f"queued{i}", "demo") for i in range(3)]
    results, _ = run_checks(documents, slow.base, per_host=1, recipe_timeout=1.8)
    assert [(r.name, r.status, r.message) for r in results] == [
        (f"queued{i}", "update", None) for i in range(3)
    ]


def test_silent_host_is_asked_once_per_slot_not_once_per_recipe(slow: Slow) -> None:
    slow.add("/pypi/demo/json", PYPI_DOC)
    documents = [http_regex(f"silent{i}", f"{slow.silent}/r{i}") for i in range(6)]
    results, elapsed = run_checks(
        [*documents, pypi("healthy", "demo")], slow.base, per_host=2, recipe_timeout=1.5
    )
    # the first two hold the host's slots until the deadline; the other four are refused
    # at once instead of each waiting for a slot and then for a deadline of its own
    assert len(slow.accepted) == 2
    assert elapsed < 1.5 + MARGIN
    messages = [r.message or "" for r in results[:6]]
    assert sum("within the recipe deadline of 1.5 s" in m for m in messages) == 2
    refused = [m for m in messages if "not asked again" in m]
    assert len(refused) == 4
    assert refused[0].startswith(f"{slow.silent}/r")
    assert "127.0.0.1 sent no answer within 1." in refused[0]
    assert results[6].status == "update"


def test_one_hanging_recipe_of_five_others_report_in_recipe_order(
    slow: Slow, tmp_path: Path
) -> None:
    # Answers come back in reverse order (the first recipe's upstream is the slowest), the
    # middle recipe's never does, and the files' order is not the names' order: the output
    # follows the recipes as found (file order), not the answers nor the names.
    names = ["zeta", "epsilon", "delta-hangs", "beta", "alpha"]
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for i, name in enumerate(names):
        if name == "delta-hangs":
            document = http_regex(name, f"{slow.silent}/x")
        else:
            slow.add(f"/pypi/p{i}/json", PYPI_DOC, delay=0.3 * (4 - i))
            document = pypi(name, f"p{i}")
        (recipes / f"{i}-recipe.yaml").write_text(json.dumps(document))
    document, elapsed = monitor_cli(
        recipes, slow.base, "--deadline", "2", "--cache-dir", str(tmp_path / "c")
    )
    assert elapsed < 2 + MARGIN
    assert [(r["name"], r["status"]) for r in document["results"]] == [
        ("zeta", "update"),
        ("epsilon", "update"),
        ("delta-hangs", "error"),
        ("beta", "update"),
        ("alpha", "update"),
    ]
    assert (
        "no answer from 127.0.0.1 within the recipe deadline of 2 s"
        in (document["results"][2]["message"])
    )


def test_catalog_shared_by_worker_processes_keeps_order_state_and_progress(
    slow: Slow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "MIN_SHARD", 2)
    monkeypatch.setenv("NANODISTRO_PYPI_URL", slow.base)
    names = ["zeta", "epsilon", "delta", "gamma", "beta", "alpha"]
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for i, name in enumerate(names):
        slow.add(f"/pypi/p{i}/json", PYPI_DOC, delay=0.1 * (5 - i), ETag=f'"e{i}"')
        (recipes / f"{i}.yaml").write_text(json.dumps(pypi(name, f"p{i}")))
    seen: list[str] = []
    cache = tmp_path / "cache"
    results = check_paths(
        [recipes], workers=3, cache_dir=cache, progress=lambda r: seen.append(r.name)
    )
    assert [(r.name, r.status) for r in results] == [(n, "update") for n in names]
    assert sorted(seen) == sorted(names)
    # each worker's schedule state reached the one state file
    state = json.loads((cache / "state.json").read_text())["recipes"]
    assert sorted(state) == sorted(names)
    assert all(entry["last_checked"] for entry in state.values())
    assert len(list((cache / "http").iterdir())) == 6  # every worker filled the HTTP cache
