"""The image side of a factory cycle: every image against the staging repository version.

An image is rebuilt only when its inputs change (the config bytes and the exact packages the
resolver picks: factory/catalog.py's inputs digest), as an ``image`` job keyed by them, so a
crashed or repeated cycle does not build it twice. A build goes into the image's persistent OCI
layout ``out/images/<name>/`` (image/tags.py: an immutable ``build-<N>`` tag, ``staging`` and
``latest`` move to it; old digests stay). Its smoke test is a ``smoke`` job keyed by the
digest: each digest is smoke-tested once.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.catalog import (
    COMPARE_DEBIAN,
    INPUTS_FORMAT,
    DebianArchive,
    ImageReport,
    SmokeReport,
    _inputs_digest,
    _layout_blob,
)
from nanodistro.factory.records import record_image
from nanodistro.factory.smoke import run_smoke_test, smoke_test_from_annotations
from nanodistro.factory.workspace import Workspace
from nanodistro.util.host import host_arch
from nanodistro.util.progress import Progress, prefixed


@dataclass
class ImagePlan:
    workspace: Workspace
    state: Any
    repo_version: int
    run_jobs: Callable[[list[Any]], list[Any]]
    say: Progress


def image_name(config_path: Path) -> str:
    return config_path.name.removesuffix(".yaml").removesuffix(".yml")


def image_request(
    workspace: Workspace, config_path: Path, repositories: list[str] | None = None
) -> Any:
    """The image job's ``BuildRequest``; ``repositories``: where the staging channel is read
    from (default its path; a remote image job names the URL its workers were given, so the
    control plane reproduces their image byte for byte)."""
    from nanodistro.image.build import BuildRequest
    from nanodistro.imageconfig import load_config

    # The staging channel, not the working repository: the image is made of exactly the
    # version the gates judge (and its /etc/apk/repositories names the channel).
    return BuildRequest(
        loaded=load_config(config_path),
        archs=list(workspace.archs),
        repositories=repositories or [str(workspace.packages_dir / "staging")],
        keyring_paths=[workspace.keys_dir],
        distro=workspace.name,  # the purl distro its packages carry
    )


def digest_sizes(layout: Path, digest: str) -> tuple[int, int]:
    """(compressed, unpacked) bytes of the host arch's image under ``digest`` in a layout."""
    import gzip

    from nanodistro.imageconfig.arch import APK_TO_OCI

    wanted = APK_TO_OCI.get(host_arch(), host_arch()).split("/", 1)[0]
    pending: list[dict[str, Any]] = [{"digest": digest, "size": 0}]
    while pending:
        descriptor = pending.pop(0)
        raw = _layout_blob(layout, descriptor["digest"])
        document = json.loads(raw)
        if "manifests" in document:
            pending.extend(document["manifests"])
            continue
        platform = descriptor.get("platform", {})
        if platform and platform.get("architecture") != wanted:
            continue
        compressed = len(raw) + int(document["config"]["size"])
        unpacked = 0
        for layer in document["layers"]:
            compressed += int(layer["size"])
            data = _layout_blob(layout, layer["digest"])
            unpacked += (
                len(gzip.decompress(data))
                if str(layer["mediaType"]).endswith("gzip")
                else len(data)
            )
        return compressed, unpacked
    return 0, 0


