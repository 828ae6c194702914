"""The path a user walks (issue 2), through the real ``nanodistro`` command in subprocesses.

keygen -> apk pack -> apk info/verify -> publish -> index -> resolve -> image build -> skopeo ->
image diff -> image push -> crane. Every artifact is checked with code independent of nanodistro
(gzip members split by hand, RSA signatures checked with ``cryptography``, the image read with
skopeo and crane), so a passing test means the bytes are right, not only that the command ran.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cli_runner import run_cli
from needs_tools import require_tools
from registry_server import find_tool, start_docker_registry

EPOCH = "1700000000"


# --- running the CLI -------------------------------------------------------------------------


def ok(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_cli(cwd, *args)
    assert result.returncode == 0, f"nanodistro {args}: {result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def ok_json(cwd: Path, *args: str | Path) -> object:
    return json.loads(ok(cwd, *args, "--json").stdout)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes), to prove nothing changed."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# --- independent readers of APK v2 / APKINDEX ------------------------------------------------


def gzip_members(data: bytes) -> list[bytes]:
    """The raw bytes of each concatenated gzip member (an APK is 3, a signed APKINDEX 2)."""
    members: list[bytes] = []
    rest = data
    while rest:
        inflater = zlib.decompressobj(31)
        inflater.decompress(rest)
        assert inflater.eof, "truncated gzip member"
        used = len(rest) - len(inflater.unused_data)
        members.append(rest[:used])
        rest = inflater.unused_data
    return members


def tar_files(member: bytes) -> dict[str, tarfile.TarInfo | bytes]:
    """Regular files of a (possibly end-of-archive-less) tar in one gzip member -> content."""
    out: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(member)), mode="r:") as tar:
        for info in tar:
            extracted = tar.extractfile(info) if info.isfile() else None
            out[info.name] = extracted.read() if extracted else info
    return out


def check_signed_by(signature_member: bytes, signed: bytes, keys: Path) -> str:
    """The signature member holds one ``.SIGN.RSA256.<keyname>``; verify it over ``signed``."""
    (name, signature), *others = tar_files(signature_member).items()
    assert not others and name.startswith(".SIGN.RSA256."), name
    keyname = name.removeprefix(".SIGN.RSA256.")
    public = serialization.load_pem_public_key((keys / keyname).read_bytes())
    assert isinstance(public, rsa.RSAPublicKey) and isinstance(signature, bytes)
    public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    return keyname


def pkginfo(control_member: bytes) -> dict[str, list[str]]:
    text = tar_files(control_member)[".PKGINFO"]
    assert isinstance(text, bytes)
    fields: dict[str, list[str]] = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" = ")
            fields.setdefault(key, []).append(value)
    return fields


def apk_checksum(apk: bytes) -> str:
    """apk-tools' C: field: Q1 + base64(SHA-1 of the control gzip member)."""
    control = gzip_members(apk)[1]
    return "Q1" + base64.b64encode(hashlib.sha1(control).digest()).decode()


def read_signed_index(index: Path, keys: Path) -> tuple[str, list[dict[str, str]]]:
    """Verify APKINDEX.tar.gz by hand; return the signing key name and its records."""
    signature, body = gzip_members(index.read_bytes())
    keyname = check_signed_by(signature, body, keys)
    text = tar_files(body)["APKINDEX"]
    assert isinstance(text, bytes)
    records = []
    for block in text.decode().strip().split("\n\n"):
        records.append(dict(line.split(":", 1) for line in block.splitlines()))
    return keyname, records


# --- the shared world: keys, two packages, a repository ---------------------------------------


@dataclass
class World:
    root: Path
    keys: Path  # our public keys (keyring)
    key: Path  # our private key
    keyname: str
    other_keys: Path  # a keyring that does not hold our key
    hello: Path  # hello-1.0-r0.apk, depends on libfoo
    libfoo: Path  # libfoo-2.0-r0.apk
    repo: Path


