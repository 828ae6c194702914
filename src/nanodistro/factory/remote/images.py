"""The ``image`` and ``smoke`` jobs under a remote executor.

image (split): the control plane sends the image config, the staging repository's location and
the public keys; the worker assembles the image (resolving against staging, every index and
package verified as locally) and returns its digest. Nothing of the image is the worker's word:
assembly is deterministic and cheap next to building packages, so the control plane reproduces
the image from the same inputs (the same config, repository location and keys, through the local
image job's own code: factory/imagebuild.py ``image_request``/``publish_image``) and accepts the
job only when its index digest is the worker's. A worker that added a file to a layer, changed
the config blob (entrypoint, env, user), dropped a package or used other packages gets a
different digest and is refused (``TrustError`` naming the worker and both digests; nothing
written). On a match the control plane writes its own layout, SBOMs and provenance, as
``image_handler`` does. Signing stays where it was: at promotion, in the control plane.

smoke (split): the control plane sends the image (every blob reachable from the digest, each
checked by the worker against its digest) and the test from the config's annotations; the worker
unpacks and runs it (umoci + runc or bubblewrap, as locally) and returns the verdict; the
control plane records it as ``smoke_handler`` does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro.errors import FetchError, ImageError, NanodistroError, TrustError
from nanodistro.factory.remote.payload import (
    b64,
    clipped,
    duration,
    fresh_dir,
    only_fields,
    unb64,
)

if TYPE_CHECKING:
    from nanodistro.factory.remote import WorkerContext

# ------------------------------------------------------------------------------------ image

IMAGE_OUTPUT = frozenset({"status", "error", "transient", "digest", "seconds", "log"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _staging_locations(plan: Any, repository_url: str | None) -> list[str]:
    """Where the worker reads the staging channel (the image's /etc/apk/repositories names it,
    so the control plane's reproduction reads the very same location)."""
    staging = plan.workspace.packages_dir / "staging"
    return [f"{repository_url.rstrip('/')}/staging" if repository_url else str(staging)]


def prepare_image(
    plan: Any, repository_url: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        from nanodistro.factory.remote.payload import sha256
        from nanodistro.trust.keys import load_keyring

        workspace = plan.workspace
        config_path = Path(inputs["config"])
        keyring = {n: pem.decode("ascii") for n, pem in load_keyring(workspace.keys_dir).items()}
        data = config_path.read_bytes()
        return {
            "image": inputs["image"],
            "config_file": config_path.name,
            "config": b64(data),
            "config_sha256": sha256(data),
            "archs": list(workspace.archs),
            "repositories": _staging_locations(plan, repository_url),
            "keyring": keyring,
            "distro": workspace.name,
        }

    return prepare


def worker_image(payload: dict[str, Any], ctx: WorkerContext) -> dict[str, Any]:
    """Assemble an image from the staging repository; its index digest is the output (the
    control plane reproduces the image and compares). A failure is the output too
    (``status: failed``)."""
    import shutil
    import time
    import uuid

    from nanodistro.factory.remote.payload import sha256
    from nanodistro.image.build import BuildRequest, build_image
    from nanodistro.imageconfig import load_config

    clock = time.monotonic()
    base = fresh_dir(ctx.work_dir, f"image-{uuid.uuid4().hex[:8]}")
    try:
        data = unb64(payload["config"], where="config")
        if sha256(data) != payload["config_sha256"]:
            raise ImageError("the config received does not match its sha256", where="config")
        config = base / Path(payload["config_file"]).name
        config.write_bytes(data)
        keys = base / "keys"
        keys.mkdir()
        for name, pem in payload["keyring"].items():
            (keys / Path(name).name).write_text(pem)
        request = BuildRequest(
            loaded=load_config(config),
            archs=list(payload["archs"]),
            repositories=list(payload["repositories"]),
            keyring_paths=[keys],
            distro=payload["distro"],
        )
        result = build_image(request)
    except NanodistroError as error:
        return {"status": "failed", "error": str(error), "transient": isinstance(error, FetchError)}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"status": "built", "digest": result.digest, "seconds": time.monotonic() - clock}


def accept_image(
    plan: Any, repository_url: str | None = None
) -> Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]:
    def accept(inputs: dict[str, Any], output: dict[str, Any], worker: str) -> dict[str, Any]:
        import datetime

        from nanodistro.factory.imagebuild import image_request, publish_image
        from nanodistro.image.build import build_image

        name = inputs["image"]
        where = f"worker {worker}: image {name}"
        output = only_fields(output, IMAGE_OUTPUT, where=where)
        if output.get("status") == "failed":
            error = f"on worker {worker}: {clipped(output.get('error') or 'failed')}"
            raise FetchError(error) if output.get("transient") is True else ImageError(error)
        if output.get("status") != "built":
            raise TrustError(f"unknown status {output.get('status')!r}", where=where)
        claimed = output.get("digest")
        if not isinstance(claimed, str) or not _DIGEST.fullmatch(claimed):
            raise TrustError(f"digest: expected sha256:<64 hex>, got {claimed!r}", where=where)
        seconds = duration(output.get("seconds"), where=where)
        config_path = Path(inputs["config"])
        config_bytes = config_path.read_bytes()
        # The same inputs the worker was sent (prepare_image): config, location, keys.
        request = image_request(
            plan.workspace, config_path, _staging_locations(plan, repository_url)
        )
        result = build_image(request)
        if result.digest != claimed:
            raise TrustError(
                f"worker {worker} returned image {claimed}, but the same inputs give "
                f"{result.digest} here; refused (nothing written)",
                where=where,
            )
        started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
        return publish_image(
            plan, inputs, config_bytes, request, result, started=started, worker=worker
        )

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
    from nanodistro.factory.imagebuild import image_request
    from nanodistro.factory.smoke import SMOKE_BINARIES, smoke_test_from_annotations

    def prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        name, digest = inputs["image"], inputs["digest"]
        request = image_request(plan.workspace, Path(inputs["config"]))
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
            **{
                k: clipped(output.get(k) or "") for k in ("runtime", "output", "expected", "detail")
            },
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
