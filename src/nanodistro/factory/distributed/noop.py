"""A trivial job kind, ``noop``, for the distributed executor's tests and bench/bench_distributed.

Worker half: echo ``value`` after sleeping ``sleep`` seconds. Control half: ``prepare`` sends
only those two (never ``publish_to``); ``accept`` checks the echo and, standing in for
publishing, appends one line per accepted result to the file ``publish_to`` names, so a test
can count publications. Importing this module registers the worker half.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nanodistro.errors import TrustError
from nanodistro.factory.remote import WORKER_FUNCTIONS, ControlKind, WorkerContext

__all__ = ["NOOP", "control_kind", "noop"]

NOOP = "noop"


def noop(payload: dict[str, Any], context: WorkerContext) -> dict[str, Any]:
    time.sleep(float(payload.get("sleep", 0)))
    return {"echo": payload.get("value")}


def _prepare(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"value": inputs.get("value"), "sleep": inputs.get("sleep", 0)}


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


WORKER_FUNCTIONS.setdefault(NOOP, noop)