def make_tree(root: Path, readme: str) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/share/hello").mkdir(parents=True)
    (root / "usr/bin/hello").write_text("#!/bin/sh\necho hello\n")
    (root / "usr/bin/hello").chmod(0o755)
    (root / "usr/bin/hi").symlink_to("hello")
    (root / "usr/share/hello/README").write_text(readme)
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("flow")
    keygen = ok_json(root, "keygen", "--name", "flow", "--out", "keys", "--bits", "2048")
    assert isinstance(keygen, dict)
    ok(root, "keygen", "--name", "stranger", "--out", "other", "--bits", "2048")
    private, public = root / keygen["private_key"], root / keygen["public_key"]
    assert public.name == keygen["keyname"] and public.name.startswith("flow-")
    assert private.stat().st_mode & 0o077 == 0, "private key readable by others"
    assert private.name + ".pub" == public.name

    make_tree(root / "hello-tree", "version 1\n")
    (root / "libfoo-tree/usr/lib").mkdir(parents=True)
    (root / "libfoo-tree/usr/lib/libfoo.so.2").write_bytes(b"\x7fELF not really\n")
    pack = ["--key", private, "--source-date-epoch", EPOCH]
    ok(root, "apk", "pack", "hello-tree", "--name", "hello", "--version", "1.0-r0",
       "--depends", "libfoo", "--license", "MIT", "--out", "hello-1.0-r0.apk", *pack)  # fmt: skip
    ok(root, "apk", "pack", "libfoo-tree", "--name", "libfoo", "--version", "2.0-r0",
       "--out", "libfoo-2.0-r0.apk", *pack)  # fmt: skip
    world = World(
        root=root,
        keys=root / "keys",
        key=private,
        keyname=public.name,
        other_keys=root / "other",
        hello=root / "hello-1.0-r0.apk",
        libfoo=root / "libfoo-2.0-r0.apk",
        repo=root / "repo",
    )
    ok(root, "publish", world.hello, world.libfoo, "--repo", "repo", "--key", private)
    return world


