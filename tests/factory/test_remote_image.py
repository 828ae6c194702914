"""Issue 15's trust boundary for image jobs: a worker assembles the image from the staging
repository and returns its digest; the control plane reproduces the image from the same inputs
and accepts only the same digest, then writes its own layout, SBOMs and provenance. The result
is the local image job's, digest for digest; an image with a file the inputs do not give (a
backdoor in a layer beside a valid installed database), another config blob (entrypoint, user)
or packages that are not staging's is refused and nothing is written."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import shutil
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "image"))

from image_testlib import build_repo, busybox_packages, make_key

from nanodistro.errors import TrustError
from nanodistro.factory import events
from nanodistro.factory.imagebuild import ImagePlan, image_handler
from nanodistro.factory.remote import WORKER_FUNCTIONS, WorkerContext, control_kinds
from nanodistro.factory.state import open_state
from nanodistro.factory.workspace import load_workspace
from nanodistro.image.tags import list_tags

CONFIG = """contents:
  packages: [busybox]
entrypoint:
  command: /usr/bin/sh -c "echo hello"
"""


def _workspace(root: Path, key: Any, packages: list[Any]) -> ImagePlan:
    (root / "images").mkdir(parents=True)
    (root / "nanodistro.toml").write_text('[workspace]\nname = "imgws"\narchs = ["x86_64"]\n')
    (root / "images" / "app.yaml").write_text(CONFIG)
    (root / "keys").mkdir()
    shutil.copy(key.public_path, root / "keys" / key.public_path.name)
    build_repo(root / "out/packages/staging", packages, key.signing)
    (root / "out/images").mkdir()
    state = open_state(f"sqlite:///{root / 'state.db'}")
    return ImagePlan(
        load_workspace(root / "nanodistro.toml"), state, 1, lambda s: [], lambda m: None
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("remote-image")
    signing = make_key(base / "key")
    key = SimpleNamespace(signing=signing, public_path=next((base / "key").iterdir()))
    local, remote = (_workspace(base / n, key, busybox_packages()) for n in ("local", "remote"))
    return SimpleNamespace(base=base, key=key, local=local, remote=remote)


def _inputs(plan: ImagePlan) -> dict[str, Any]:
    config = plan.workspace.images_dir / "app.yaml"
    return {"image": "app", "config": str(config), "inputs": "digest-of-inputs"}


def _ctx(base: Path, name: str) -> WorkerContext:
    return WorkerContext("w1", base / f"work-{name}", base / f"cache-{name}")


def _blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


@pytest.fixture(scope="module")
def remote_output(sites: SimpleNamespace) -> dict[str, Any]:
    kinds = control_kinds(SimpleNamespace(config=None), sites.remote)
    payload = kinds["image"].prepare(_inputs(sites.remote))
    assert "PRIVATE KEY" not in str(payload)
    output = WORKER_FUNCTIONS["image"](payload, _ctx(sites.base, "remote"))
    assert output["status"] == "built", output
    return output


def test_split_image_job_gives_the_local_image(
    sites: SimpleNamespace, remote_output: dict[str, Any]
) -> None:
    local = image_handler(sites.local)(_inputs(sites.local))
    kinds = control_kinds(SimpleNamespace(config=None), sites.remote)
    remote = kinds["image"].accept(_inputs(sites.remote), remote_output, "w1")
    assert remote == local  # digest, packages, build tag
    local_layout = sites.local.workspace.image_out_dir / "app"
    remote_layout = sites.remote.workspace.image_out_dir / "app"
    assert list_tags(remote_layout) == list_tags(local_layout)
    assert _blobs(remote_layout) == _blobs(local_layout)
    built = events.query(sites.remote.state, subject="image:app")[-1]
    assert (built.type, built.payload["worker"]) == (events.IMAGE_BUILT, "w1")


def _fresh(sites: SimpleNamespace, name: str) -> ImagePlan:
    return _workspace(sites.base / name, sites.key, busybox_packages())


def _nothing_written(plan: ImagePlan) -> None:
    assert not (plan.workspace.image_out_dir / "app").exists()
    assert events.query(plan.state, subject="image:app") == []


def test_worker_bytes_and_malformed_digests_are_refused(
    sites: SimpleNamespace, remote_output: dict[str, Any]
) -> None:
    """The worker's layout is never taken: an output carrying files is refused outright."""
    plan = _fresh(sites, "malformed")
    accept = control_kinds(SimpleNamespace(config=None), plan)["image"].accept
    with pytest.raises(TrustError, match="unexpected fields files"):
        accept(_inputs(plan), {**remote_output, "files": {"index.json": "e30="}}, "w1")
    for digest in (None, "sha256:abc", "../../etc/passwd"):
        with pytest.raises(TrustError, match="digest: expected sha256"):
            accept(_inputs(plan), {**remote_output, "digest": digest}, "w1")
    _nothing_written(plan)


