"""The factory's jobs split across the trust boundary between workers and the control plane.

    control plane  payload = control_kinds(...)[kind].prepare(inputs)   # no private key, no
                                                                        # credentials, no state URL
    worker         output = WORKER_FUNCTIONS[kind](payload, WorkerContext(...))
                   sealed = seal(output, job_key=, attempt=, worker=, token=)
    control plane  worker, output = unseal(sealed, job_key=, token_for=registry.token_for)
                   result = control_kinds(...)[kind].accept(inputs, output, worker)

Workers never sign and never write the repository or the registry: they return unsigned
packages and facts; ``accept`` verifies them against the job, signs, publishes through the
existing gates and records the events the local handlers record. ``WORKER_FUNCTIONS`` imports
nothing that needs a workspace, a state database or a key (the worker process imports only it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.factory.remote.build import worker_build, worker_test
from nanodistro.factory.remote.channel import (
    WorkerRecord,
    WorkerRegistry,
    seal,
    unseal,
    worker_token,
)
from nanodistro.factory.remote.images import worker_image, worker_smoke

__all__ = [
    "WORKER_FUNCTIONS",
    "ControlKind",
    "WorkerContext",
    "WorkerRecord",
    "WorkerRegistry",
    "control_kinds",
    "seal",
    "unseal",
    "worker_builder_id",
    "worker_token",
]


@dataclass(frozen=True)
class WorkerContext:
    """Where a worker works: ``work_dir`` for per-job directories (removed after each job),
    ``cache_dir`` for what it keeps between jobs (fetched sources)."""

    name: str
    work_dir: Path
    cache_dir: Path


WorkerFunction = Callable[[dict[str, Any], WorkerContext], dict[str, Any]]

WORKER_FUNCTIONS: dict[str, WorkerFunction] = {
    "build": worker_build,
    "test": worker_test,
    "image": worker_image,
    "smoke": worker_smoke,
}


@dataclass(frozen=True)
class ControlKind:
    prepare: Callable[[dict[str, Any]], dict[str, Any]]
    accept: Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]


def worker_builder_id(base: str, worker: str) -> str:
    """The provenance builder id of a build on ``worker``: the factory's id with
    ``/workers/<name>`` (before any ``#<workspace>``)."""
    head, sep, fragment = base.partition("#")
    return f"{head.rstrip('/')}/workers/{worker}{sep}{fragment}"


def control_kinds(
    build_plan: Any, image_plan: Any, *, repository_url: str | None = None
) -> dict[str, ControlKind]:
    """The control plane's half of each job kind, for a cycle's ``BuildPlan`` and
    ``ImagePlan`` (factory/building.py, factory/imagebuild.py). ``repository_url``: where
    workers on other machines read the control plane's repository (its packages directory
    served over HTTP; indexes and packages are verified with the public keys the payload
    carries); default: its path, for workers on the control plane's machine."""
    from nanodistro.builder.provenance import builder_id_for
    from nanodistro.factory.remote.build import (
        accept_build,
        accept_test,
        prepare_build,
        prepare_test,
    )
    from nanodistro.factory.remote.images import (
        accept_image,
        accept_smoke,
        prepare_image,
        prepare_smoke,
    )

    def builder_id(worker: str) -> str:
        config = build_plan.config
        return worker_builder_id(config.builder_id or builder_id_for(config.namespace), worker)

    return {
        "build": ControlKind(
            prepare_build(build_plan, repository_url), accept_build(build_plan, builder_id)
        ),
        "test": ControlKind(prepare_test(build_plan, repository_url), accept_test(build_plan)),
        "image": ControlKind(
            prepare_image(image_plan, repository_url), accept_image(image_plan, repository_url)
        ),
        "smoke": ControlKind(prepare_smoke(image_plan), accept_smoke(image_plan)),
    }
