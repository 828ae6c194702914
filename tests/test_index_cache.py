"""The parsed-index cache (``resolve.index_cache``): same results, never trusted over a signature.

Attacks performed: a tampered index served while a cache entry exists (for the old bytes and
even for the tampered bytes), a forged entry planted by another user or in a folder others can
write, an entry replaced by a symlink; damage: truncated and bit-flipped entries.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_runner import run_cli
from nanodistro.errors import RepositoryError, SignatureError
from nanodistro.formats.apkindex import read_index, write_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import split_signature
from nanodistro.resolve import (
    RepositoryClient,
    RepositoryRef,
    Universe,
    index_cache,
    parse_repository,
    solve,
)
from nanodistro.resolve.index_cache import IndexCache, default_cache_dir, index_digest
from signing_keys import make_key
from test_resolve import ALPINE_WORLD

ARCH = "x86_64"
ALPINE_INDEX = "chainguard-dev+apko/pkg/apk/apk/testdata/alpine-316/APKINDEX.tar.gz"
ALPINE_KEYS = "alpinelinux+alpine-chroot-install/alpine-keys"


def _packages(version: str = "1.0-r0") -> list[PackageInfo]:
    return [
        PackageInfo(name="app", version=version, arch=ARCH, checksum="Q1" + "A" * 27 + "=",
                    depends=["lib"], file_size=10),
        PackageInfo(name="lib", version="2.0-r0", arch=ARCH, checksum="Q1" + "B" * 27 + "=",
                    provides=["so:libx.so.1=1"], file_size=10),
    ]  # fmt: skip


@pytest.fixture
def signed_repo(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    key, keyring = make_key(tmp_path / "keys")
    repo = tmp_path / "repo"
    (repo / ARCH).mkdir(parents=True)
    (repo / ARCH / "APKINDEX.tar.gz").write_bytes(write_index(_packages(), key=key))
    return repo, keyring


def _fetch(repo: Path, keyring: dict[str, bytes], cache: IndexCache) -> list[PackageInfo]:
    with RepositoryClient(keyring, index_cache=cache) as client:
        return client.fetch_index(parse_repository(str(repo)), ARCH).packages


def _entry(cache: IndexCache, repo: Path) -> Path:
    return cache.directory / (index_digest((repo / ARCH / "APKINDEX.tar.gz").read_bytes()) + ".idx")


def test_cached_and_uncached_resolve_print_the_same(
    tmp_path: Path, third_party: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "alpine"
    (repo / ARCH).mkdir(parents=True)
    data = (third_party / ALPINE_INDEX).read_bytes()
    (repo / ARCH / "APKINDEX.tar.gz").write_bytes(data)
    args = ["resolve", "--repo", repo, "--keyring", third_party / ALPINE_KEYS, "--arch", ARCH]
    cache = tmp_path / "cache"
    monkeypatch.setenv("NANODISTRO_INDEX_CACHE", "off")
    uncached = run_cli(tmp_path, *args, *ALPINE_WORLD)
    assert uncached.returncode == 0, uncached.stderr
    assert uncached.stdout.count(" Installing ") == 86
    assert not cache.exists()
    monkeypatch.setenv("NANODISTRO_INDEX_CACHE", str(cache))
    cold = run_cli(tmp_path, *args, *ALPINE_WORLD)
    entry = cache / (index_digest(data) + ".idx")
    written = entry.stat()
    warm = run_cli(tmp_path, *args, *ALPINE_WORLD)
    assert cold.stdout == uncached.stdout
    assert warm.stdout == uncached.stdout
    assert entry.stat().st_mtime_ns == written.st_mtime_ns  # the warm run read it, wrote nothing
    assert cache.stat().st_mode & 0o777 == 0o700
    assert entry.stat().st_mode & 0o777 == 0o600


def test_entry_holds_exactly_what_the_parser_gives(tmp_path: Path, third_party: Path) -> None:
    data = (third_party / ALPINE_INDEX).read_bytes()
    parsed = read_index(data, where="APKINDEX.tar.gz")
    cache = IndexCache(tmp_path / "cache")
    cache.store(index_digest(data), parsed)
    entry = cache.load(index_digest(data))
    assert entry is not None
    loaded = entry.index()
    assert loaded.packages == parsed.packages
    assert (loaded.description, loaded.timestamp) == (parsed.description, parsed.timestamp)
    assert loaded.signatures == parsed.signatures
    # Every record owns its lists (equal strings are shared in the entry, lists are not).
    first, second = loaded.packages[0], loaded.packages[1]
    first.depends.append("changed")
    assert "changed" not in second.depends
    assert "changed" not in entry.package(0).depends  # every call builds a new record
    assert cache.load("0" * 64) is None


def _facts(u: Universe) -> object:
    return (
        [(c.name, c.version, c.broken, c.repos, c._install_if) for c in u.candidates],
        {n: [(c.name, c.version, v) for c, v in p] for n, p in u.providers.items()},
        {n: [c.name for c in cs] for n, cs in u.rinstall_if.items()},
        u.real_names,
    )


def test_entry_keeps_what_makes_a_package_uninstallable(tmp_path: Path) -> None:
    """Broken install_if atoms, unknown upper-case fields, another arch: same as parsed."""
    packages = [
        PackageInfo(name="a", version="1-r0", arch=ARCH, install_if=["b=1-r0", "c@tag"]),
        PackageInfo(name="d", version="1-r0", arch=ARCH, install_if=["e=not!a!version"]),
        PackageInfo(name="f", version="1-r0", arch=ARCH, install_if=["a", "b>=1"]),
        PackageInfo(name="g", version="1-r0", arch=ARCH, extra=[("Z", "unknown")]),
        PackageInfo(name="h", version="1-r0", arch="aarch64", provides=["so:x=1", "cmd:h"]),
    ]
    data = write_index(packages)
    parsed = read_index(data, where="index")
    cache = IndexCache(tmp_path / "cache")
    cache.store(index_digest(data), parsed)
    entry = cache.load(index_digest(data))
    assert entry is not None
    eager = Universe(repositories=[], arch=ARCH)
    eager.add_repository(RepositoryRef("r"), parsed.packages)
    lazy = Universe(repositories=[], arch=ARCH)
    lazy.add_summaries(RepositoryRef("r"), entry.summaries, entry.package)
    assert _facts(lazy) == _facts(eager)
    assert [c.broken for c in lazy.candidates] == [
        "tagged install_if 'c@tag'",
        "invalid install_if 'e=not!a!version'",
        None,
        "unknown index field",
        "arch aarch64",
    ]


def test_universe_from_an_entry_equals_the_parsed_one(tmp_path: Path, third_party: Path) -> None:
    """Packages known by their summaries (records built on use) make the same universe."""
    data = (third_party / ALPINE_INDEX).read_bytes()
    parsed = read_index(data, where="APKINDEX.tar.gz")
    cache = IndexCache(tmp_path / "cache")
    cache.store(index_digest(data), parsed)
    entry = cache.load(index_digest(data))
    assert entry is not None
    repo = RepositoryRef("alpine")
    eager = Universe(repositories=[], arch=ARCH)
    eager.add_repository(repo, parsed.packages)
    lazy = Universe(repositories=[], arch=ARCH)
    lazy.add_summaries(repo, entry.summaries, entry.package)

    assert _facts(lazy) == _facts(eager)
    assert all(c._info is None for c in lazy.candidates)  # nothing built yet
    assert [c.info for c in lazy.candidates] == parsed.packages
    assert solve(lazy, ALPINE_WORLD).simulate_lines() == solve(eager, ALPINE_WORLD).simulate_lines()


def test_fetch_index_through_the_cache_names_the_verifying_key(
    signed_repo: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    repo, keyring = signed_repo
    cache = IndexCache(tmp_path / "cache")
    for _ in range(2):  # parsed (and stored), then from the entry
        with RepositoryClient(keyring, index_cache=cache) as client:
            index = client.fetch_index(parse_repository(str(repo)), ARCH)
        assert index.verified_by == next(iter(keyring))
        assert [p.name for p in index.packages] == ["app", "lib"]
    assert _entry(cache, repo).is_file()


def test_tampered_index_is_rejected_whatever_the_cache_holds(
    signed_repo: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    repo, keyring = signed_repo
    cache = IndexCache(tmp_path / "cache")
    assert [p.name for p in _fetch(repo, keyring, cache)] == ["app", "lib"]
    assert _entry(cache, repo).is_file()
    # The attacker keeps the valid signature member and swaps the index member for one that
    # pins an old app, and even plants a matching entry for the tampered bytes' digest.
    index_path = repo / ARCH / "APKINDEX.tar.gz"
    original = index_path.read_bytes()
    _, signed_from = split_signature(original, where="index")
    tampered = original[:signed_from] + write_index(_packages("0.1-r0"))
    index_path.write_bytes(tampered)
    cache.store(index_digest(tampered), read_index(tampered, where="tampered"))
    with pytest.raises(SignatureError, match="BAD signature"):
        _fetch(repo, keyring, cache)


def _plant_forged_entry(cache: IndexCache, repo: Path) -> Path:
    """An entry for the genuine index's digest whose content says app is 6.6.6."""
    data = (repo / ARCH / "APKINDEX.tar.gz").read_bytes()
    forged = read_index(data, where="index")
    forged.packages[0].version = "6.6.6-r0"
    cache.store(index_digest(data), forged)
    return _entry(cache, repo)