def _evil_worker(sites: SimpleNamespace, plan: ImagePlan, config: str) -> dict[str, Any]:
    """A worker holding a valid token that assembles its image from another config (the same
    staging packages, so every blob digest and the installed database are valid)."""
    kinds = control_kinds(SimpleNamespace(config=None), plan)
    payload = kinds["image"].prepare(_inputs(plan))
    data = config.encode()
    payload["config"] = base64.b64encode(data).decode()
    payload["config_sha256"] = hashlib.sha256(data).hexdigest()
    output = WORKER_FUNCTIONS["image"](payload, _ctx(sites.base, "evil"))
    assert output["status"] == "built", output
    return output


@pytest.mark.parametrize(
    "evil",
    [
        # one extra file in a layer: a setuid backdoor beside busybox's valid installed db
        CONFIG + "paths:\n  - path: /usr/bin/backdoor\n    type: empty-file\n"
        "    permissions: 0o4755\n",
        # the config blob: another entrypoint
        CONFIG.replace("echo hello", "nc -l -p 4444 -e /bin/sh"),
        # the config blob: another user
        CONFIG + 'accounts:\n  run-as: "0"\n',
    ],
    ids=["extra-file-in-layer", "entrypoint", "user"],
)
def test_an_image_the_inputs_do_not_give_is_refused(
    sites: SimpleNamespace, remote_output: dict[str, Any], evil: str
) -> None:
    plan = _fresh(sites, f"evil-{hashlib.sha256(evil.encode()).hexdigest()[:8]}")
    output = _evil_worker(sites, plan, evil)
    assert output["digest"] != remote_output["digest"]
    accept = control_kinds(SimpleNamespace(config=None), plan)["image"].accept
    with pytest.raises(TrustError) as caught:
        accept(_inputs(plan), output, "w1")
    message = str(caught.value)
    assert "worker w1" in message and output["digest"] in message
    assert remote_output["digest"] in message  # the control plane's own digest
    _nothing_written(plan)


def test_an_image_of_packages_that_are_not_stagings_is_refused(
    sites: SimpleNamespace, remote_output: dict[str, Any]
) -> None:
    """The worker builds from a repository of its own (a busybox with other bytes, signed by a
    key it trusts): digests all match, but the control plane's reproduction from staging gives
    another image."""
    plan = _fresh(sites, "foreign")
    evil_key = make_key(sites.base / "evil-key", "evil.rsa.pub")
    packages = [
        dataclasses.replace(p, files={**p.files, "usr/bin/backdoor": b"#!/bin/sh\n"})
        if p.name == "busybox"
        else p
        for p in busybox_packages()
    ]
    evil_repo = build_repo(sites.base / "evil-repo", packages, evil_key)
    kinds = control_kinds(SimpleNamespace(config=None), plan)
    payload = kinds["image"].prepare(_inputs(plan))
    payload["repositories"] = [str(evil_repo)]
    payload["keyring"] = {"evil.rsa.pub": evil_key.public_pem().decode()}
    output = WORKER_FUNCTIONS["image"](payload, _ctx(sites.base, "evil"))
    assert output["status"] == "built", output
    with pytest.raises(TrustError, match=f"returned image {output['digest']}, but the same"):
        kinds["image"].accept(_inputs(plan), output, "w1")
    _nothing_written(plan)


def test_workers_reading_staging_over_http_are_reproduced(
    sites: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``repository_url`` the image's /etc/apk/repositories names the URL the worker was
    given: the control plane reproduces from that same location and accepts the same digest."""
    plan = _fresh(sites, "served")
    monkeypatch.setenv("NANODISTRO_INDEX_STATE", str(sites.base / "served-index-state.json"))
    packages = str(plan.workspace.packages_dir)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=packages, **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        kinds = control_kinds(SimpleNamespace(config=None), plan, repository_url=url)
        payload = kinds["image"].prepare(_inputs(plan))
        assert payload["repositories"] == [f"{url}/staging"]
        output = WORKER_FUNCTIONS["image"](payload, _ctx(sites.base, "served"))
        assert output["status"] == "built", output
        result = kinds["image"].accept(_inputs(plan), output, "w1")
    finally:
        server.shutdown()
        server.server_close()
    assert result["digest"] == output["digest"]
    assert list_tags(plan.workspace.image_out_dir / "app")[result["tag"]] == output["digest"]