def image_handler(plan: ImagePlan) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The ``image`` job: build, add to the persistent layout under a new ``build-<N>`` tag plus
    ``staging`` and ``latest``."""
    from nanodistro.image.build import build_image

    def handle(inputs: dict[str, Any]) -> dict[str, Any]:
        config_path = Path(inputs["config"])
        request = image_request(plan.workspace, config_path)
        config_bytes = config_path.read_bytes()
        started = datetime.datetime.now(datetime.UTC)
        result = build_image(request, progress=prefixed(plan.say, inputs["image"]))
        return publish_image(plan, inputs, config_bytes, request, result, started=started)

    return handle


def publish_image(
    plan: ImagePlan,
    inputs: dict[str, Any],
    config_bytes: bytes,
    request: Any,
    result: Any,
    *,
    started: datetime.datetime,
    worker: str | None = None,
) -> dict[str, Any]:
    """A built image (``image.build.BuildResult``) into the image's persistent layout, its
    SBOMs and provenance, the image record and the ``image-built`` event; the job's result.
    ``worker``: the remote worker whose image this reproduces (named in the event)."""
    from nanodistro.factory.imagesign import record_image_provenance
    from nanodistro.image.build import write_result
    from nanodistro.image.sbomstore import store_sboms
    from nanodistro.image.tags import add_to_layout

    config_path = Path(inputs["config"])
    name = inputs["image"]
    layout = plan.workspace.image_out_dir / name
    plan.workspace.image_out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=plan.workspace.image_out_dir))
    try:
        built = scratch / "layout"
        write_result(result, built)
        added = add_to_layout(layout, built, ["staging", "latest"])
        # Kept per digest: the factory attests these SBOMs and the provenance when it
        # promotes and pushes the image (factory/imagesign.py).
        store_sboms(layout, result.digest, result.sboms)
        record_image_provenance(
            plan.workspace,
            layout,
            config_path,
            config_bytes,
            result,
            request.repositories,
            started=started,
            finished=datetime.datetime.now(datetime.UTC),
            invocation_id=f"{name}/{added.build_tag}",
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    packages = [f"{p.apk.name}-{p.apk.version}" for p in result.images[0].root.packages]
    build_tag = added.build_tag
    record_image(
        plan.state,
        name=name,
        digest=result.digest,
        tag=build_tag,
        repo_version=plan.repo_version,
        packages=packages,
    )
    payload: dict[str, Any] = {
        "digest": result.digest,
        "tag": build_tag,
        "repo_version": plan.repo_version,
        "packages": packages,
        "inputs": inputs["inputs"],
    }
    if worker is not None:
        payload["worker"] = worker
    events.record(plan.state, events.IMAGE_BUILT, f"image:{name}", payload)
    return {"digest": result.digest, "packages": packages, "tag": build_tag}


def smoke_handler(plan: ImagePlan) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The ``smoke`` job: the image's smoke test against one digest (never raises for a failed
    test: the outcome is the result, the gates read it)."""

    def handle(inputs: dict[str, Any]) -> dict[str, Any]:
        from nanodistro.image.tags import list_tags, set_tag, tag_digest

        name, digest = inputs["image"], inputs["digest"]
        layout = plan.workspace.image_out_dir / name
        request = image_request(plan.workspace, Path(inputs["config"]))
        config = request.loaded.config
        report = SmokeReport("none")
        try:
            test = smoke_test_from_annotations(dict(config.annotations), where=inputs["config"])
            if test is not None:
                # the immutable build-<N> tag of this digest; a working tag only for a digest
                # the layout holds under no build tag
                ref = next(
                    (
                        t
                        for t, d in sorted(list_tags(layout).items())
                        if d == digest and t.startswith("build-")
                    ),
                    "smoke",
                )
                if tag_digest(layout, ref) != digest:
                    set_tag(layout, ref, digest)
                plan.say(f"[{name}] smoke test: {test.args}")
                result = run_smoke_test(layout, ref, test, config.entrypoint.argv())
                report = SmokeReport(
                    "passed" if result.passed else "failed",
                    runtime=result.runtime,
                    output=result.output,
                    expected=result.expected,
                    detail=result.detail,
                )
        except NanodistroError as error:
            report = SmokeReport("error", detail=str(error))
        if report.status != "none":
            events.record(
                plan.state,
                events.SMOKE_PASSED if report.status == "passed" else events.SMOKE_FAILED,
                f"image:{name}",
                {
                    "digest": digest,
                    "runtime": report.runtime,
                    "output": report.output,
                    "detail": report.detail,
                },
            )
        return {"smoke": report.__dict__}

    return handle


@dataclass
class _Pending:
    """One image between its phases in ``build_images``."""

    image: ImageReport
    request: Any
    blockers: list[str]
    before: str | None
    started: float
    spec: Any = None