@pytest.mark.parametrize("how", ["other owner", "group-writable file", "open folder", "symlink"])
def test_entry_others_could_have_written_is_not_trusted(
    signed_repo: tuple[Path, dict[str, bytes]], tmp_path: Path, how: str
) -> None:
    repo, keyring = signed_repo
    cache = IndexCache(tmp_path / "cache")
    entry = _plant_forged_entry(cache, repo)
    assert cache.load(entry.name.removesuffix(".idx")) is not None  # a well-formed entry
    if how == "other owner":
        os.chown(entry, 65534, 65534)
    elif how == "group-writable file":
        entry.chmod(0o664)
    elif how == "open folder":
        cache.directory.chmod(0o777)
    else:
        elsewhere = tmp_path / "elsewhere.idx"
        entry.rename(elsewhere)
        entry.symlink_to(elsewhere)
    versions = [p.version for p in _fetch(repo, keyring, cache)]
    assert versions == ["1.0-r0", "2.0-r0"]  # parsed from the signed index, not the entry
    if how != "open folder":  # a private folder's bad entry is replaced by a good one
        assert not entry.is_symlink()
        assert entry.stat().st_uid == os.geteuid()
        assert [p.version for p in _fetch(repo, keyring, cache)] == ["1.0-r0", "2.0-r0"]


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "empty", "not an entry"])
def test_damaged_entry_is_ignored_and_rebuilt(
    signed_repo: tuple[Path, dict[str, bytes]], tmp_path: Path, damage: str
) -> None:
    repo, keyring = signed_repo
    cache = IndexCache(tmp_path / "cache")
    expected = _fetch(repo, keyring, cache)
    entry = _entry(cache, repo)
    good = entry.read_bytes()
    blob = {
        "truncated": good[: len(good) // 2],
        "flipped byte": good[:-10] + bytes([good[-10] ^ 0x01]) + good[-9:],
        "empty": b"",
        "not an entry": b"\x00" * 200,
    }[damage]
    entry.write_bytes(blob)
    assert cache.load(entry.name.removesuffix(".idx")) is None
    assert _fetch(repo, keyring, cache) == expected
    assert entry.read_bytes() == good  # rewritten


def test_oldest_entries_beyond_the_limit_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_cache, "MAX_ENTRIES", 3)
    cache = IndexCache(tmp_path / "cache")
    index = read_index(write_index(_packages()), where="index")
    for number in range(5):
        cache.store(f"{number:064x}", index)
        os.utime(cache.directory / f"{number:064x}.idx", ns=(number * 10**9, number * 10**9))
    kept = sorted(p.name for p in cache.directory.iterdir())
    assert kept == [f"{number:064x}.idx" for number in (2, 3, 4)]


