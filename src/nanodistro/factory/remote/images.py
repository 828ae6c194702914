"""The ``image`` and ``smoke`` jobs under a remote executor.

image (split): the control plane sends the image config, the staging repository's location and
the public keys; the worker assembles the image (resolving against staging, every index and
package verified as locally) and returns its OCI layout's files, unsigned. The control plane
checks every blob against its digest and the digest claimed, reads the installed-package
database of each platform's layers and requires every package in it to be the staging
repository's very package (same identity), then adds the image to the persistent layout under a
new ``build-<N>`` tag plus ``staging``/``latest``, stores the SBOMs, writes the provenance and
records the events, as ``image_handler`` does. Signing stays where it was: at promotion, in the
control plane. The SBOMs are the worker's word (not re-derived here).

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

IMAGE_OUTPUT = frozenset({"status", "error", "transient", "digest", "files", "seconds", "log"})
_BLOB = re.compile(r"blobs/sha256/[0-9a-f]{64}")
_SBOM = re.compile(r"sboms/[A-Za-z0-9][A-Za-z0-9._-]*")
INSTALLED_DB = "usr/lib/apk/db/installed"


def prepare_image(
    plan: Any, repository_url: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        from nanodistro.factory.remote.payload import sha256
        from nanodistro.trust.keys import load_keyring

        workspace = plan.workspace
        config_path = Path(inputs["config"])
        staging = workspace.packages_dir / "staging"
        location = f"{repository_url.rstrip('/')}/staging" if repository_url else str(staging)
        keyring = {n: pem.decode("ascii") for n, pem in load_keyring(workspace.keys_dir).items()}
        data = config_path.read_bytes()
        return {
            "image": inputs["image"],
            "config_file": config_path.name,
            "config": b64(data),
            "config_sha256": sha256(data),
            "archs": list(workspace.archs),
            "repositories": [location],
            "keyring": keyring,
            "distro": workspace.name,
        }

    return prepare


def worker_image(payload: dict[str, Any], ctx: WorkerContext) -> dict[str, Any]:
    """Assemble an image from the staging repository (unsigned OCI layout); its files are the
    output. A failure is the output too (``status: failed``)."""
    import shutil
    import time
    import uuid

    from nanodistro.factory.remote.payload import sha256
    from nanodistro.image.build import BuildRequest, build_image, write_result
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
        layout = base / "layout"
        write_result(result, layout)
        files = {
            path.relative_to(layout).as_posix(): b64(path.read_bytes())
            for path in sorted(layout.rglob("*"))
            if path.is_file()
        }
    except NanodistroError as error:
        return {"status": "failed", "error": str(error), "transient": isinstance(error, FetchError)}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {
        "status": "built",
        "digest": result.digest,
        "files": files,
        "seconds": time.monotonic() - clock,
    }


def _write_layout(files: Any, target: Path, *, where: str) -> dict[str, bytes]:
    """Write a returned layout (only ``oci-layout``, ``index.json``, sha256 blobs that match
    their names and ``sboms/<name>``); the SBOMs by name."""
    if not isinstance(files, dict):
        raise TrustError("files: expected an object", where=where)
    sboms: dict[str, bytes] = {}
    for relative, text in sorted(files.items()):
        data = unb64(text, where=f"{where}: {relative}")
        if _BLOB.fullmatch(relative):
            if hashlib.sha256(data).hexdigest() != relative.rsplit("/", 1)[1]:
                raise TrustError(f"{relative} does not match its digest; refused", where=where)
        elif _SBOM.fullmatch(relative):
            sboms[relative.split("/", 1)[1]] = data
        elif relative not in ("oci-layout", "index.json"):
            raise TrustError(f"unexpected file {relative!r} in the layout; refused", where=where)
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return sboms


def _platform_packages(layout: Path, digest: str, *, where: str) -> dict[str, list[Any]]:
    """APK arch -> the installed-package database's records, for each platform image under
    ``digest`` (the last layer holding the database wins, as when layers are unpacked)."""
    from nanodistro.formats.gzipstream import gzip_members
    from nanodistro.formats.installed_db import parse_installed
    from nanodistro.formats.tarball import read_tar
    from nanodistro.imageconfig.arch import OCI_TO_APK

    blobs = image_blobs(layout, digest)
    found: dict[str, list[Any]] = {}
    for blob_digest, data in blobs.items():
        try:
            document = json.loads(data)
        except ValueError:
            continue
        if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
            continue
        config = json.loads(blobs[document["config"]["digest"]])
        oci = str(config.get("architecture", ""))
        if config.get("variant"):
            oci = f"{oci}/{config['variant']}"
        arch = OCI_TO_APK.get(oci)
        if arch is None:
            raise TrustError(f"unknown architecture {oci!r} in {blob_digest}", where=where)
        installed = None
        for layer in document["layers"]:
            raw = blobs[layer["digest"]]
            members = gzip_members(raw, where=f"{where}: {layer['digest']}")
            entries = read_tar(b"".join(m.inflated for m in members), where=layer["digest"])
            for entry in entries:
                if entry.path.lstrip("./") == INSTALLED_DB and entry.type == "file":
                    installed = entry.data
        if installed is None:
            raise TrustError(f"the {arch} image has no {INSTALLED_DB}; refused", where=where)
        found[arch] = parse_installed(installed, where=f"{where}: {arch} {INSTALLED_DB}")
    return found


def accept_image(plan: Any) -> Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]:
    def accept(inputs: dict[str, Any], output: dict[str, Any], worker: str) -> dict[str, Any]:
        import datetime
        import shutil
        import tempfile
        from types import SimpleNamespace

        from nanodistro.factory import events
        from nanodistro.factory.imagesign import record_image_provenance
        from nanodistro.factory.records import record_image
        from nanodistro.formats.pkginfo import apk_filename
        from nanodistro.image.apkfile import open_apk
        from nanodistro.image.build import FetchedPackage
        from nanodistro.image.oci_layout import Layout
        from nanodistro.image.sbomstore import store_sboms
        from nanodistro.image.tags import add_to_layout
        from nanodistro.resolve import parse_repository
        from nanodistro.resolve.repositories import package_location

        name = inputs["image"]
        where = f"worker {worker}: image {name}"
        output = only_fields(output, IMAGE_OUTPUT, where=where)
        if output.get("status") == "failed":
            error = f"on worker {worker}: {clipped(output.get('error') or 'failed')}"
            raise FetchError(error) if output.get("transient") is True else ImageError(error)
        if output.get("status") != "built":
            raise TrustError(f"unknown status {output.get('status')!r}", where=where)
        workspace = plan.workspace
        config_path = Path(inputs["config"])
        config_bytes = config_path.read_bytes()
        staging = workspace.packages_dir / "staging"
        ref = parse_repository(str(staging))
        finished = datetime.datetime.now(datetime.UTC)
        started = finished - datetime.timedelta(
            seconds=duration(output.get("seconds"), where=where)
        )
        workspace.image_out_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=workspace.image_out_dir))
        try:
            built = scratch / "layout"
            sboms = _write_layout(output.get("files"), built, where=where)
            try:
                digest = Layout(built).top_digest()
                platforms = _platform_packages(built, digest, where=where)
            except (NanodistroError, KeyError, ValueError, TypeError, OSError) as error:
                raise TrustError(f"not a complete image layout: {error}", where=where) from None
            if digest != output.get("digest"):
                raise TrustError(
                    f"the layout holds {digest}, not {output.get('digest')}", where=where
                )
            fetched: dict[str, list[Any]] = {}
            for arch, records in sorted(platforms.items()):
                if arch not in workspace.archs:
                    raise TrustError(f"an image for {arch}, not a workspace arch", where=where)
                for record in records:
                    info = record.info
                    file = staging / arch / apk_filename(info.name, info.version)
                    try:
                        apk = open_apk(
                            file.read_bytes(), where=str(file), expected_identity=info.checksum
                        )
                    except (OSError, NanodistroError) as error:
                        raise TrustError(
                            f"holds {info.name}-{info.version} ({info.checksum}), which is not "
                            f"the staging repository's package: {error}; refused",
                            where=where,
                        ) from None
                    location = package_location(ref, arch, apk.info)
                    fetched.setdefault(arch, []).append(FetchedPackage(apk, location, str(ref)))
            layout = workspace.image_out_dir / name
            added = add_to_layout(layout, built, ["staging", "latest"])
            store_sboms(layout, digest, sboms)
            record_image_provenance(
                workspace,
                layout,
                config_path,
                config_bytes,
                SimpleNamespace(digest=digest, fetched=fetched),  # type: ignore[arg-type]
                [str(staging)],
                started=started,
                finished=finished,
                invocation_id=f"{name}/{added.build_tag}",
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        first = next((a for a in workspace.archs if a in fetched), None)
        packages = [f"{p.apk.name}-{p.apk.version}" for p in fetched.get(first or "", [])]
        record_image(
            plan.state,
            name=name,
            digest=digest,
            tag=added.build_tag,
            repo_version=plan.repo_version,
            packages=packages,
        )
        events.record(
            plan.state,
            events.IMAGE_BUILT,
            f"image:{name}",
            {
                "digest": digest,
                "tag": added.build_tag,
                "repo_version": plan.repo_version,
                "packages": packages,
                "inputs": inputs["inputs"],
                "worker": worker,
            },
        )
        return {"digest": digest, "packages": packages, "tag": added.build_tag}

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
