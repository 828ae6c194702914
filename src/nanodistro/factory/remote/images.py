"""The ``image`` and ``smoke`` jobs under a remote executor.

smoke (split): the control plane sends the image (every blob reachable from the digest, each
checked by the worker against its digest) and the test from the config's annotations; the worker
unpacks and runs it (umoci + runc or bubblewrap, as locally) and returns the verdict; the
control plane records it as ``smoke_handler`` does.

image (not split yet): it still runs in the control plane, in ``accept`` (the local
``image_handler``), and the worker only acknowledges the job. The image is assembled from
already signed, verified packages and signed (cosign) only at promotion, so no key reaches a
worker either way; what is missing is moving the assembly's CPU to workers (the worker would
return the layout's blobs, the control plane check them against the staging index).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro.errors import ImageError, NanodistroError, TrustError
from nanodistro.factory.remote.payload import b64, fresh_dir, only_fields, unb64

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


# ------------------------------------------------------------------------------------ smoke

SMOKE_OUTPUT = frozenset({"status", "runtime", "output", "expected", "detail"})
SMOKE_STATUSES = frozenset({"none", "passed", "failed", "error"})
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def image_blobs(layout: Path, digest: str) -> dict[str, bytes]:
    """digest -> bytes of every blob reachable from ``digest`` (indexes, manifests, configs,
    layers) in an OCI layout."""
    blobs: dict[str, bytes] = {}
    pending = [digest]
    while pending:
        current = pending.pop()
        if current in blobs:
            continue
        algorithm, _, hexdigest = current.partition(":")
        data = (layout / "blobs" / algorithm / hexdigest).read_bytes()
        blobs[current] = data
        try:
            document = json.loads(data)
        except ValueError:
            continue  # a layer
        if not isinstance(document, dict):
            continue
        children = [*document.get("manifests", []), *document.get("layers", [])]
        if isinstance(document.get("config"), dict):
            children.append(document["config"])
        pending += [str(c["digest"]) for c in children if isinstance(c, dict) and "digest" in c]
    return blobs


def prepare_smoke(plan: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from nanodistro.factory.imagebuild import _request
    from nanodistro.factory.smoke import SMOKE_BINARIES, smoke_test_from_annotations

    def prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        name, digest = inputs["image"], inputs["digest"]
        request = _request(plan.workspace, Path(inputs["config"]))
        config = request.loaded.config
        try:
            test = smoke_test_from_annotations(dict(config.annotations), where=inputs["config"])
        except NanodistroError as error:
            return {"image": name, "digest": digest, "error": str(error)}
        if test is None:
            return {"image": name, "digest": digest, "test": None}
        binary = next((k for k, v in SMOKE_BINARIES.items() if v == test.binary), None)
        layout = plan.workspace.image_out_dir / name
        return {
            "image": name,
            "digest": digest,
            "test": {"args": test.args, "expect": test.expect, "binary": binary},
            "entrypoint": config.entrypoint.argv(),
            "blobs": {d: b64(data) for d, data in sorted(image_blobs(layout, digest).items())},
        }

    return prepare


def worker_smoke(payload: dict[str, Any], ctx: WorkerContext) -> dict[str, Any]:
    """Run an image's smoke test on this worker; the verdict is the output (a test that could
    not run is ``error``, as locally)."""
    import shutil
    import uuid

    from nanodistro.factory.smoke import SMOKE_BINARIES, SmokeTest, run_smoke_test
    from nanodistro.image.tags import set_tag

    if payload.get("error"):
        return {"status": "error", "detail": str(payload["error"])}
    test = payload.get("test")
    if test is None:
        return {"status": "none"}
    layout = fresh_dir(ctx.work_dir, f"smoke-{uuid.uuid4().hex[:8]}")
    try:
        for digest, text in payload["blobs"].items():
            data = unb64(text, where=digest)
            algorithm, _, hexdigest = str(digest).partition(":")
            if algorithm != "sha256" or hashlib.sha256(data).hexdigest() != hexdigest:
                raise ImageError("blob does not match its digest", where=str(digest))
            (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            (layout / "blobs" / "sha256" / hexdigest).write_bytes(data)
        (layout / "oci-layout").write_bytes(OCI_LAYOUT)
        (layout / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
        set_tag(layout, "smoke", payload["digest"])
        binary = SMOKE_BINARIES[test["binary"]] if test.get("binary") else None
        result = run_smoke_test(
            layout,
            "smoke",
            SmokeTest(args=list(test["args"]), expect=str(test["expect"]), binary=binary),
            list(payload["entrypoint"]),
        )
    except NanodistroError as error:
        return {"status": "error", "detail": str(error)}
    finally:
        shutil.rmtree(layout, ignore_errors=True)
    return {
        "status": "passed" if result.passed else "failed",
        "runtime": result.runtime,
        "output": result.output,
        "expected": result.expected,
        "detail": result.detail,
    }


def accept_smoke(plan: Any) -> Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]:
    from nanodistro.factory import events
    from nanodistro.factory.catalog import SmokeReport

    def accept(inputs: dict[str, Any], output: dict[str, Any], worker: str) -> dict[str, Any]:
        where = f"worker {worker}: smoke {inputs['image']}@{inputs['digest'][:19]}"
        output = only_fields(output, SMOKE_OUTPUT, where=where)
        status = output.get("status")
        if status not in SMOKE_STATUSES:
            raise TrustError(f"unknown smoke status {status!r}", where=where)
        report = SmokeReport(
            str(status),
            **{k: str(output.get(k) or "") for k in ("runtime", "output", "expected", "detail")},
        )
        if report.status != "none":
            events.record(
                plan.state,
                events.SMOKE_PASSED if report.status == "passed" else events.SMOKE_FAILED,
                f"image:{inputs['image']}",
                {
                    "digest": inputs["digest"],
                    "runtime": report.runtime,
                    "output": report.output,
                    "detail": report.detail,
                    "worker": worker,
                },
            )
        return {"smoke": report.__dict__}

    return accept
