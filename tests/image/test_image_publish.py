"""``image publish`` / ``image build --push``: several tags with one upload, SBOMs attached as
``cosign attach sbom`` does, ``--local`` into docker/podman, credentials from a docker
credential helper; against Debian's docker-registry on 127.0.0.1, checked with crane, skopeo and
cosign."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from image_testlib import build_repo, busybox_packages, make_key

from nanodistro.cli import main
from registry_server import find_tool, start_docker_registry

CONFIG = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [hello-app, busybox]
entrypoint:
  command: /usr/bin/hello
archs: [amd64, arm64]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("publishworld")
    key = make_key(root / "keys")
    build_repo(root / "repo", busybox_packages(), key, archs=("x86_64", "aarch64"))
    (root / "img.yaml").write_text(CONFIG)
    return root


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        list(args), capture_output=True, text=True, check=False, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_publish_several_tags_one_digest_and_sboms_attached(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crane, skopeo, cosign = find_tool("crane"), find_tool("skopeo"), find_tool("cosign")
    with start_docker_registry(tmp_path / "registry") as registry:
        refs = [registry.ref("nano/app:1.0"), registry.ref("nano/app:latest")]
        refs.append(registry.ref("other/app:v1"))  # another repository: pushed there too
        code, out, err = _cli(
            capsys,
            "image",
            "publish",
            world / "img.yaml",
            *refs,
            "--out",
            tmp_path / "layout",
            "--source-date-epoch",
            "0",
            "--json",
        )
        assert code == 0, err
        summary = json.loads(out)
        digest = summary["digest"]
        assert summary["references"] == refs
        # every tag resolves to the one index digest, as crane and skopeo see it
        for ref in refs:
            assert _run(crane, "digest", "--insecure", ref).strip() == digest
        inspected = json.loads(
            _run(skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{refs[1]}")
        )
        assert len(inspected["manifests"]) == 2
        # progress says each blob went up once per repository, then each tag was set
        assert err.count("tagged ") == 3

        # SBOMs: the index and each platform image, under cosign's sha256-<hex>.sbom tag
        subjects = {s["subject"] for s in summary["sboms"] if s["repository"].endswith("nano/app")}
        platform_digests = {m["digest"] for m in inspected["manifests"]}
        assert subjects == {digest} | platform_digests
        index_sbom = (tmp_path / "layout/sboms/sbom-index.spdx.json").read_bytes()
        sbom_tag = "sha256-" + digest.split(":", 1)[1] + ".sbom"
        manifest = json.loads(
            _run(crane, "manifest", "--insecure", registry.ref(f"nano/app:{sbom_tag}"))
        )
        assert [layer["mediaType"] for layer in manifest["layers"]] == ["text/spdx+json"]
        # cosign's own reader finds it from the image reference and gets the SPDX bytes
        downloaded = _run(
            cosign,
            "download",
            "sbom",
            "--allow-insecure-registry",
            "--allow-http-registry",
            refs[0],
        )
        assert downloaded.encode() == index_sbom
        assert json.loads(downloaded)["spdxVersion"] == "SPDX-2.3"
        # and the one for x86_64 holds that platform's document
        x86 = next(m for m in inspected["manifests"] if m["platform"]["architecture"] == "amd64")
        arch_tag = "sha256-" + x86["digest"].split(":", 1)[1] + ".sbom"
        arch_manifest = json.loads(
            _run(crane, "manifest", "--insecure", registry.ref(f"nano/app:{arch_tag}"))
        )
        blob = _run(
            crane,
            "blob",
            "--insecure",
            registry.ref(f"nano/app@{arch_manifest['layers'][0]['digest']}"),
        )
        assert blob.encode() == (tmp_path / "layout/sboms/sbom-x86_64.spdx.json").read_bytes()


def test_build_push_repeatable_and_no_sbom(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crane = find_tool("crane")
    with start_docker_registry(tmp_path / "registry") as registry:
        refs = [registry.ref("app:a"), registry.ref("app:b")]
        code, out, err = _cli(
            capsys,
            "image",
            "build",
            world / "img.yaml",
            "--out",
            tmp_path / "out",
            "--arch",
            "amd64",
            "--push",
            refs[0],
            "--push",
            refs[1],
            "--no-sbom",
            "-q",
        )
        assert code == 0, err
        lines = out.splitlines()
        digest = _run(crane, "digest", "--insecure", refs[0]).strip()
        assert f"pushed: {refs[0]}@{digest}" in lines and f"pushed: {refs[1]}@{digest}" in lines
        assert _run(crane, "digest", "--insecure", refs[1]).strip() == digest
        tags = _run(crane, "ls", "--insecure", registry.ref("app")).split()
        assert sorted(tags) == ["a", "b"]  # --no-sbom: no sha256-*.sbom tag


def test_publish_with_credentials_from_a_docker_credential_helper(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    crane = find_tool("crane")
    with start_docker_registry(tmp_path / "registry", htpasswd={"alice": "s3cret"}) as registry:
        bin_dir, asked = tmp_path / "bin", tmp_path / "asked"
        _script(
            bin_dir,
            "docker-credential-fake",
            f'[ "$1" = get ] || exit 3\ncat > {asked}\n'
            'printf \'{"ServerURL":"x","Username":"alice","Secret":"s3cret"}\'\n',
        )
        config_dir = tmp_path / "docker"
        config_dir.mkdir()
        (config_dir / "config.json").write_text(
            json.dumps({"credHelpers": {registry.host: "fake"}, "credsStore": "missing"})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        ref = registry.ref("secure/app:1")
        code, out, err = _cli(
            capsys, "image", "publish", world / "img.yaml", ref, "--arch", "amd64", "-q"
        )
        assert code == 0, err
        assert asked.read_text() == registry.host  # the helper was asked for this registry
        digest = out.splitlines()[0].rsplit("@", 1)[1]
        authed = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "crane-config")}
        _run(crane, "auth", "login", registry.host, "-u", "alice", "-p", "s3cret", env=authed)
        assert _run(crane, "digest", "--insecure", ref, env=authed).strip() == digest

        # a helper that has nothing for the registry: the registry's refusal is the message
        _script(
            bin_dir,
            "docker-credential-fake",
            "echo 'credentials not found in native keychain'; exit 1\n",
        )
        code, _out, err = _cli(
            capsys, "image", "publish", world / "img.yaml", ref, "--arch", "amd64", "-q"
        )
        assert code == 1
        assert "registry requires a username and password" in err
        assert "credential helpers" in err and "Traceback" not in err


def test_local_without_docker_or_podman_says_so(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, out, err = _cli(
        capsys, "image", "publish", world / "img.yaml", "app:dev", "--local", "-q"
    )
    assert code == 1 and out == ""
    assert "no local container store found for --local" in err
    assert "docker: not on PATH; podman: not on PATH" in err
    assert len(err.strip().splitlines()) == 1, err

    # docker installed but its daemon down (as on this CI machine): docker's own reason is given
    _script(
        empty,
        "docker",
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1\n',
    )
    code, _out, err = _cli(
        capsys, "image", "publish", world / "img.yaml", "app:dev", "--local", "-q"
    )
    assert code == 1
    assert "docker: `docker info` failed: Cannot connect to the Docker daemon" in err

    # a digest cannot name an image in a local store: said before anything is built
    pinned = "app@sha256:" + "a" * 64
    code, _out, err = _cli(capsys, "image", "publish", world / "img.yaml", pinned, "--local")
    assert code == 1
    assert f"{pinned}: a local container store is given tags, not digests" in err


def test_local_loads_a_docker_archive_of_the_host_platform(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in ``docker`` whose daemon answers and whose ``load`` keeps what it is given;
    skopeo (a real docker-archive reader) then reads that archive."""
    skopeo = find_tool("skopeo")
    bin_dir, loaded = tmp_path / "bin", tmp_path / "loaded.tar"
    _script(
        bin_dir,
        "docker",
        f'case "$1" in info) exit 0;; load) cat > {loaded}; echo "Loaded image";; *) exit 2;; esac\n',
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, out, err = _cli(
        capsys,
        "image",
        "publish",
        world / "img.yaml",
        "127.0.0.1:5000/app:dev",
        "--local",
        "--arch",
        "amd64",
        "--json",
        "-q",
    )
    assert code == 0, err
    result = json.loads(out)["local"]
    assert result["store"] == "docker" and result["arch"] == "x86_64"
    assert result["tags"] == ["127.0.0.1:5000/app:dev"]
    inspected = json.loads(_run(skopeo, "inspect", "--config", "docker-archive:" + str(loaded)))
    assert inspected["architecture"] == "amd64"
    assert inspected["config"]["Entrypoint"] == ["/usr/bin/hello"]
    layers = json.loads(_run(skopeo, "inspect", "docker-archive:" + str(loaded)))["Layers"]
    assert layers  # the layers are readable too
    with_tag = json.loads(
        _run(skopeo, "inspect", f"docker-archive:{loaded}:127.0.0.1:5000/app:dev")
    )
    assert with_tag["Architecture"] == "amd64"
