"""The ``image`` and ``smoke`` jobs under a remote executor.

Not split yet: both still run in the control plane, in ``accept`` (the local handlers of
factory/imagebuild.py), and the worker only acknowledges the job. The image is assembled from
already signed, verified packages and signed (cosign) only at promotion, so no key reaches a
worker either way; what is missing is moving the assembly and the smoke run's CPU to workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nanodistro.errors import TrustError

if TYPE_CHECKING:
    from nanodistro.factory.remote import WorkerContext

IN_CONTROL_PLANE = "control-plane"


def prepare_here(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"run": IN_CONTROL_PLANE}


def worker_acknowledge(payload: dict[str, Any], ctx: WorkerContext) -> dict[str, Any]:
    """Nothing to do on the worker: the control plane runs this job itself (see above)."""
    return {"run": IN_CONTROL_PLANE}


def accept_here(
    handler: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]:
    def accept(inputs: dict[str, Any], output: dict[str, Any], worker: str) -> dict[str, Any]:
        if output != {"run": IN_CONTROL_PLANE}:
            raise TrustError("unexpected output for a job run in the control plane", where=worker)
        return handler(inputs)

    return accept
