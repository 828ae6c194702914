"""Smoke tests of images: annotations parsed, and a real image run under runc and bubblewrap.

The image is made with umoci itself (init, new, unpack, add the host's static busybox, repack,
config), so the runner is checked against a layout that another tool wrote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nanodistro.errors import ConfigError, UnsafePathError
from nanodistro.factory.smoke import (
    SMOKE_MOUNT,
    SmokeTest,
    run_smoke_test,
    smoke_test_from_annotations,
)
from needs_tools import require_tools

BUSYBOX = Path("/bin/busybox")
needs_tools = pytest.mark.usefixtures("_smoke_tools")


@pytest.fixture
def _smoke_tools() -> None:
    """umoci, runc, bwrap and busybox-static come from scripts/install-system-deps.sh."""
    require_tools("umoci", "runc", "bwrap", str(BUSYBOX))


def test_annotations_give_the_test() -> None:
    test = smoke_test_from_annotations(
        {
            "dev.nanodistro.smoke.args": '["-e", "print(1)"]',
            "dev.nanodistro.smoke.expect": "1",
        },
        where="lua.yaml",
    )
    assert test == SmokeTest(args=["-e", "print(1)"], expect="1", binary=None)
    assert smoke_test_from_annotations({"org.opencontainers.image.title": "x"}, "x.yaml") is None
    with_binary = smoke_test_from_annotations(
        {"dev.nanodistro.smoke.expect": "ok", "dev.nanodistro.smoke.binary": "busybox-static"},
        where="static.yaml",
    )
    assert with_binary is not None and with_binary.binary == BUSYBOX and with_binary.args == []


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"dev.nanodistro.smoke.args": "[1", "dev.nanodistro.smoke.expect": ""}, "JSON list"),
        ({"dev.nanodistro.smoke.args": '{"a": 1}', "dev.nanodistro.smoke.expect": ""}, "list"),
        ({"dev.nanodistro.smoke.args": "[1, 2]", "dev.nanodistro.smoke.expect": ""}, "strings"),
        (
            {"dev.nanodistro.smoke.binary": "bash", "dev.nanodistro.smoke.expect": ""},
            "unknown smoke binary",
        ),
    ],
)
def test_bad_annotations_name_the_field(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        smoke_test_from_annotations(annotations, where="images/x.yaml")
    assert message in str(raised.value)
    assert "images/x.yaml" in str(raised.value)
    assert "dev.nanodistro.smoke." in str(raised.value)


def _umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout with only the static busybox at /bin/busybox, running as 65532."""
    base = tmp_path_factory.mktemp("smoke")
    layout, bundle = base / "layout", base / "bundle"
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", f"{layout}:latest")
    _umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc/passwd").write_text("nonroot:x:65532:65532::/:/bin/busybox\n")
    # the image's modes, whatever umask the tests run under (repack records them)
    for path, mode in (("", 0o755), ("bin", 0o755), ("bin/busybox", 0o755), ("etc", 0o755)):
        (rootfs / path).chmod(mode)
    (rootfs / "etc/passwd").chmod(0o644)
    _umoci("repack", "--image", f"{layout}:latest", str(bundle))
    _umoci(
        "config",
        "--image",
        f"{layout}:latest",
        "--config.entrypoint",
        "/bin/busybox",
        "--config.cmd",
        "true",
        "--config.user",
        "65532:65532",
    )
    return layout


@needs_tools
@pytest.mark.parametrize("runtime", ["runc", "bubblewrap"])
def test_image_runs_as_its_user_in_a_real_runtime(busybox_layout: Path, runtime: str) -> None:
    test = SmokeTest(args=["sh", "-c", "echo from $(id -u)"], expect="from 65532")
    result = run_smoke_test(busybox_layout, "latest", test, ["/bin/busybox"], runtime=runtime)
    assert result.passed, result
    assert result.runtime == runtime
    assert result.output == "from 65532"


@needs_tools
@pytest.mark.parametrize("runtime", ["runc", "bubblewrap"])
def test_wrong_output_fails_with_detail(busybox_layout: Path, runtime: str) -> None:
    test = SmokeTest(args=["sh", "-c", "echo nope; echo oops >&2; exit 3"], expect="yes")
    result = run_smoke_test(busybox_layout, "latest", test, ["/bin/busybox"], runtime=runtime)
    assert not result.passed
    assert result.output == "nope"
    assert "exit 3" in result.detail and "oops" in result.detail


@needs_tools
@pytest.mark.parametrize("runtime", ["runc", "bubblewrap"])
def test_smoke_binary_is_mounted_read_only(busybox_layout: Path, runtime: str) -> None:
    test = SmokeTest(
        args=[
            SMOKE_MOUNT,
            "sh",
            "-c",
            f"test -x {SMOKE_MOUNT} && ! touch {SMOKE_MOUNT} && echo ro",
        ],
        expect="ro",
        binary=BUSYBOX,
    )
    result = run_smoke_test(busybox_layout, "latest", test, [], runtime=runtime)
    assert result.passed, result


def test_unknown_runtime_is_an_error(busybox_layout: Path) -> None:
    require_tools("umoci")
    with pytest.raises(ConfigError, match="unknown smoke test runtime"):
        run_smoke_test(busybox_layout, "latest", SmokeTest([], ""), [], runtime="crun")


NONROOT_IMAGE = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [busybox]
accounts:
  run-as: nonroot
  users: [{username: nonroot, uid: 65532, gid: 65532}]
  groups: [{groupname: nonroot, gid: 65532}]
work-dir: /home/nonroot
entrypoint:
  command: /usr/bin/sh
archs: [amd64]
"""


@needs_tools
@pytest.mark.parametrize("runtime", ["runc", "bubblewrap"])
def test_smoke_test_passes_under_a_restrictive_umask(tmp_path: Path, runtime: str) -> None:
    """umask 027 used to leave the bundle's rootfs ("/" in the container) 0750, so the image's
    user could not even stat its entrypoint under runc."""
    from image.image_testlib import build_repo, busybox_packages, make_key
    from nanodistro.image.build import BuildRequest, build_image, write_result
    from nanodistro.imageconfig import load_config

    previous = os.umask(0o027)
    try:
        key = make_key(tmp_path / "keys")
        build_repo(tmp_path / "repo", busybox_packages(), key)
        (tmp_path / "img.yaml").write_text(NONROOT_IMAGE)
        request = BuildRequest(loaded=load_config(tmp_path / "img.yaml"), source_date_epoch=0)
        write_result(build_image(request), tmp_path / "out")
        test = SmokeTest(args=["-c", "id -u; pwd; touch ./x && echo written"], expect="")
        result = run_smoke_test(tmp_path / "out", "latest", test, ["/usr/bin/sh"], runtime=runtime)
    finally:
        os.umask(previous)
    assert result.output == "65532\n/home/nonroot\nwritten", result


@needs_tools
def test_mount_points_are_never_made_through_an_image_link(tmp_path: Path) -> None:
    """An image whose /.smoke is a link to a host directory: preparing the bind mount for the
    smoke binary must not create anything there (we run as root)."""
    host = tmp_path / "host"
    host.mkdir()
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", f"{layout}:latest")
    _umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    (bundle / "rootfs" / ".smoke").symlink_to(host)
    _umoci("repack", "--image", f"{layout}:latest", str(bundle))
    test = SmokeTest(args=[SMOKE_MOUNT, "true"], expect="", binary=BUSYBOX)
    with pytest.raises(UnsafePathError, match=r"\.smoke"):
        run_smoke_test(layout, "latest", test, [], runtime="bubblewrap")
    assert list(host.iterdir()) == []
