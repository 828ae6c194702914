"""``nanodistro image build`` and ``image lock`` inside a workspace take the repository, keyring
and archs of its nanodistro.toml, as ``nanodistro run`` builds the workspace's images;
``--no-workspace`` does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from image_testlib import build_repo, busybox_packages, make_key

from cli_runner import run_cli
from nanodistro.formats.tarball import gunzip, read_tar
from nanodistro.image.oci_layout import Layout

WORKSPACE_TOML = """\
[workspace]
name = "ws"
archs = ["aarch64"]
"""

# no repositories, keyring or archs: they come from the workspace
IMAGE = """\
contents:
  packages: [busybox]
entrypoint:
  command: /usr/bin/sh
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    (root / "nanodistro.toml").write_text(WORKSPACE_TOML)
    key = make_key(root / "keys", name="ws-0123abcd.rsa.pub")
    build_repo(root / "out" / "packages", busybox_packages(), key, archs=("x86_64", "aarch64"))
    (root / "images").mkdir()
    (root / "images" / "app.yaml").write_text(IMAGE)
    return root


def _layer_paths(layout: Path) -> dict[str, bytes]:
    (image,) = Layout(layout).images()
    files: dict[str, bytes] = {}
    for layer in image.manifest.layers:
        blob = gunzip(Layout(layout).blob(layer.digest), where="layer")
        files.update({e.path: e.data for e in read_tar(blob, where="layer")})
    return files


def test_image_build_takes_repository_keyring_and_archs_from_the_workspace(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "layout"
    done = run_cli(workspace / "images", "image", "build", "app.yaml", "-o", out, "--json", "-q")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [i["arch"] for i in summary["images"]] == ["aarch64"]  # the toml's, not all nine
    assert summary["images"][0]["packages"] == ["test-baselayout-1.0-r0", "busybox-1.36.1-r0"]
    files = _layer_paths(out)
    assert (
        files["etc/apk/keys/ws-0123abcd.rsa.pub"]
        == (workspace / "keys" / "ws-0123abcd.rsa.pub").read_bytes()
    )
    assert files["etc/apk/arch"] == b"aarch64\n"


def test_command_line_wins_over_the_workspace(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "layout"
    args = ["image", "build", "images/app.yaml", "-o", out, "--arch", "x86_64", "--json", "-q"]
    done = run_cli(workspace, *args)
    assert done.returncode == 0, done.stderr
    assert [i["arch"] for i in json.loads(done.stdout)["images"]] == ["x86_64"]


def test_no_workspace_uses_only_the_config(workspace: Path, tmp_path: Path) -> None:
    args = ["image", "build", "images/app.yaml", "-o", tmp_path / "layout", "--no-workspace"]
    done = run_cli(workspace, *args)
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "no repositories configured (contents.repositories or --repo)"
    )
    assert not (tmp_path / "layout").exists()


def test_image_lock_takes_the_same_workspace_defaults(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "app.lock.json"
    done = run_cli(workspace / "images", "image", "lock", "app.yaml", "-o", out, "-q")
    assert done.returncode == 0, done.stderr
    lock = json.loads(out.read_text())
    packages = lock["contents"]["packages"]
    assert {p["architecture"] for p in packages} == {"aarch64"}
    assert sorted(p["name"] for p in packages) == ["busybox", "test-baselayout"]
    (repository,) = lock["contents"]["repositories"]
    assert repository["name"] == str(workspace / "out" / "packages")
    refused = run_cli(workspace, "image", "lock", "images/app.yaml", "-o", out, "--no-workspace")
    assert refused.returncode == 1
    assert "no repositories configured" in refused.stderr
