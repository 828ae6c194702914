"""A trivial job kind, ``noop``, for the distributed executor's tests and bench/bench_distributed.

Worker half: echo ``value`` after sleeping ``sleep`` seconds (and, given ``hold``, after the
file it names exists). Control half: ``prepare`` sends only those (never ``publish_to``);
``accept`` checks the echo and, standing in for publishing, appends one line per accepted
result to the file ``publish_to`` names, so a test can count publications.

A production worker never runs it: ``register()`` adds the worker half, and ``nanodistro
worker`` calls it only when started with ``NANODISTRO_WORKER_TEST_KINDS=1`` (the tests and the
bench set it). Even then the sleep is capped (``MAX_SLEEP``): anyone on the broker can queue a
task, and one asking for a sleep of a year would hold the worker that long.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError, TrustError
from nanodistro.factory.remote import WORKER_FUNCTIONS, ControlKind, WorkerContext

__all__ = ["MAX_SLEEP", "NOOP", "TEST_KINDS_ENV", "control_kind", "noop", "register"]

NOOP = "noop"
TEST_KINDS_ENV = "NANODISTRO_WORKER_TEST_KINDS"
MAX_SLEEP = 30.0  # seconds; the tests and the bench sleep a few at most


def noop(payload: dict[str, Any], context: WorkerContext) -> dict[str, Any]:
    sleep = payload.get("sleep", 0)
    if type(sleep) not in (int, float) or sleep != sleep:  # not a number, or NaN
        raise ConfigError(f"expected a number of seconds, got {sleep!r}", field="sleep")
    hold = payload.get("hold")
    if hold is not None and not isinstance(hold, str):
        raise ConfigError(f"expected the path of a file to wait for, got {hold!r}", field="hold")
    if hold:
        # a gate: the job keeps running until the test makes the file (MAX_SLEEP at most), so
        # an outage the test injects finds it mid-job however slow the machine is
        deadline = time.monotonic() + MAX_SLEEP
        while not Path(hold).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(min(max(float(sleep), 0.0), MAX_SLEEP))
    return {"echo": payload.get("value")}


def _prepare(inputs: dict[str, Any]) -> dict[str, Any]:
    payload = {"value": inputs.get("value"), "sleep": inputs.get("sleep", 0)}
    if inputs.get("hold"):
        payload["hold"] = inputs["hold"]
    return payload


def _accept(inputs: dict[str, Any], output: dict[str, Any], worker: str) -> dict[str, Any]:
    if output.get("echo") != inputs.get("value"):
        raise TrustError(
            f"worker {worker} echoed {output.get('echo')!r}, the job asked for "
            f"{inputs.get('value')!r}",
            field="echo",
        )
    if inputs.get("publish_to"):
        with Path(inputs["publish_to"]).open("a", encoding="utf-8") as published:
            published.write(f"{inputs.get('value')} {worker}\n")
    return {"echo": output["echo"], "worker": worker}


def control_kind() -> ControlKind:
    return ControlKind(prepare=_prepare, accept=_accept)


def register() -> None:
    """Add the worker half to this process's worker functions (tests and bench only)."""
    WORKER_FUNCTIONS.setdefault(NOOP, noop)
