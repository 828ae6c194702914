"""Image tags (image/tags.py): immutable build-<N> and moving tags in a persistent OCI layout and
in a real registry, judged by skopeo, umoci and crane."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from image_testlib import Pkg, build_repo, make_key

from nanodistro.errors import ImageError
from nanodistro.image.build import BuildRequest, build_image, write_result
from nanodistro.image.tags import add_to_layout, list_tags, push_tags, set_tag, tag_digest
from nanodistro.imageconfig import load_config
from registry_server import RunningRegistry, docker_registry, find_tool  # noqa: F401

CONFIG = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [test-baselayout]
environment: {{BUILD: "{build}"}}
archs: [{archs}]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tagworld")
    key = make_key(root / "keys")
    base = Pkg("test-baselayout", files={"etc/os-release": b"ID=nanotest\n"}, dirs=["usr/bin"])
    build_repo(root / "repo", [base], key, archs=("x86_64", "aarch64"))
    return root


def build(world: Path, out: Path, label: str, archs: str = "amd64") -> str:
    config = world / f"img-{label}.yaml"
    config.write_text(CONFIG.format(build=label, archs=archs))
    result = build_image(BuildRequest(loaded=load_config(config), source_date_epoch=0))
    write_result(result, out)
    return str(result.digest)


def skopeo_digest(reference: str, *extra: str) -> str:
    """sha256 of the bytes skopeo reads for ``reference`` (the top manifest or index)."""
    raw = subprocess.run(
        [find_tool("skopeo"), "inspect", "--raw", *extra, reference],
        capture_output=True,
        check=True,
    )
    return "sha256:" + hashlib.sha256(raw.stdout).hexdigest()


def test_build_tags_moving_tags_and_real_clients(world: Path, tmp_path: Path) -> None:
    first = build(world, tmp_path / "out1", "one")
    second = build(world, tmp_path / "out2", "two")
    assert first != second
    layout = tmp_path / "images" / "app"

    one = add_to_layout(layout, tmp_path / "out1", ["latest", "staging", "stable"])
    assert (one.build_tag, one.number, one.new, one.digest) == ("build-1", 1, True, first)
    assert one.previous == {}
    two = add_to_layout(layout, tmp_path / "out2", ["latest", "staging"])
    assert (two.build_tag, two.new, two.previous) == (
        "build-2",
        True,
        {"latest": first, "staging": first},
    )
    assert list_tags(layout) == {
        "build-1": first,
        "build-2": second,
        "latest": second,
        "stable": first,
        "staging": second,
    }
    for tag, digest in list_tags(layout).items():
        assert skopeo_digest(f"oci:{layout}:{tag}") == digest, tag

    # promote: stable moves; the old digest stays readable under build-1 and by copying it out
    assert set_tag(layout, "stable", second) == first
    assert set_tag(layout, "stable", second) == second  # no-op
    assert skopeo_digest(f"oci:{layout}:stable") == second
    assert skopeo_digest(f"oci:{layout}:build-1") == first
    copied = tmp_path / "copied"
    subprocess.run(
        [find_tool("skopeo"), "copy", "--all", f"oci:{layout}:build-1", f"oci:{copied}:old"],
        capture_output=True,
        check=True,
    )
    assert json.loads((copied / "index.json").read_bytes())["manifests"][0]["digest"] == first

    listed = subprocess.run(
        [find_tool("umoci"), "ls", "--layout", str(layout)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(listed.stdout.split()) == ["build-1", "build-2", "latest", "stable", "staging"]
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(
        [find_tool("umoci"), "unpack", "--image", f"{layout}:build-1", str(bundle)],
        capture_output=True,
        text=True,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    assert (bundle / "rootfs/etc/os-release").read_bytes() == b"ID=nanotest\n"

    # the same image again keeps its number; build tags never move; rollback is a tag move
    again = add_to_layout(layout, tmp_path / "out1", ["staging"])
    assert (again.build_tag, again.new, again.previous) == ("build-1", False, {"staging": second})
    with pytest.raises(ImageError, match="build-1 is immutable"):
        set_tag(layout, "build-1", second)
    with pytest.raises(ImageError, match="assigned, not given"):
        add_to_layout(layout, tmp_path / "out2", ["build-7"])
    with pytest.raises(ImageError, match="invalid tag"):
        set_tag(layout, "../x", second)
    assert set_tag(layout, "stable", first) == second
    assert tag_digest(layout, "stable") == first
    assert tag_digest(layout, "nope") is None
    with pytest.raises(ImageError, match="layout has no blob"):
        set_tag(layout, "stable", "sha256:" + "0" * 64)


def test_multi_arch_tags_name_each_platform_and_move_together(world: Path, tmp_path: Path) -> None:
    multi = build(world, tmp_path / "multi", "m", archs="amd64, arm64")
    single = build(world, tmp_path / "single", "s")
    layout = tmp_path / "layout"
    add_to_layout(layout, tmp_path / "multi", ["stable"])
    names = {
        e["annotations"]["org.opencontainers.image.ref.name"]
        for e in json.loads((layout / "index.json").read_bytes())["manifests"]
    }
    assert names == {
        "build-1",
        "build-1-amd64",
        "build-1-arm64",
        "stable",
        "stable-amd64",
        "stable-arm64",
    }
    assert list_tags(layout) == {"build-1": multi, "stable": multi}
    assert skopeo_digest(f"oci:{layout}:stable") == multi
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(
        [find_tool("umoci"), "unpack", "--image", f"{layout}:stable-arm64", str(bundle)],
        capture_output=True,
        text=True,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    assert (bundle / "rootfs/etc/apk/arch").read_text() == "aarch64\n"

    # moving stable to a single-arch image drops its platform names, build-1's stay
    add_to_layout(layout, tmp_path / "single", ["stable"])
    names = {
        e["annotations"]["org.opencontainers.image.ref.name"]
        for e in json.loads((layout / "index.json").read_bytes())["manifests"]
    }
    assert names == {"build-1", "build-1-amd64", "build-1-arm64", "build-2", "stable"}
    assert list_tags(layout) == {"build-1": multi, "build-2": single, "stable": single}


def test_a_tampered_or_linked_blob_in_the_build_is_refused(world: Path, tmp_path: Path) -> None:
    build(world, tmp_path / "out", "t")
    layout = tmp_path / "layout"
    add_to_layout(layout, tmp_path / "out", ["latest"])
    index_before = (layout / "index.json").read_bytes()

    # a build output whose blob is a link to a host file named by that file's digest
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"root:$6$secret\n")
    attack = tmp_path / "attack"
    subprocess.run(["cp", "-a", str(tmp_path / "out"), str(attack)], check=True)
    hexdigest = hashlib.sha256(secret.read_bytes()).hexdigest()
    os.symlink(secret, attack / "blobs/sha256" / hexdigest)
    with pytest.raises(ImageError, match="cannot read blob"):
        add_to_layout(layout, attack, ["latest"])
    assert not (layout / "blobs/sha256" / hexdigest).exists()
    assert (layout / "index.json").read_bytes() == index_before

    # a blob whose bytes do not match its name
    tampered = tmp_path / "tampered"
    subprocess.run(["cp", "-a", str(tmp_path / "out"), str(tampered)], check=True)
    fake = "f" * 64
    (tampered / "blobs/sha256" / fake).write_bytes(b"not what the name says")
    with pytest.raises(ImageError, match="blob content has digest"):
        add_to_layout(layout, tampered, ["latest"])
    assert not (layout / "blobs/sha256" / fake).exists()
    assert not [p for p in (layout / "blobs/sha256").iterdir() if p.name.endswith(".tmp")]
    assert (layout / "index.json").read_bytes() == index_before


def test_push_tags_to_a_registry_keeps_old_digests_pullable(
    world: Path,
    tmp_path: Path,
    docker_registry: RunningRegistry,  # noqa: F811
) -> None:
    first = build(world, tmp_path / "out1", "r1")
    second = build(world, tmp_path / "out2", "r2")
    layout = tmp_path / "layout"
    add_to_layout(layout, tmp_path / "out1", ["staging"])
    repository = docker_registry.ref("nano/app")
    said: list[str] = []
    pushed = push_tags(
        layout, "build-1", repository, ["build-1", "staging", "stable"], progress=said.append
    )
    assert pushed == first
    assert f"tagged {repository}:stable" in said

    add_to_layout(layout, tmp_path / "out2", ["staging"])
    assert push_tags(layout, "staging", repository, ["build-2", "staging"]) == second
    insecure = "--tls-verify=false"
    expected = {"build-1": first, "build-2": second, "staging": second, "stable": first}
    for tag, digest in expected.items():
        assert skopeo_digest(f"docker://{repository}:{tag}", insecure) == digest, tag

    # promote: stable moves in the registry; the previous digest is still pullable by digest
    assert push_tags(layout, "build-2", repository, ["stable"]) == second
    assert skopeo_digest(f"docker://{repository}:stable", insecure) == second
    crane = find_tool("crane")
    remote = subprocess.run(
        [crane, "digest", "--insecure", f"{repository}:stable"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert remote.stdout.strip() == second
    pulled = tmp_path / "pulled"
    subprocess.run(
        [find_tool("skopeo"), "copy", "--all", insecure.replace("tls", "src-tls"),
         f"docker://{repository}@{first}", f"oci:{pulled}:old"],
        capture_output=True,
        check=True,
    )  # fmt: skip
    assert json.loads((pulled / "index.json").read_bytes())["manifests"][0]["digest"] == first

    with pytest.raises(ImageError, match="without a tag"):
        push_tags(layout, "stable", f"{repository}:x", ["stable"])
    with pytest.raises(ImageError, match="no tag 'nope'"):
        push_tags(layout, "nope", repository, ["stable"])
