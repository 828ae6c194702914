"""Image assembly end to end: real packages in, OCI layouts out, checked with real clients."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from image_testlib import BUILD_DATE, Pkg, build_repo, busybox_packages, make_key

from fixture_paths import THIRD_PARTY
from nanodistro.cli import main
from nanodistro.errors import ChecksumError, FormatError, ImageError, NanodistroError
from nanodistro.formats.installed_db import parse_installed, parse_script_member_name
from nanodistro.formats.tarball import gunzip, read_tar
from nanodistro.image.build import BuildRequest, build_image, lock_image, write_result
from nanodistro.image.diff import diff_images, from_layout, load_image_packages
from nanodistro.image.lock import read_lock
from nanodistro.image.oci_layout import Layout
from nanodistro.imageconfig import load_config
from nanodistro.registry import push_layout
from needs_tools import require_tools, tool_available
from registry_server import find_tool, free_port, start_docker_registry

APKO_TESTDATA = THIRD_PARTY / "chainguard-dev+apko/internal/cli/testdata"

CONFIG = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [hello-app, busybox]
entrypoint:
  command: /usr/bin/sh -c "echo hello from $(id -u)"
accounts:
  groups: [{groupname: app, gid: 10000}]
  users: [{username: app, uid: 10000}]
  run-as: app
environment: {GREETING: hi}
paths:
  - {path: /data, type: directory, uid: 10000, gid: 10000, permissions: 0o750}
  - {path: /etc/motd, type: empty-file, permissions: 0o600}
  - {path: /usr/share/hello/link, type: symlink, source: greeting}
work-dir: /data
stop-signal: SIGQUIT
volumes: [/data]
annotations: {org.opencontainers.image.title: Hello}
vcs-url: https://example.com/app@0123456789abcdef
archs: [amd64]
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imageworld")
    key = make_key(root / "keys")
    build_repo(root / "repo", busybox_packages(), key, archs=("x86_64", "aarch64"))
    (root / "img.yaml").write_text(CONFIG)
    return root


def _build(config: Path, out: Path, **kwargs: object) -> object:
    request = BuildRequest(loaded=load_config(config), source_date_epoch=0, **kwargs)  # type: ignore[arg-type]
    result = build_image(request)
    write_result(result, out)
    return result


def _only_layer_files(layout_dir: Path) -> dict[str, tarfile.TarInfo]:
    layout = Layout(layout_dir)
    (image,) = layout.images()
    members: dict[str, tarfile.TarInfo] = {}
    for layer in image.manifest.layers:
        with tarfile.open(fileobj=__import__("io").BytesIO(layout.blob(layer.digest))) as tar:
            for member in tar.getmembers():
                members[member.name] = member
    return members


def _layer_file(layout_dir: Path, path: str) -> bytes:
    layout = Layout(layout_dir)
    found = b""
    for image in layout.images()[:1]:
        for layer in image.manifest.layers:
            for entry in read_tar(gunzip(layout.blob(layer.digest), where="layer"), where="layer"):
                if entry.path == path and entry.type == "file":
                    found = entry.data
    return found


def test_build_layout_contents(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(workspace / "img.yaml", out)
    members = _only_layer_files(out)
    # installed db lists the packages in install order, parseable by the installed-db reader
    db = parse_installed(_layer_file(out, "usr/lib/apk/db/installed"), where="installed")
    assert [r.info.name for r in db] == ["test-baselayout", "busybox", "hello-app"]
    box = db[1]
    assert "usr/bin/busybox" in box.paths()
    # lib -> usr/lib already, so no lib/apk link; InitDB files present
    assert members["lib"].issym() and "lib/apk" not in members
    for path in ("etc/apk/arch", "usr/lib/apk/db/lock", "dev/null", "tmp", "proc"):
        assert path in members
    assert members["tmp"].mode == 0o1777 and members["dev/null"].ischr()
    assert _layer_file(out, "etc/apk/world") == b"busybox\nhello-app\n"
    assert _layer_file(out, "etc/apk/arch") == b"x86_64\n"
    assert _layer_file(out, "etc/apk/repositories") == b"./repo\n"
    assert _layer_file(out, "etc/apk/keys/test-image.rsa.pub").startswith(b"-----BEGIN")
    # scripts and triggers recorded, not run
    scripts = read_tar(_layer_file(out, "usr/lib/apk/db/scripts.tar"), where="scripts.tar")
    assert [parse_script_member_name(e.path)[0] for e in scripts] == ["busybox-1.36.1-r0"]
    assert _layer_file(out, "usr/lib/apk/db/triggers").decode().endswith(" /usr/bin\n")
    # accounts in apko's format, package entries kept
    passwd = _layer_file(out, "etc/passwd").decode().splitlines()
    assert passwd == [
        "root:x:0:0:root:/root:/bin/sh",
        "app:x:10000:10000:Account created by apko:/home/app:/bin/sh",
    ]
    assert _layer_file(out, "etc/group").decode().splitlines() == ["root:x:0:", "app:x:10000:"]
    # a locked shadow entry per configured user, in the nine-field format apko's reader takes
    assert _layer_file(out, "etc/shadow") == b"app:!::0:::::\n"
    assert (members["etc/shadow"].mode, members["etc/shadow"].uid) == (0o640, 0)
    # paths
    assert (members["data"].mode, members["data"].uid, members["data"].uname) == (
        0o750,
        10000,
        "app",
    )
    assert members["etc/motd"].isfile() and members["etc/motd"].mode == 0o600
    assert members["usr/share/hello/link"].linkname == "greeting"
    assert members["home/app"].mode == 0o700
    # mtimes: package files keep their build date, synthesized ones get SOURCE_DATE_EPOCH
    assert members["usr/bin/busybox"].mtime == BUILD_DATE
    assert members["etc/passwd"].mtime == 0
    # order is Go fs.WalkDir order
    names = list(members)
    assert names == sorted(names, key=lambda p: p.split("/"))


def test_oci_config_and_annotations(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(workspace / "img.yaml", out)
    (image,) = Layout(out).images()
    config = image.config
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    process = config["config"]
    assert process["User"] == "10000:10000"  # run-as: app, resolved as apko resolves it
    assert process["Entrypoint"] == ["/usr/bin/sh", "-c", "echo hello from $(id -u)"]
    assert process["Env"] == [
        "GREETING=hi",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    ]
    assert (process["WorkingDir"], process["StopSignal"]) == ("/data", "SIGQUIT")
    assert process["Volumes"] == {"/data": {}}
    assert process["Labels"]["org.opencontainers.image.source"] == "https://example.com/app"
    assert process["Labels"]["org.opencontainers.image.revision"] == "0123456789abcdef"
    assert config["history"][0]["comment"] == "This is a nanodistro single-layer image"
    diff_ids = config["rootfs"]["diff_ids"]
    layer = Layout(out).blob(image.manifest.layers[0].digest)
    assert diff_ids == ["sha256:" + hashlib.sha256(gunzip(layer, where="l")).hexdigest()]
    index = json.loads((out / "index.json").read_bytes())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"


def test_skopeo_and_umoci_accept_and_runc_runs_as_configured_uid(
    workspace: Path, tmp_path: Path
) -> None:
    require_tools("skopeo", "umoci", "runc")
    out = tmp_path / "out"
    _build(workspace / "img.yaml", out)
    inspect = subprocess.run(
        ["skopeo", "inspect", f"oci:{out}"], capture_output=True, text=True, check=True
    )
    assert json.loads(inspect.stdout)["Architecture"] == "amd64"
    config = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{out}:latest"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(config.stdout)["config"]["User"] == "10000:10000"
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{out}:latest", str(bundle)],
        capture_output=True,
        check=True,
    )
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    name = f"nanodistro-image-{tmp_path.name}"[:60]
    run = subprocess.run(
        ["runc", "run", "-b", str(bundle), name],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    subprocess.run(["runc", "delete", "-f", name], capture_output=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "hello from 10000"


def test_reproducible_across_runs_dirs_and_formats(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(workspace, copy)
    first = _build(workspace / "img.yaml", tmp_path / "a")
    second = _build(copy / "img.yaml", tmp_path / "b" / "c")
    third = _build(workspace / "img.yaml", tmp_path / "img.tar")
    assert first.digest == second.digest == third.digest  # type: ignore[attr-defined]
    assert (tmp_path / "a" / "index.json").read_bytes() == (
        tmp_path / "b" / "c" / "index.json"
    ).read_bytes()
    assert Layout(tmp_path / "img.tar").images()[0].descriptor.digest == (
        Layout(tmp_path / "a").images()[0].descriptor.digest
    )
    if tool_available("skopeo"):
        inspect = subprocess.run(
            ["skopeo", "inspect", f"oci-archive:{tmp_path / 'img.tar'}"],
            capture_output=True,
            check=True,
        )
        # the digest of the tagged index, as a registry would serve it
        assert json.loads(inspect.stdout)["Digest"] == first.digest  # type: ignore[attr-defined]


def test_reproducible_under_another_umask_timezone_locale_and_cwd(
    workspace: Path, tmp_path: Path
) -> None:
    """Processes with umask 027 and 077, another TZ/locale/HOME and cwd give the same digest."""
    import os
    import sys

    first = _build(workspace / "img.yaml", tmp_path / "a", archs=["amd64", "arm64"])
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"},
        "TZ": "Pacific/Chatham",
        "LC_ALL": "C",
        "LANG": "tr_TR.UTF-8",
        "HOME": str(elsewhere),
    }
    options = ["--arch", "amd64", "--arch", "arm64", "--source-date-epoch", "0", "--json", "-q"]
    for child_umask in (0o027, 0o077):
        out = tmp_path / f"b{child_umask:o}"
        build = ["image", "build", str(workspace / "img.yaml"), "--out", str(out)]
        done = subprocess.run(
            [sys.executable, "-m", "nanodistro", *build, *options],
            cwd=elsewhere,
            env=env,
            umask=child_umask,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["digest"] == first.digest  # type: ignore[attr-defined]
        assert (out / "index.json").read_bytes() == (tmp_path / "a" / "index.json").read_bytes()


def test_multi_arch_index(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "multi"
    result = _build(workspace / "img.yaml", out, archs=["amd64", "arm64"])
    images = Layout(out).images()
    assert [i.config["architecture"] for i in images] == ["amd64", "arm64"]
    assert len(result.sboms) == 6  # SPDX + CycloneDX for 2 archs and the index  # type: ignore[attr-defined]
    if tool_available("skopeo"):
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{out}:latest"], capture_output=True, check=True
        )
        assert len(json.loads(raw.stdout)["manifests"]) == 2


@pytest.mark.slow
def test_multi_arch_layout_accepted_by_skopeo_umoci_and_registries(
    workspace: Path, tmp_path: Path
) -> None:
    """umoci 0.4.7 calls a tag on a multi-arch index ambiguous: each platform's manifest is
    also named (latest-amd64, latest-arm64), and the index under ``latest`` is still what
    skopeo, our push and crane see."""
    skopeo, umoci = find_tool("skopeo"), find_tool("umoci")
    out = tmp_path / "multi"
    result = _build(workspace / "img.yaml", out, archs=["amd64", "arm64"])
    digest = result.digest  # type: ignore[attr-defined]
    refs = {
        e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"]
        for e in json.loads((out / "index.json").read_bytes())["manifests"]
    }
    per_arch = {i.config["architecture"]: i.descriptor.digest for i in Layout(out).images()}
    assert refs == {
        "latest": digest,
        "latest-amd64": per_arch["amd64"],
        "latest-arm64": per_arch["arm64"],
    }
    assert Layout(out).top_digest() == digest
    inspected = subprocess.run(
        [skopeo, "inspect", "--raw", f"oci:{out}:latest"], capture_output=True, check=True
    )
    assert "sha256:" + hashlib.sha256(inspected.stdout).hexdigest() == digest
    for oci_arch, apk_arch in (("amd64", "x86_64"), ("arm64", "aarch64")):
        bundle = tmp_path / f"bundle-{oci_arch}"
        unpack = subprocess.run(
            [umoci, "unpack", "--image", f"{out}:latest-{oci_arch}", str(bundle)],
            capture_output=True,
            text=True,
        )
        assert unpack.returncode == 0, unpack.stderr
        assert (bundle / "rootfs/etc/apk/arch").read_text() == f"{apk_arch}\n"
        spec = json.loads((bundle / "config.json").read_text())
        assert spec["process"]["user"]["uid"] == 10000
    # our push (no ref name given) sends the index; skopeo and crane read the same digest back
    with start_docker_registry(tmp_path / "registry") as registry:
        _push_and_copy_multi_arch(registry.ref, out, digest, tmp_path, skopeo)


def _push_and_copy_multi_arch(
    ref: Callable[[str], str], out: Path, digest: str, tmp_path: Path, skopeo: str
) -> None:
    ours = ref("nano/multi:v1")
    assert push_layout(out, ours) == digest
    remote = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ours}"],
        capture_output=True,
        check=True,
    )
    assert "sha256:" + hashlib.sha256(remote.stdout).hexdigest() == digest
    crane = find_tool("crane")
    remote_digest = subprocess.run(
        [crane, "digest", "--insecure", ours], capture_output=True, text=True, check=True
    )
    assert remote_digest.stdout.strip() == digest
    # skopeo copy layout -> registry -> layout keeps the digest
    theirs = ref("nano/multi:copied")
    subprocess.run(
        [
            skopeo,
            "copy",
            "--all",
            "--dest-tls-verify=false",
            f"oci:{out}:latest",
            f"docker://{theirs}",
        ],
        capture_output=True,
        check=True,
    )
    back = tmp_path / "back"
    subprocess.run(
        [skopeo, "copy", "--all", "--src-tls-verify=false", f"docker://{theirs}", f"oci:{back}:x"],
        capture_output=True,
        check=True,
    )
    assert json.loads((back / "index.json").read_bytes())["manifests"][0]["digest"] == digest


def test_lock_then_build_from_lock(workspace: Path, tmp_path: Path) -> None:
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    loaded = load_config(world / "img.yaml")
    lock = lock_image(BuildRequest(loaded=loaded))
    lock_path = world / "img.lock.json"
    lock_path.write_bytes(lock.to_bytes())
    doc = json.loads(lock_path.read_text())
    assert doc["version"] == "v1"
    names = [(p["name"], p["architecture"]) for p in doc["contents"]["packages"]]
    assert ("busybox", "x86_64") in names and len(names) == 3
    package = doc["contents"]["packages"][0]
    assert package["checksum"].startswith("Q1")
    assert package["control"]["checksum"].startswith("sha1-")
    assert package["data"]["checksum"].startswith("sha256-")
    assert package["signature"]["range"].startswith("bytes=0-")
    # the ranges really are the package's members
    assert package["url"] == "./repo/x86_64/test-baselayout-1.0-r0.apk"  # as the config wrote it
    assert package["repository"] == "./repo"
    apk = (world / package["url"]).read_bytes()
    start, end = map(int, package["control"]["range"].removeprefix("bytes=").split("-"))
    assert apk[start : end + 1][:2] == b"\x1f\x8b"

    plain = _build(world / "img.yaml", tmp_path / "plain")
    locked = _build(world / "img.yaml", tmp_path / "locked", lock=read_lock(lock_path))
    assert plain.digest != "" and len(locked.images[0].root.packages) == 3  # type: ignore[attr-defined]

    # a rebuilt (different) package under the same name is refused
    key = make_key(tmp_path / "otherkeys")
    changed = busybox_packages()
    changed[2].files["usr/share/hello/greeting"] = b"changed\n"
    build_repo(world / "repo", changed, key, archs=("x86_64",))
    changed_msg = r"locked package hello-app-2\.0-r1 changed: identity Q1\S+ != locked Q1\S+; data"
    with pytest.raises(ImageError, match=changed_msg):
        _build(world / "img.yaml", tmp_path / "x", lock=read_lock(lock_path))
    # and a package that disappeared is reported as gone
    (world / "repo/x86_64/hello-app-2.0-r1.apk").unlink()
    with pytest.raises(ImageError, match=r"locked package hello-app-2\.0-r1 is gone: not found"):
        _build(world / "img.yaml", tmp_path / "y", lock=read_lock(lock_path))


def test_unknown_package_and_untrusted_index(workspace: Path, tmp_path: Path) -> None:
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    config = world / "img.yaml"
    config.write_text(CONFIG.replace("[hello-app, busybox]", "[nope]"))
    with pytest.raises(NanodistroError, match=r"nope \(no such package\)"):
        _build(config, tmp_path / "o")
    make_key(world / "keys")  # replaces the trusted key with an unrelated one
    config.write_text(CONFIG)
    with pytest.raises(NanodistroError, match=r"UNTRUSTED|BAD"):
        _build(config, tmp_path / "o2")


def _corrupt(apk: Path) -> None:
    """Flip one byte near the end of the package (inside its data stream)."""
    data = bytearray(apk.read_bytes())
    data[-40] ^= 0xFF
    apk.write_bytes(bytes(data))


def test_corrupt_package_is_rejected(workspace: Path, tmp_path: Path) -> None:
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    apk = world / "repo/x86_64/hello-app-2.0-r1.apk"
    _corrupt(apk)
    with pytest.raises(FormatError, match="is truncated") as info:
        _build(world / "img.yaml", tmp_path / "o")
    assert info.value.where == str(apk)


def test_first_bad_package_in_install_order_is_reported(workspace: Path, tmp_path: Path) -> None:
    # Packages are verified on a thread pool; the error is still the one a serial install
    # meets first (the corrupt base layout, not the later package that is missing).
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    _corrupt(world / "repo/x86_64/test-baselayout-1.0-r0.apk")
    (world / "repo/x86_64/hello-app-2.0-r1.apk").unlink()
    with pytest.raises(NanodistroError) as info:
        _build(world / "img.yaml", tmp_path / "o")
    assert "test-baselayout-1.0-r0.apk" in str(info.value.where)


def test_origin_layering(workspace: Path, tmp_path: Path) -> None:
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    (world / "layered.yaml").write_text(CONFIG + "layering: {strategy: origin, budget: 2}\n")
    single = tmp_path / "single"
    layered = tmp_path / "layered"
    _build(world / "img.yaml", single)
    result = _build(world / "layered.yaml", layered)
    layers = result.images[0].layers  # type: ignore[attr-defined]
    assert len(layers) == 2
    assert layers[0].packages == ["busybox"]  # the biggest origin group gets its own layer
    merged = _only_layer_files(layered)
    assert set(merged) == set(_only_layer_files(single))
    # the lower layer carries a partial installed db with only its own package
    layout = Layout(layered)
    lower = read_tar(gunzip(layout.blob(layers[0].digest), where="l"), where="l")
    db = next(e for e in lower if e.path == "usr/lib/apk/db/installed")
    assert [r.info.name for r in parse_installed(db.data, where="db")] == ["busybox"]
    packages = from_layout(layered, kind="layout").archs["x86_64"].packages
    assert set(packages) == {"busybox", "hello-app", "test-baselayout"}
    if tool_available("umoci"):
        subprocess.run(
            ["umoci", "unpack", "--image", f"{layered}:latest", str(tmp_path / "bundle")],
            capture_output=True,
            check=True,
        )
        assert (tmp_path / "bundle/rootfs/usr/bin/busybox").is_file()


def test_sboms(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(workspace / "img.yaml", out)
    sbom = json.loads((out / "sboms/sbom-x86_64.spdx.json").read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3"
    purls = {ref["referenceLocator"] for p in sbom["packages"] for ref in p.get("externalRefs", [])}
    # a package without an SBOM of its own: formats.purl form, distro = the os-release ID
    assert "pkg:apk/nanotest/busybox@1.36.1-r0?arch=x86_64" in purls
    licenses = {p["name"]: p.get("licenseDeclared") for p in sbom["packages"]}
    assert licenses["busybox"] == "GPL-2.0-only"
    purposes = {p["name"]: p.get("primaryPackagePurpose") for p in sbom["packages"]}
    assert purposes["nanotest"] == "OPERATING-SYSTEM"  # from etc/os-release
    from nanodistro.formats.spdx import from_json

    assert len(from_json((out / "sboms/sbom-x86_64.spdx.json").read_bytes()).packages) == len(
        sbom["packages"]
    )
    index = json.loads((out / "sboms/sbom-index.spdx.json").read_text())
    assert any(r["relationshipType"] == "VARIANT_OF" for r in index["relationships"])


def test_apko_testdata_config_builds_like_apkos_golden(tmp_path: Path) -> None:
    out = tmp_path / "apko"
    result = _build(APKO_TESTDATA / "apko.yaml", out)
    assert [i.arch.apk for i in result.images] == ["x86_64", "aarch64"]  # type: ignore[attr-defined]
    diff = diff_images(
        from_layout(APKO_TESTDATA / "golden", kind="layout"), from_layout(out, kind="layout")
    )
    for change in diff["archs"].values():
        assert not (change["added"] or change["removed"] or change["upgraded"])
    # the embedded melange SBOMs of apko's test packages are carried into the image SBOM
    sbom = json.loads((out / "sboms/sbom-x86_64.spdx.json").read_text())
    names = {p["name"] for p in sbom["packages"]}
    assert {"replayout", "pretend-baselayout"} <= names
    # building from apko's own lock file installs exactly the locked packages
    locked = _build(
        APKO_TESTDATA / "apko.yaml",
        tmp_path / "locked",
        lock=read_lock(APKO_TESTDATA / "apko.lock.json"),
    )
    assert [f"{p.apk.name}-{p.apk.version}" for p in locked.images[0].root.packages] == [  # type: ignore[attr-defined]
        "pretend-baselayout-1.0.0-r0",
        "replayout-1.0.0-r0",
    ]
    # as apko, a locked build pins the world to the exact versions
    assert _layer_file(tmp_path / "locked", "etc/apk/world") == (
        b"pretend-baselayout=1.0.0-r0\nreplayout=1.0.0-r0\n"
    )


@pytest.mark.parametrize(
    ("name", "packages"),
    [
        ("golden", ["pretend-baselayout", "replayout"]),
        ("base_image", ["package-x", "package-y", "pretend-baselayout"]),
        ("top_image", ["package-x", "pretend-baselayout", "replayout"]),
    ],
)
def test_diff_reads_apko_golden_layouts(name: str, packages: list[str]) -> None:
    image = load_image_packages(str(APKO_TESTDATA / name))
    assert set(image.archs) == {"x86_64", "aarch64"}
    for arch in image.archs.values():
        assert dict(arch.packages) == dict.fromkeys(packages, "1.0.0-r0")
    assert all(arch.size and arch.size > 0 for arch in image.archs.values())


def test_diff_upgrade_downgrade_and_cli(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    old = tmp_path / "old"
    _build(world / "img.yaml", old)
    key = make_key(world / "keys")
    packages = busybox_packages()
    packages[1].version = "1.35.0-r9"  # downgrade busybox
    packages[2].version = "2.0-r2"  # upgrade hello-app
    packages.append(Pkg("extra", "0.1-r0", files={"usr/share/extra": b"x"}))
    build_repo(world / "repo", packages, key, archs=("x86_64",))
    (world / "img.yaml").write_text(
        CONFIG.replace("[hello-app, busybox]", "[hello-app, busybox, extra]")
    )
    new = tmp_path / "new.tar"
    _build(world / "img.yaml", new)
    change = diff_images(load_image_packages(str(old)), load_image_packages(str(new)))["archs"][
        "x86_64"
    ]
    assert change["added"] == [{"name": "extra", "version": "0.1-r0"}]
    assert change["upgraded"] == [{"name": "hello-app", "old": "2.0-r1", "new": "2.0-r2"}]
    assert change["downgraded"] == [{"name": "busybox", "old": "1.36.1-r0", "new": "1.35.0-r9"}]
    (old_image,) = Layout(old).images()
    (new_image,) = Layout(new).images()
    assert change["old_size"] == sum(layer.size for layer in old_image.manifest.layers)
    assert change["new_size"] == sum(layer.size for layer in new_image.manifest.layers)
    assert change["size_change"] == change["new_size"] - change["old_size"]
    with pytest.raises(SystemExit) as done:
        main(["image", "diff", str(old), str(new), "--json"])
    assert done.value.code in (0, None)
    printed = json.loads(capsys.readouterr().out)
    assert printed["archs"]["x86_64"] == change


def test_cli_build_and_lock(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    lock = tmp_path / "img.lock.json"
    with pytest.raises(SystemExit) as done:
        main(["image", "lock", str(world / "img.yaml"), "--out", str(lock), "-q"])
    assert done.value.code in (0, None)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(
            [
                "image",
                "build",
                str(world / "img.yaml"),
                "--out",
                str(tmp_path / "o"),
                "--lockfile",
                str(lock),
                "--source-date-epoch",
                "0",
                "--json",
                "-q",
            ]
        )
    assert done.value.code in (0, None)
    summary = json.loads(capsys.readouterr().out)
    assert summary["digest"].startswith("sha256:")
    assert summary["images"][0]["packages"] == [
        "test-baselayout-1.0-r0",
        "busybox-1.36.1-r0",
        "hello-app-2.0-r1",
    ]


def test_cli_bad_config_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "contents:\n  packages: [a]\naccounts:\n  users:\n    - {username: x, uid: 0}\n"
    )
    with pytest.raises(SystemExit) as done:
        main(["image", "build", str(config), "--out", str(tmp_path / "o")])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert f"{config}:5" in err and "uid 0" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("packages", "explains"),
    [
        # which package needs what, and what exists instead
        ('[hello-app, "busybox>=2"]', ["busybox>=2", "busybox-1.36.1-r0", "does not satisfy"]),
        ('[hello-app, "!busybox"]', ["hello-app-2.0-r1[cmd:sh]", "conflicts", "!busybox"]),
    ],
)
def test_cli_build_unsatisfiable_explains_itself(
    workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    packages: str,
    explains: list[str],
) -> None:
    world = tmp_path / "w"
    shutil.copytree(workspace, world)
    config = world / "img.yaml"
    config.write_text(CONFIG.replace("[hello-app, busybox]", packages))
    with pytest.raises(SystemExit) as done:
        main(["image", "build", str(config), "--out", str(tmp_path / "o"), "-q"])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert all(part in err for part in explains), err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_checksum_error_type() -> None:
    assert issubclass(ChecksumError, NanodistroError)


def test_build_push_and_diff_against_registry_reference(workspace: Path, tmp_path: Path) -> None:
    import time
    import urllib.request

    require_tools("docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    server = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/") as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        out = tmp_path / "out"
        reference = f"127.0.0.1:{port}/nano/app:v1"
        with pytest.raises(SystemExit) as done:
            main(
                [
                    "image",
                    "build",
                    str(workspace / "img.yaml"),
                    "--out",
                    str(out),
                    "--source-date-epoch",
                    "0",
                    "--push",
                    reference,
                    "--insecure",
                    "-q",
                ]
            )
        assert done.value.code in (0, None)
        remote = load_image_packages(reference, insecure=True)
        local = load_image_packages(str(out))
        assert remote.archs["x86_64"].packages == local.archs["x86_64"].packages
        assert remote.archs["x86_64"].size == local.archs["x86_64"].size
    finally:
        server.terminate()
        server.wait(timeout=10)
