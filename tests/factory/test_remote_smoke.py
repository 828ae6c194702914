"""Issue 15's trust boundary for smoke tests: the control plane sends the image's blobs and the
test, a worker runs it in a real runtime and returns the verdict, the control plane records it.
A blob changed on the way is refused by the worker before anything runs."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nanodistro.factory import events
from nanodistro.factory.remote import WORKER_FUNCTIONS, WorkerContext, control_kinds
from nanodistro.factory.state import open_state
from nanodistro.image.tags import tag_digest
from needs_tools import require_tools

BUSYBOX = Path("/bin/busybox")
CONFIG = """contents:
  packages: [busybox]
entrypoint:
  command: /bin/busybox
annotations:
  dev.nanodistro.smoke.args: '["sh", "-c", "echo from $(id -u)"]'
  dev.nanodistro.smoke.expect: "{expect}"
"""


def _umoci(*args: str | Path) -> None:
    subprocess.run(["umoci", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A workspace whose image ``bb`` (only the static busybox, user 65532) is in its layout."""
    require_tools("umoci", "bwrap", str(BUSYBOX))
    root = tmp_path_factory.mktemp("remote-smoke")
    layout, bundle = root / "out/images/bb", root / "bundle"
    layout.parent.mkdir(parents=True)
    _umoci("init", "--layout", layout)
    _umoci("new", "--image", f"{layout}:latest")
    _umoci("unpack", "--image", f"{layout}:latest", bundle)
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc/passwd").write_text("nonroot:x:65532:65532::/:/bin/busybox\n")
    for path, mode in (("", 0o755), ("bin", 0o755), ("bin/busybox", 0o755), ("etc", 0o755)):
        (rootfs / path).chmod(mode)
    (rootfs / "etc/passwd").chmod(0o644)
    _umoci("repack", "--image", f"{layout}:latest", bundle)
    _umoci("config", "--image", f"{layout}:latest", "--config.entrypoint", "/bin/busybox")
    _umoci("config", "--image", f"{layout}:latest", "--config.user", "65532:65532")
    (root / "images").mkdir()
    workspace = SimpleNamespace(
        root=root,
        name="smoke-test",
        archs=["x86_64"],
        packages_dir=root / "out/packages",
        keys_dir=root / "keys",
        image_out_dir=root / "out/images",
    )
    state = open_state(f"sqlite:///{root / 'state.db'}")
    plan = SimpleNamespace(workspace=workspace, state=state, say=lambda _m: None)
    build_plan = SimpleNamespace(config=SimpleNamespace(builder_id="", namespace="smoke-test"))
    digest = tag_digest(layout, "latest")
    assert digest is not None
    return SimpleNamespace(
        root=root,
        plan=plan,
        kinds=control_kinds(build_plan, plan),
        digest=digest,
        ctx=WorkerContext("w1", root / "work", root / "cache"),
    )


def _inputs(site: SimpleNamespace, expect: str) -> dict[str, Any]:
    config = site.root / "images" / f"bb-{expect.replace(' ', '-')}.yaml"
    config.write_text(CONFIG.format(expect=expect))
    return {"image": "bb", "digest": site.digest, "config": str(config)}


def test_the_worker_runs_the_smoke_test_and_the_control_plane_records_it(
    site: SimpleNamespace,
) -> None:
    inputs = _inputs(site, "from 65532")
    payload = site.kinds["smoke"].prepare(inputs)
    assert set(payload["blobs"]) >= {site.digest}  # the image travels, checked by digest
    output = WORKER_FUNCTIONS["smoke"](payload, site.ctx)
    assert output["status"] == "passed", output
    result = site.kinds["smoke"].accept(inputs, output, "w1")
    assert result["smoke"]["status"] == "passed" and result["smoke"]["output"] == "from 65532"
    last = events.query(site.plan.state, subject="image:bb")[-1]
    assert (last.type, last.payload["worker"]) == (events.SMOKE_PASSED, "w1")

    failing = _inputs(site, "from 0")
    output = WORKER_FUNCTIONS["smoke"](site.kinds["smoke"].prepare(failing), site.ctx)
    assert output["status"] == "failed" and output["output"] == "from 65532"
    site.kinds["smoke"].accept(failing, output, "w1")
    assert events.query(site.plan.state, subject="image:bb")[-1].type == events.SMOKE_FAILED


def test_a_blob_changed_on_the_way_is_refused_before_anything_runs(
    site: SimpleNamespace,
) -> None:
    inputs = _inputs(site, "from 65532")
    payload = site.kinds["smoke"].prepare(inputs)
    layer = max(payload["blobs"], key=lambda d: len(payload["blobs"][d]))
    data = bytearray(base64.b64decode(payload["blobs"][layer]))
    data[-1] ^= 1
    payload["blobs"][layer] = base64.b64encode(bytes(data)).decode()
    output = WORKER_FUNCTIONS["smoke"](payload, site.ctx)
    assert output["status"] == "error"
    assert "blob does not match its digest" in output["detail"] and layer in output["detail"]


def test_a_verdict_with_unknown_fields_or_status_is_refused(site: SimpleNamespace) -> None:
    from nanodistro.errors import TrustError

    inputs = _inputs(site, "from 65532")
    with pytest.raises(TrustError, match="unknown smoke status 'great'"):
        site.kinds["smoke"].accept(inputs, {"status": "great"}, "w1")
    with pytest.raises(TrustError, match="unexpected fields blobs"):
        site.kinds["smoke"].accept(inputs, {"status": "passed", "blobs": {}}, "w1")
