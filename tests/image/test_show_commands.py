"""``nanodistro show config|packages IMAGE`` (apko's show-config / show-packages) on a small
workspace, and the workspace's name as purl distro in the SBOMs of an image whose packages carry
no SBOM of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from image_testlib import build_repo, busybox_packages, make_key

from cli_runner import run_cli

WORKSPACE_TOML = """\
[workspace]
name = "Shop"
archs = ["x86_64", "aarch64"]
"""

BASE = """\
entrypoint:
  command: /usr/bin/sh
accounts:
  run-as: "65532"
  users:
    - username: nonroot
      uid: 65532
"""

# what the build adds comes from the include and the workspace
IMAGE = """\
include: base.yaml
contents:
  packages: [busybox]
work-dir: /srv
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    (root / "nanodistro.toml").write_text(WORKSPACE_TOML)
    key = make_key(root / "keys", name="shop-0123abcd.rsa.pub")
    build_repo(root / "out" / "packages", busybox_packages(), key, archs=("x86_64", "aarch64"))
    (root / "images").mkdir()
    (root / "images" / "base.yaml").write_text(BASE)
    (root / "images" / "app.yaml").write_text(IMAGE)
    return root


def test_show_config_merges_includes_and_workspace_defaults(workspace: Path) -> None:
    done = run_cli(workspace, "show", "config", "images/app.yaml")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["contents"] == {
        "repositories": [str(workspace / "out" / "packages")],
        "keyring": [str(workspace / "keys")],
        "packages": ["busybox"],
    }
    assert config["entrypoint"] == {"command": "/usr/bin/sh"}  # from base.yaml
    assert config["accounts"]["run-as"] == "65532"
    assert config["work-dir"] == "/srv"
    assert config["archs"] == ["amd64", "arm64"]  # the workspace's, in OCI spelling
    assert "include" not in config
    # the command line wins, as for `image build`
    done = run_cli(workspace, "show", "config", "images/app.yaml", "--arch", "aarch64", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["archs"] == ["arm64"]


def test_show_packages_lists_the_resolved_closure(workspace: Path) -> None:
    done = run_cli(workspace, "show", "packages", "images/app.yaml", "--arch", "x86_64")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "test-baselayout 1.0-r0\nbusybox 1.36.1-r0\n"  # apko's name-version

    done = run_cli(workspace, "show", "packages", "images/app.yaml", "--format", "packagelock")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "# x86_64",
        "- test-baselayout=1.0-r0",
        "- busybox=1.36.1-r0",
        "# aarch64",
        "- test-baselayout=1.0-r0",
        "- busybox=1.36.1-r0",
    ]

    done = run_cli(workspace, "show", "packages", "images/app.yaml", "--arch", "aarch64", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["name"], r["version"], r["arch"]) for r in rows] == [
        ("test-baselayout", "1.0-r0", "aarch64"),
        ("busybox", "1.36.1-r0", "aarch64"),
    ]
    assert rows[1]["source"].endswith("/aarch64/busybox-1.36.1-r0.apk")


def test_show_errors_are_one_line(workspace: Path) -> None:
    done = run_cli(workspace, "show", "packages", "images/missing.yaml")
    assert done.returncode == 1
    assert done.stderr == "error: images/missing.yaml: no such image config file\n"
    done = run_cli(workspace, "show", "packages", "images/app.yaml", "--format", "{nme}")
    assert done.returncode == 1
    assert done.stderr.startswith("error: bad --format '{nme}': 'nme' (use one of name-version")
    # no repository at all (outside the workspace's defaults)
    done = run_cli(workspace, "show", "packages", "images/app.yaml", "--no-workspace")
    assert done.returncode == 1
    assert "no repositories configured" in done.stderr


def test_image_sboms_name_the_workspace_for_packages_without_an_sbom(
    workspace: Path, tmp_path: Path
) -> None:
    # test-baselayout's os-release says ID=nanotest; the workspace's packages are "shop"'s
    out = tmp_path / "layout"
    args = ["image", "build", "images/app.yaml", "-o", out, "--arch", "x86_64", "-q"]
    done = run_cli(workspace, *args)
    assert done.returncode == 0, done.stderr
    spdx = json.loads((out / "sboms" / "sbom-x86_64.spdx.json").read_text())
    purls = [
        ref["referenceLocator"]
        for package in spdx["packages"]
        for ref in package.get("externalRefs", [])
        if ref["referenceLocator"].startswith("pkg:apk/")
    ]
    assert purls == [
        "pkg:apk/shop/test-baselayout@1.0-r0?arch=x86_64",
        "pkg:apk/shop/busybox@1.36.1-r0?arch=x86_64",
    ]
    cdx = json.loads((out / "sboms" / "sbom-x86_64.cdx.json").read_text())
    assert {c.get("purl", "") for c in cdx["components"]} >= set(purls)
    # `nanodistro sbom` reads the layout back to the same CycloneDX bytes
    done = run_cli(workspace, "sbom", out, "--format", "cyclonedx")
    assert done.returncode == 0, done.stderr
    assert done.stdout.encode() == (out / "sboms" / "sbom-x86_64.cdx.json").read_bytes()