def test_cache_location_and_switch(tmp_path: Path) -> None:
    assert default_cache_dir({"NANODISTRO_INDEX_CACHE": "off"}) is None
    assert default_cache_dir({"NANODISTRO_INDEX_CACHE": "0"}) is None
    assert default_cache_dir({"NANODISTRO_INDEX_CACHE": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/nanodistro/index")
    assert default_cache_dir({}) == Path.home() / ".cache" / "nanodistro" / "index"
    assert IndexCache.from_environment({"NANODISTRO_INDEX_CACHE": "off"}) is None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served on 127.0.0.1, and its URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_replayed_index_is_refused_from_a_cache_entry(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    """A mirror serving an older signed index is refused though the cache knows that index."""
    key, keyring = make_key(tmp_path / "keys")
    root, url = served
    (root / ARCH).mkdir()
    old = write_index(_packages("1.0-r0"), key=key, source_date_epoch=1000)
    new = write_index(_packages("1.1-r0"), key=key, source_date_epoch=2000)
    cache = IndexCache(tmp_path / "cache")
    state = tmp_path / "state.json"
    ref = parse_repository(url)

    def newest_app(**options: bool) -> str:
        with RepositoryClient(keyring, index_cache=cache, index_state=state, **options) as client:
            return solve(client.load_universe([ref], ARCH), ["app"]).packages[-1].version

    for data, version in ((old, "1.0-r0"), (new, "1.1-r0")):  # both end up in the cache
        (root / ARCH / "APKINDEX.tar.gz").write_bytes(data)
        assert newest_app() == version
    (root / ARCH / "APKINDEX.tar.gz").write_bytes(old)  # replayed
    assert cache.load(index_digest(old)) is not None
    with pytest.raises(RepositoryError, match="refusing an older index"):
        newest_app()
    assert newest_app(allow_downgrade=True) == "1.0-r0"