def copy_repo(world: World, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(world.repo, repo)
    return repo


# --- packages ----------------------------------------------------------------------------------


def test_pack_writes_a_signed_reproducible_apk(world: World, tmp_path: Path) -> None:
    data = world.hello.read_bytes()
    signature, control, payload = gzip_members(data)
    assert check_signed_by(signature, control, world.keys) == world.keyname
    info = pkginfo(control)
    assert info["pkgname"] == ["hello"] and info["pkgver"] == ["1.0-r0"]
    assert info["depend"] == ["libfoo"] and info["builddate"] == [EPOCH]
    assert info["datahash"] == [hashlib.sha256(payload).hexdigest()]
    files = tar_files(payload)
    assert files["usr/bin/hello"] == b"#!/bin/sh\necho hello\n"
    assert files["usr/share/hello/README"] == b"version 1\n"
    link = files["usr/bin/hi"]
    assert isinstance(link, tarfile.TarInfo) and link.issym() and link.linkname == "hello"
    # same tree, key and epoch -> the same bytes (RSA PKCS#1 v1.5 is deterministic)
    again = tmp_path / "again.apk"
    ok(world.root, "apk", "pack", "hello-tree", "--name", "hello", "--version", "1.0-r0",
       "--depends", "libfoo", "--license", "MIT", "--out", again, "--key", world.key,
       "--source-date-epoch", EPOCH)  # fmt: skip
    assert again.read_bytes() == data


def test_apk_info_json_reports_fields_files_and_signature(world: World) -> None:
    details = ok_json(world.root, "apk", "info", world.hello, "--keyring", "keys")
    assert isinstance(details, dict)
    assert (details["name"], details["version"], details["license"]) == ("hello", "1.0-r0", "MIT")
    assert details["depends"] == ["libfoo"]
    assert details["builddate"] == int(EPOCH)
    assert details["checksum"] == apk_checksum(world.hello.read_bytes())
    assert details["file_size"] == world.hello.stat().st_size
    files = {f["path"]: f for f in details["files"]}
    assert set(files) == {
        "usr", "usr/bin", "usr/bin/hello", "usr/bin/hi", "usr/share", "usr/share/hello",
        "usr/share/hello/README",
    }  # fmt: skip
    assert files["usr/bin/hello"]["type"] == "file" and files["usr/bin/hello"]["mode"] == "0755"
    assert files["usr/bin/hi"]["type"] == "symlink" and files["usr/bin/hi"]["target"] == "hello"
    assert files["usr/share/hello"]["type"] == "dir"
    assert details["signatures"] == [{"algorithm": "RSA256", "keyname": world.keyname}]
    assert details["verified"] == {"ok": True, "keyname": world.keyname, "algorithm": "RSA256"}

    untrusted = ok_json(world.root, "apk", "info", world.hello, "--keyring", "other")
    assert isinstance(untrusted, dict) and untrusted["verified"]["ok"] is False


def test_apk_verify_with_right_and_wrong_keyring(world: World, tmp_path: Path) -> None:
    good = run_cli(world.root, "apk", "verify", world.hello, world.libfoo, "--keyring", "keys")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count(": OK") == 2

    wrong = run_cli(world.root, "apk", "verify", world.hello, "--keyring", "other")
    assert wrong.returncode != 0
    assert "UNTRUSTED" in wrong.stdout + wrong.stderr
    assert "Traceback" not in wrong.stderr

    # one flipped byte in the data stream: the signature still holds, the datahash does not
    data = bytearray(world.hello.read_bytes())
    data[-30] ^= 0x01
    tampered = tmp_path / "hello-1.0-r0.apk"
    tampered.write_bytes(bytes(data))
    bad = run_cli(world.root, "apk", "verify", tampered, "--keyring", "keys")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


# --- the repository ----------------------------------------------------------------------------


def test_published_index_is_signed_and_lists_both_packages(world: World) -> None:
    index = world.repo / "x86_64" / "APKINDEX.tar.gz"
    keyname, records = read_signed_index(index, world.keys)
    assert keyname == world.keyname
    by_name = {r["P"]: r for r in records}
    assert set(by_name) == {"hello", "libfoo"}
    for name, apk in (("hello", world.hello), ("libfoo", world.libfoo)):
        published = world.repo / "x86_64" / apk.name
        assert published.read_bytes() == apk.read_bytes()
        assert by_name[name]["C"] == apk_checksum(apk.read_bytes())
        assert by_name[name]["S"] == str(apk.stat().st_size)
    assert by_name["hello"]["V"] == "1.0-r0" and by_name["hello"]["D"] == "libfoo"
    assert by_name["libfoo"]["V"] == "2.0-r0"


def test_index_regenerates_the_same_signed_index(world: World, tmp_path: Path) -> None:
    repo = copy_repo(world, tmp_path)
    index = repo / "x86_64" / "APKINDEX.tar.gz"
    before = index.read_bytes()
    index.unlink()
    summary = ok_json(world.root, "index", repo / "x86_64", "--key", world.key)
    assert isinstance(summary, dict)
    assert {p["name"] for p in summary["packages"]} == {"hello", "libfoo"}
    _, records = read_signed_index(index, world.keys)
    assert {r["P"]: r["C"] for r in records} == {
        "hello": apk_checksum(world.hello.read_bytes()),
        "libfoo": apk_checksum(world.libfoo.read_bytes()),
    }
    assert index.read_bytes() == before, "index of the same packages is not reproducible"


def test_republish_same_is_noop_and_different_file_is_refused(world: World, tmp_path: Path) -> None:
    repo = copy_repo(world, tmp_path)
    before = snapshot(repo)

    same = ok(world.root, "publish", world.hello, "--repo", repo, "--key", world.key)
    assert "unchanged" in same.stdout
    assert snapshot(repo) == before

    impostor_tree = make_tree(tmp_path / "impostor-tree", "something else\n")
    impostor = tmp_path / "impostor" / "hello-1.0-r0.apk"
    ok(world.root, "apk", "pack", impostor_tree, "--name", "hello", "--version", "1.0-r0",
       "--depends", "libfoo", "--key", world.key, "--out", impostor,
       "--source-date-epoch", EPOCH)  # fmt: skip
    assert impostor.read_bytes() != world.hello.read_bytes()
    refused = run_cli(world.root, "publish", impostor, "--repo", repo, "--key", world.key)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "hello-1.0-r0.apk" in refused.stderr and "Traceback" not in refused.stderr
    assert snapshot(repo) == before, "a refused publish changed the repository"


def test_resolve_prints_the_closure_in_install_order(world: World) -> None:
    result = ok(world.root, "resolve", "--repo", "repo", "--keyring", "keys", "hello")
    assert result.stdout.splitlines() == [
        "(1/2) Installing libfoo (2.0-r0)",
        "(2/2) Installing hello (1.0-r0)",
    ]
    plan = ok_json(world.root, "resolve", "--repo", "repo", "--keyring", "keys", "hello")
    assert isinstance(plan, list)
    assert [(p["name"], p["version"], p["checksum"]) for p in plan] == [
        ("libfoo", "2.0-r0", apk_checksum(world.libfoo.read_bytes())),
        ("hello", "1.0-r0", apk_checksum(world.hello.read_bytes())),
    ]
    # the same repository under a keyring without our key is not trusted
    untrusted = run_cli(world.root, "resolve", "--repo", "repo", "--keyring", "other", "hello")
    assert untrusted.returncode != 0 and "Traceback" not in untrusted.stderr


@pytest.fixture
def served_repo(world: World) -> Iterator[str]:
    """The published repository on 127.0.0.1, as a plain static web server serves it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(world.repo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_resolve_over_http_matches_the_directory(world: World, served_repo: str) -> None:
    local = ok(world.root, "resolve", "--repo", "repo", "--keyring", "keys", "hello")
    remote = ok(world.root, "resolve", "--repo", served_repo, "--keyring", "keys", "hello")
    assert remote.stdout == local.stdout
    plan = ok_json(world.root, "resolve", "--repo", served_repo, "--keyring", "keys", "hello")
    assert isinstance(plan, list)
    assert [p["url"] for p in plan] == [
        f"{served_repo}/x86_64/libfoo-2.0-r0.apk",
        f"{served_repo}/x86_64/hello-1.0-r0.apk",
    ]


# --- images --------------------------------------------------------------------------------------


def image_config(world: World, directory: Path, repo: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "hello.yaml"
    config.write_text(
        "contents:\n"
        f"  keyring: [{world.keys / world.keyname}]\n"
        f"  repositories: [{repo}]\n"
        "  packages: [hello]\n"
        "entrypoint:\n"
        "  command: /usr/bin/hello\n"
        "archs: [x86_64]\n"
    )
    return config


def build_image(world: World, config: Path, out: Path) -> dict[str, object]:
    result = ok_json(world.root, "image", "build", config, "--out", out, "--quiet")
    assert isinstance(result, dict)
    return result


def layer_files(layout: Path, layer_digest: str) -> dict[str, tarfile.TarInfo | bytes]:
    blob = layout / "blobs" / "sha256" / layer_digest.removeprefix("sha256:")
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer_digest
    return tar_files(blob.read_bytes())


def skopeo_inspect(layout: Path) -> dict[str, object]:
    skopeo = find_tool("skopeo")
    result = subprocess.run(
        [skopeo, "inspect", f"oci:{layout}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    inspected: dict[str, object] = json.loads(result.stdout)
    return inspected


@pytest.fixture(scope="module")
def first_image(world: World) -> tuple[Path, dict[str, object]]:
    config = image_config(world, world.root / "images", world.repo)
    layout = world.root / "layout-1"
    return layout, build_image(world, config, layout)


def test_image_build_contains_the_closure_and_skopeo_reads_it(
    world: World, first_image: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    layout, result = first_image
    images = result["images"]
    assert isinstance(images, list) and len(images) == 1
    (image,) = images
    assert image["arch"] == "x86_64" and image["packages"] == ["libfoo-2.0-r0", "hello-1.0-r0"]

    inspected = skopeo_inspect(layout)
    assert inspected["Digest"] == result["digest"]
    assert inspected["Architecture"] == "amd64" and inspected["Os"] == "linux"
    assert inspected["Layers"] == image["layers"]

    files: dict[str, tarfile.TarInfo | bytes] = {}
    for digest in image["layers"]:
        files.update(layer_files(layout, digest))
    assert files["usr/bin/hello"] == b"#!/bin/sh\necho hello\n"
    assert files["usr/lib/libfoo.so.2"] == b"\x7fELF not really\n"
    installed = files["usr/lib/apk/db/installed"]
    assert isinstance(installed, bytes)
    assert {line[2:] for line in installed.decode().splitlines() if line.startswith("P:")} == {
        "hello",
        "libfoo",
    }

    # reproducible: the same config and packages give the same digest
    again = build_image(world, image_config(world, tmp_path, world.repo), tmp_path / "layout")
    assert again["digest"] == result["digest"]


def test_image_diff_reports_the_upgrade(
    world: World, first_image: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    layout_1, _ = first_image
    repo = copy_repo(world, tmp_path)
    make_tree(tmp_path / "hello-1.1", "version 1.1\n")
    newer = tmp_path / "hello-1.1-r0.apk"
    ok(world.root, "apk", "pack", tmp_path / "hello-1.1", "--name", "hello", "--version",
       "1.1-r0", "--depends", "libfoo", "--key", world.key, "--out", newer,
       "--source-date-epoch", EPOCH)  # fmt: skip
    ok(world.root, "publish", newer, "--repo", repo, "--key", world.key)
    layout_2 = tmp_path / "layout-2"
    second = build_image(world, image_config(world, tmp_path / "images", repo), layout_2)
    assert second["images"][0]["packages"] == ["libfoo-2.0-r0", "hello-1.1-r0"]  # type: ignore[index]

    diff = ok_json(world.root, "image", "diff", layout_1, layout_2)
    assert isinstance(diff, dict)
    change = diff["archs"]["x86_64"]
    assert change["upgraded"] == [{"name": "hello", "old": "1.0-r0", "new": "1.1-r0"}]
    assert change["added"] == [] and change["removed"] == [] and change["downgraded"] == []

    same = ok_json(world.root, "image", "diff", layout_1, layout_1)
    assert isinstance(same, dict)
    assert not any(same["archs"]["x86_64"][k] for k in ("added", "removed", "upgraded"))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    require_tools("docker-registry")
    with start_docker_registry(tmp_path / "registry") as running:
        yield running.host


def test_image_push_and_crane_agree_on_the_digest(
    world: World, first_image: tuple[Path, dict[str, object]], registry: str
) -> None:
    layout, result = first_image
    reference = f"{registry}/flow/hello:1.0"
    pushed = ok_json(world.root, "image", "push", layout, reference)
    assert isinstance(pushed, dict) and pushed["digest"] == result["digest"]
    crane = find_tool("crane")
    digest = subprocess.run(
        [crane, "digest", "--insecure", reference], capture_output=True, text=True, check=False
    )
    assert digest.returncode == 0, digest.stderr
    assert digest.stdout.strip() == result["digest"]
    # the registry serves exactly our index bytes
    manifest = subprocess.run(
        [crane, "manifest", "--insecure", reference], capture_output=True, check=False
    )
    assert manifest.returncode == 0
    assert "sha256:" + hashlib.sha256(manifest.stdout).hexdigest() == result["digest"]


def test_image_lock_pins_the_closure_and_rebuilds_the_same_image(
    world: World, first_image: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    _, result = first_image
    config = image_config(world, tmp_path / "images", world.repo)
    lock_path = tmp_path / "hello.lock.json"
    ok(world.root, "image", "lock", config, "--out", lock_path, "--quiet")
    lock = json.loads(lock_path.read_text())
    packages = {p["name"]: p for p in lock["contents"]["packages"]}
    assert {n: p["version"] for n, p in packages.items()} == {"libfoo": "2.0-r0", "hello": "1.0-r0"}
    # the lock's control checksum is the index's C: field without the Q1 prefix (both SHA-1)
    for name, apk in (("hello", world.hello), ("libfoo", world.libfoo)):
        assert "Q1" + packages[name]["control"]["checksum"].removeprefix("sha1-") == apk_checksum(
            apk.read_bytes()
        )
    rebuilt = ok_json(world.root, "image", "build", config, "--lockfile", lock_path,
                      "--out", tmp_path / "layout", "--quiet")  # fmt: skip
    assert isinstance(rebuilt, dict)
    # as apko does, a locked build pins its world (etc/apk/world: name=version), so the digest
    # differs from the unlocked build; the installed packages are the same bytes
    (locked_image,) = rebuilt["images"]
    images = result["images"]
    assert isinstance(images, list)
    first: dict[str, Any] = images[0]
    assert locked_image["packages"] == first["packages"]

    def installed(layout: Path, layers: list[str]) -> bytes:
        files: dict[str, tarfile.TarInfo | bytes] = {}
        for digest in layers:
            files.update(layer_files(layout, digest))
        db = files["usr/lib/apk/db/installed"]
        assert isinstance(db, bytes)
        return db

    assert installed(tmp_path / "layout", locked_image["layers"]) == installed(
        first_image[0], first["layers"]
    )
    again = ok_json(world.root, "image", "build", config, "--lockfile", lock_path,
                    "--out", tmp_path / "again", "--quiet")  # fmt: skip
    assert isinstance(again, dict) and again["digest"] == rebuilt["digest"]


def test_oci_archive_and_umoci_unpack(
    world: World, first_image: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    layout, result = first_image
    config = image_config(world, tmp_path / "images", world.repo)
    archive = tmp_path / "hello.tar"
    built = build_image(world, config, archive)
    assert built["digest"] == result["digest"], "archive and layout of one build differ"
    skopeo = find_tool("skopeo")
    inspected = subprocess.run(
        [skopeo, "inspect", f"oci-archive:{archive}"], capture_output=True, text=True, check=False
    )
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == result["digest"]

    umoci = find_tool("umoci")
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{layout}:latest", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / "usr/bin/hello").read_text() == "#!/bin/sh\necho hello\n"
    assert os.readlink(rootfs / "usr/bin/hi") == "hello"
    assert (rootfs / "usr/bin/hello").stat().st_mode & 0o777 == 0o755
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["args"] == ["/usr/bin/hello"]