def build_images(plan: ImagePlan, blocked_by: dict[str, str]) -> list[ImageReport]:
    """Every image config: rebuild when its inputs changed, then its smoke test (once per
    digest). Images are independent: their build jobs are submitted together, then their smoke
    jobs (the executor bounds how many run at once). Failures are reports, never exceptions."""
    from nanodistro.factory.jobs import JobSpec

    workspace = plan.workspace
    workspace.image_out_dir.mkdir(parents=True, exist_ok=True)
    reports: list[ImageReport] = []
    debian: DebianArchive | None = None
    if any(COMPARE_DEBIAN in p.read_text(errors="replace") for p in workspace.image_files()):
        debian = DebianArchive.from_host()
    pending: list[_Pending] = []
    for config_path in workspace.image_files():  # decide: inputs digest -> image job
        name = image_name(config_path)
        layout = workspace.image_out_dir / name
        image = ImageReport(name=name, config=str(config_path), status="failed", layout=str(layout))
        reports.append(image)
        started = time.monotonic()
        try:
            request = image_request(workspace, config_path)
            wanted = set(request.loaded.config.all_packages())
            blockers = sorted({r for p, r in blocked_by.items() if p in wanted})
            inputs, _resolved = _inputs_digest(config_path, request, prefixed(plan.say, name))
            spec = JobSpec(
                "image",
                {
                    "image": name,
                    "config": str(config_path),
                    "inputs": inputs,
                    "format": INPUTS_FORMAT,
                },
            )
            before = _staging_digest(layout)
            pending.append(_Pending(image, request, blockers, before, started, spec))
        except NanodistroError as error:
            _failed(plan, image, str(error), started)
    built = _run(plan, pending)
    for item, job in built:  # tags, sizes -> smoke job
        image = item.image
        try:
            if job.state != "succeeded":
                image.error = job.error or "image build failed"
                if item.blockers:
                    image.status = "skipped"
                    image.error = f"needs packages of failed recipes: {', '.join(item.blockers)}"
                _failed(plan, image, image.error, item.started)
                continue
            _record_build(image, item.before, dict(job.result or {}))
            item.spec = JobSpec(
                "smoke", {"image": image.name, "config": image.config, "digest": image.digest}
            )
        except NanodistroError as error:
            _failed(plan, image, str(error), item.started)
    smoked = _run(plan, [item for item, _job in built if item.spec is not None])
    for item, smoke in smoked:
        image = item.image
        if smoke.state == "succeeded":
            image.smoke = SmokeReport(**dict((smoke.result or {}).get("smoke", {})))
        else:
            image.smoke = SmokeReport("error", detail=smoke.error or "smoke job failed")
        compare = item.request.loaded.config.annotations.get(COMPARE_DEBIAN, "").split()
        if compare and debian is not None:
            try:
                image.debian = debian.equivalent(compare)
            except NanodistroError as error:
                image.status, image.error = "failed", str(error)
                plan.say(f"FAILED image {image.name}: {image.error.splitlines()[0]}")
        image.seconds = round(time.monotonic() - item.started, 1)
        if image.smoke.status in ("failed", "error"):
            plan.say(
                f"FAILED smoke test {image.name}: {image.smoke.detail or image.smoke.output!r}"
            )
    return reports


def _run(plan: ImagePlan, pending: list[_Pending]) -> list[tuple[_Pending, Any]]:
    """Run the jobs of ``pending`` together; each with its finished job."""
    if not pending:
        return []
    return list(zip(pending, plan.run_jobs([p.spec for p in pending]), strict=True))


def _staging_digest(layout: Path) -> str | None:
    from nanodistro.image.tags import tag_digest

    return tag_digest(layout, "staging") if (layout / "index.json").is_file() else None


def _record_build(image: ImageReport, before: str | None, result: dict[str, Any]) -> None:
    """The built image into its report; ``staging`` and ``latest`` on its digest (the same
    inputs again, or a crashed cycle, found the job done without moving them)."""
    from nanodistro.image.sbomstore import sbom_dir
    from nanodistro.image.tags import set_tag, tag_digest

    layout = Path(image.layout)
    image.digest = str(result["digest"])
    image.packages = list(result.get("packages", []))
    image.status = "unchanged" if before == image.digest else "built"
    for tag in ("staging", "latest"):
        if tag_digest(layout, tag) != image.digest:
            set_tag(layout, tag, image.digest)
    image.size, image.unpacked_size = digest_sizes(layout, image.digest)
    image.sboms = sorted(str(p) for p in sbom_dir(layout, image.digest).glob("*"))


def _failed(plan: ImagePlan, image: ImageReport, error: str, started: float) -> None:
    if image.status != "skipped":
        image.status = "failed"
    image.error = error
    image.seconds = round(time.monotonic() - started, 1)
    plan.say(f"FAILED image {image.name}: {error.splitlines()[0]}")
