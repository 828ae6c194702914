"""Numbered immutable repository versions, channels and retention (repo/versions.py), judged by
bytes, inodes and the reference apk clients."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from apk_reference import ApkClient, apk_clients
from cli_runner import run_cli
from nanodistro.errors import RepositoryError
from nanodistro.formats.apk import write_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.image.lock import LockedPackage, LockFile
from nanodistro.repo import (
    channel_version,
    list_versions,
    locked_versions,
    prune,
    publish,
    read_version,
    set_channel,
    snapshot,
)
from nanodistro.repo import versions as versions_module
from signing_keys import make_key

ARCH = "x86_64"


@pytest.fixture
def key(tmp_path: Path) -> tuple[SigningKey, Path]:
    keys = tmp_path / "keys"
    keys.mkdir()
    signing, _ = make_key(keys, "versions")
    return signing, keys


def apk(directory: Path, key: SigningKey, name: str, version: str, arch: str = ARCH) -> Path:
    info = PackageInfo(name=name, version=version, arch=arch, description=f"{name} {version}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.apk"
    path.write_bytes(write_apk(info, [], key=key, source_date_epoch=1_700_000_000))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_snapshot_links_packages_freezes_index_and_is_idempotent(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    publish([apk(tmp_path / "in", signing, "hello", "1.0-r0")], repo, signing)
    assert snapshot(repo) == 1
    frozen_index = (repo / "versions/1" / ARCH / "APKINDEX.tar.gz").read_bytes()
    assert frozen_index == (repo / ARCH / "APKINDEX.tar.gz").read_bytes()

    publish([apk(tmp_path / "in", signing, "world", "2.0-r0")], repo, signing)
    assert snapshot(repo) == 2
    assert snapshot(repo) == 2  # nothing changed: no version 3
    assert list_versions(repo) == [1, 2]

    # version 1 is byte-for-byte what it was; version 2 holds the new index
    assert (repo / "versions/1" / ARCH / "APKINDEX.tar.gz").read_bytes() == frozen_index
    assert (
        (repo / "versions/2" / ARCH / "APKINDEX.tar.gz").read_bytes()
        == (repo / ARCH / "APKINDEX.tar.gz").read_bytes()
        != frozen_index
    )
    assert sorted(p.name for p in (repo / "versions/1" / ARCH).iterdir()) == [
        "APKINDEX.tar.gz",
        "hello-1.0-r0.apk",
    ]

    # packages are stored once: each version's file is the working repository's inode
    working = repo / ARCH / "hello-1.0-r0.apk"
    for n in (1, 2):
        linked = repo / f"versions/{n}" / ARCH / "hello-1.0-r0.apk"
        assert os.stat(linked).st_ino == os.stat(working).st_ino
    assert os.stat(working).st_nlink == 3

    record = read_version(repo, 2)
    assert record.parent == 1
    assert record.packages == {
        ARCH: {
            "hello-1.0-r0.apk": sha(working),
            "world-2.0-r0.apk": sha(repo / ARCH / "world-2.0-r0.apk"),
        }
    }
    on_disk = json.loads((repo / "versions/2/version.json").read_text())
    assert on_disk["version"] == 2 and on_disk["archs"][ARCH]["index_sha256"] == sha(
        repo / ARCH / "APKINDEX.tar.gz"
    )


def test_snapshot_failing_midway_leaves_no_partial_version(
    tmp_path: Path, key: tuple[SigningKey, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    inputs = tmp_path / "in"
    publish([apk(inputs, signing, "a", "1-r0"), apk(inputs, signing, "b", "1-r0")], repo, signing)
    real_link = versions_module._link
    calls: list[Path] = []

    def failing_link(source: Path, target: Path) -> None:
        if calls:
            raise OSError(28, "No space left on device")
        calls.append(target)
        real_link(source, target)

    monkeypatch.setattr(versions_module, "_link", failing_link)
    with pytest.raises(OSError):
        snapshot(repo)
    assert calls  # one package was already linked when it failed
    assert list_versions(repo) == []
    assert not (repo / "versions/1").exists()
    monkeypatch.setattr(versions_module, "_link", real_link)
    assert snapshot(repo) == 1
    assert len(read_version(repo, 1).packages[ARCH]) == 2


def test_snapshot_killed_midway_leaves_a_temp_dir_the_next_one_removes(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    inputs = tmp_path / "in"
    publish([apk(inputs, signing, "a", "1-r0"), apk(inputs, signing, "b", "1-r0")], repo, signing)
    # A real process, SIGKILLed right after its first hard link: no cleanup code runs.
    script = textwrap.dedent(
        f"""
        import os, signal
        from nanodistro.repo import versions
        real = versions._link
        def link_then_die(source, target):
            real(source, target)
            os.kill(os.getpid(), signal.SIGKILL)
        versions._link = link_then_die
        versions.snapshot({str(repo)!r})
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert killed.returncode == -9, killed.stderr
    leftovers = [p.name for p in (repo / "versions").iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-1-"), leftovers
    assert list_versions(repo) == []

    said: list[str] = []
    assert snapshot(repo, progress=said.append) == 1
    assert [p.name for p in (repo / "versions").iterdir()] == ["1"]
    assert any("crashed snapshot" in line for line in said)
    assert len(read_version(repo, 1).packages[ARCH]) == 2


def test_snapshot_of_an_empty_repository_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    with pytest.raises(RepositoryError, match="nothing to snapshot"):
        snapshot(tmp_path / "repo")


def test_snapshot_refuses_an_index_naming_a_missing_package(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    publish([apk(tmp_path / "in", signing, "a", "1-r0")], repo, signing)
    (repo / ARCH / "a-1-r0.apk").unlink()
    with pytest.raises(RepositoryError, match=r"a-1-r0\.apk but the repository has no such file"):
        snapshot(repo)
    assert list_versions(repo) == []
    assert [p.name for p in (repo / "versions").iterdir()] == []


def _install(client: ApkClient, repository: Path, keys: Path, root: Path, name: str) -> str:
    """Install ``name`` from ``repository`` into a fresh root; return the installed version."""
    client.run(
        "--root", str(root), "--initdb", "--keys-dir", str(keys),
        "--repositories-file", "/dev/null", "--repository", str(repository),
        "--no-network", "--no-cache", "--arch", ARCH, "add", name,
    )  # fmt: skip
    installed = (root / "lib/apk/db/installed").read_text()
    versions = [line[2:] for line in installed.splitlines() if line.startswith("V:")]
    assert len(versions) == 1, installed
    return versions[0]


@pytest.mark.parametrize("client_name", ["apk2", "apk3"])
def test_apk_clients_see_exactly_the_channel_version(
    tmp_path: Path, key: tuple[SigningKey, Path], client_name: str
) -> None:
    client = {c.name: c for c in apk_clients()}[client_name]
    signing, keys = key
    repo = tmp_path / "repo"
    publish([apk(tmp_path / "in", signing, "hello", "1.0-r0")], repo, signing)
    assert set_channel(repo, "stable", snapshot(repo)) is None
    publish([apk(tmp_path / "in", signing, "hello", "1.1-r0")], repo, signing)
    assert set_channel(repo, "staging", snapshot(repo)) is None
    assert (channel_version(repo, "stable"), channel_version(repo, "staging")) == (1, 2)
    assert os.readlink(repo / "stable") == "versions/1"

    assert _install(client, repo / "stable", keys, tmp_path / "r1", "hello") == "1.0-r0"
    assert _install(client, repo / "staging", keys, tmp_path / "r2", "hello") == "1.1-r0"
    # promote: stable moves to 2 (the previous target is returned for the event log)
    assert set_channel(repo, "stable", 2) == 1
    assert _install(client, repo / "stable", keys, tmp_path / "r3", "hello") == "1.1-r0"


def test_channel_errors_and_leftover_temp_links(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    publish([apk(tmp_path / "in", signing, "a", "1-r0")], repo, signing)
    snapshot(repo)
    with pytest.raises(RepositoryError, match="no repository version 7"):
        set_channel(repo, "stable", 7)
    with pytest.raises(RepositoryError, match="unknown channel 'x86_64'"):
        set_channel(repo, "x86_64", 1)
    (repo / "staging").mkdir()
    with pytest.raises(RepositoryError, match="in the channel's place"):
        set_channel(repo, "staging", 1)
    # a channel move killed between symlink and rename leaves a temp link; the next move removes it
    os.symlink("versions/1", repo / ".stable.deadbeef.tmp")
    set_channel(repo, "stable", 1)
    assert not (repo / ".stable.deadbeef.tmp").is_symlink()
    (repo / "stable").unlink()
    os.symlink("/etc", repo / "stable")
    with pytest.raises(RepositoryError, match="expected versions/<N>"):
        channel_version(repo, "stable")


def test_publish_after_snapshot_never_writes_into_versions_or_channels(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    """noarch packages go to every arch directory: channels and versions/ are not arches."""
    signing, _ = key
    repo = tmp_path / "repo"
    publish([apk(tmp_path / "in", signing, "a", "1-r0")], repo, signing)
    set_channel(repo, "stable", snapshot(repo))
    frozen = {p: p.read_bytes() for p in (repo / "versions").rglob("*") if p.is_file()}
    result = publish([apk(tmp_path / "in", signing, "doc", "1-r0", arch="noarch")], repo, signing)
    assert sorted(result.indexes) == [ARCH]
    assert {p: p.read_bytes() for p in (repo / "versions").rglob("*") if p.is_file()} == frozen
    assert not (repo / "versions" / "doc-1-r0.apk").exists()


def _versions(tmp_path: Path, signing: SigningKey, repo: Path, count: int) -> None:
    for i in range(1, count + 1):
        publish([apk(tmp_path / "in", signing, "p", f"{i}-r0")], repo, signing)
        assert snapshot(repo) == i


def test_prune_keeps_newest_channels_and_protected(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    _versions(tmp_path, signing, repo, 6)
    set_channel(repo, "stable", 1)
    set_channel(repo, "staging", 4)
    working = repo / ARCH / "p-1-r0.apk"
    links_before = os.stat(working).st_nlink  # working + versions 1..6
    assert links_before == 7
    working_tree = {p: sha(p) for p in (repo / ARCH).iterdir()}
    kept_tree = {p: sha(p) for n in (1, 2, 4, 6) for p in (repo / f"versions/{n}").rglob("*.*")}

    assert prune(repo, 1, {2}, dry_run=True) == [3, 5]
    assert list_versions(repo) == [1, 2, 3, 4, 5, 6]
    assert prune(repo, 1, {2}) == [3, 5]
    assert list_versions(repo) == [1, 2, 4, 6]
    assert os.stat(working).st_nlink == links_before - 2
    assert {p: sha(p) for p in (repo / ARCH).iterdir()} == working_tree
    assert {p: sha(p) for p in kept_tree} == kept_tree
    assert not [p for p in (repo / "versions").iterdir() if p.name.startswith(".")]
    with pytest.raises(RepositoryError, match="at least 1"):
        prune(repo, 0)
    # numbers are never reused: the newest is always kept
    assert prune(repo, 1) == [2]
    publish([apk(tmp_path / "in", signing, "p", "7-r0")], repo, signing)
    assert snapshot(repo) == 7


def _lock(path: Path, repository: str, packages: list[tuple[str, str]]) -> Path:
    lock = LockFile(
        config_name="img.yaml",
        repositories=[{"name": repository, "url": f"{repository}/{ARCH}/APKINDEX.tar.gz"}],
        packages=[
            LockedPackage(
                name=name,
                version=version,
                url=f"{repository}/{ARCH}/{name}-{version}.apk",
                architecture=ARCH,
                checksum="Q1AAAA=",
                repository=repository,
            )
            for name, version in packages
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lock.to_bytes())
    return path


def test_locked_versions_from_version_paths_channels_and_urls(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    workspace = tmp_path / "ws"
    repo = workspace / "out" / "packages"
    _versions(tmp_path, signing, repo, 5)
    set_channel(repo, "stable", 5)
    by_path = _lock(workspace / "images/a.lock.json", "../out/packages/versions/2", [])
    by_url = _lock(
        workspace / "images/b.lock.json", "https://pkgs.example.org/x/packages/versions/3", []
    )
    # locked against stable when stable was version 1 (p-1 only): version 1..5 all hold p-1,
    # so the newest that does is kept, plus stable's current target
    by_channel = _lock(workspace / "images/c.lock.json", "../out/packages/stable", [("p", "1-r0")])
    other = _lock(workspace / "images/d.lock.json", "/srv/elsewhere/versions/4", [])
    assert locked_versions(repo, [by_path]) == {2}
    assert locked_versions(repo, [by_url]) == {3}
    assert locked_versions(repo, [by_channel]) == {5}
    assert locked_versions(repo, [other]) == set()
    (workspace / "images/.hidden").mkdir()
    (workspace / "images/.hidden/x.lock.json").write_text("{}")
    assert versions_module.find_lock_files(workspace) == [by_path, by_url, by_channel, other]
    broken = workspace / "images/e.lock.json"
    broken.write_text("not json")
    with pytest.raises(RepositoryError, match="cannot tell which versions"):
        locked_versions(repo, [broken])


@pytest.mark.slow
def test_cli_snapshot_versions_channel_and_prune_with_workspace(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, keys = key
    workspace = tmp_path / "ws"
    repo = workspace / "out" / "packages"
    for i in (1, 2, 3, 4):
        publish([apk(tmp_path / "in", signing, "p", f"{i}-r0")], repo, signing)
        made = run_cli(tmp_path, "repo", "snapshot", repo, "--keyring", keys)
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == f"{repo}: version {i}"
    again = run_cli(tmp_path, "repo", "snapshot", repo, "--keyring", keys, "--json")
    assert json.loads(again.stdout)["version"] == 4

    unset = run_cli(tmp_path, "repo", "channel", repo, "stable")
    assert unset.returncode == 1 and unset.stdout.strip() == "stable: not set"
    moved = run_cli(tmp_path, "repo", "channel", repo, "stable", "3")
    assert moved.returncode == 0 and moved.stdout.strip() == "stable: set to 3"
    assert run_cli(tmp_path, "repo", "channel", repo, "stable").stdout.strip() == "stable: 3"
    bad = run_cli(tmp_path, "repo", "channel", repo, "stable", "9")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: {repo}: no repository version 9 (have: 1, 2, 3, 4)"
    ]

    listed = json.loads(run_cli(tmp_path, "repo", "versions", repo, "--json").stdout)
    assert listed["channels"] == {"stable": 3}
    assert [(v["version"], v["channels"]) for v in listed["versions"]] == [
        (1, []),
        (2, []),
        (3, ["stable"]),
        (4, []),
    ]
    text = run_cli(tmp_path, "repo", "versions", repo).stdout
    assert "<- stable" in text.splitlines()[2]

    lock = _lock(workspace / "images/app.lock.json", "../out/packages/versions/1", [])
    pruned = run_cli(
        tmp_path, "repo", "prune", repo, "--keep", "1", "--workspace", workspace, "--json"
    )
    assert pruned.returncode == 0, pruned.stderr
    report = json.loads(pruned.stdout)
    assert report["removed"] == [2]
    assert report["kept"] == [1, 3, 4]
    assert report["protected"] == {"1": [str(lock)]}
    refused = run_cli(tmp_path, "repo", "prune", repo, "--keep", "0")
    assert refused.returncode == 1 and "--keep must be at least 1" in refused.stderr


def test_prune_with_workspace_keeps_versions_the_state_images_refer_to(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    from nanodistro.factory.state import default_state_url, open_state
    from nanodistro.factory.state.models import ImageRow

    signing, _ = key
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "nanodistro.toml").write_text('[workspace]\nname = "ws"\n')
    repo = workspace / "out" / "packages"
    _versions(tmp_path, signing, repo, 3)
    with open_state(default_state_url(workspace)) as state, state.session() as session:
        session.add(
            ImageRow(name="base", digest="sha256:" + "a" * 64, tag="build-1", repo_version=1)
        )
        session.add(ImageRow(name="base", digest="sha256:" + "b" * 64, tag="build-2"))
        session.commit()
    pruned = run_cli(
        tmp_path, "repo", "prune", repo, "--keep", "1", "--workspace", workspace, "--json"
    )
    assert pruned.returncode == 0, pruned.stderr
    report = json.loads(pruned.stdout)
    assert (report["removed"], report["kept"]) == ([2], [1, 3])
    assert report["protected"] == {"1": ["image base:build-1"]}
