"""The signed local repository: publish, immutability, determinism, concurrency, crash safety,
and what apk-tools requires of the files we serve (formats.md §1.8, §2)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nanodistro.errors import FormatError, RepositoryError, SignatureError
from nanodistro.formats.apk import read_apk, write_apk
from nanodistro.formats.apkindex import package_identity, read_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.formats.tarball import TarEntry, gzip_members, read_tar
from nanodistro.repo import INDEX_FILE, load_index, publish, reindex
from nanodistro.trust.keys import generate_key, load_signing_key

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key("repo-test", tmp_path_factory.mktemp("keys"), bits=2048)


@pytest.fixture(scope="session")
def key(key_files: tuple[Path, Path]) -> SigningKey:
    return load_signing_key(key_files[0])


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    private, _ = generate_key("other", tmp_path_factory.mktemp("other"), bits=2048)
    return load_signing_key(private)


def keyring_of(*keys: SigningKey) -> dict[str, bytes]:
    return {k.keyname: k.public_pem() for k in keys}


def make_apk(
    directory: Path,
    key: SigningKey | None,
    name: str,
    version: str = "1.0-r0",
    arch: str = "x86_64",
    content: bytes = b"hello\n",
    depends: list[str] | None = None,
) -> Path:
    info = PackageInfo(
        name=name,
        version=version,
        arch=arch,
        description=f"{name} test package",
        license="MIT",
        url="https://example.org",
        depends=list(depends or []),
    )
    entries = [
        TarEntry("usr", "dir", mode=0o755, mtime=1700000000),
        TarEntry("usr/share", "dir", mode=0o755, mtime=1700000000),
        TarEntry(f"usr/share/{name}", "file", mode=0o644, mtime=1700000000, data=content),
    ]
    data = write_apk(info, entries, key=key, source_date_epoch=1700000000)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.{arch}.apk"
    path.write_bytes(data)
    return path


def test_publish_then_verify_index_like_apk_tools(tmp_path, key):
    files = [
        make_apk(tmp_path / "in", key, "alpha", depends=["so:libc.so.6"]),
        make_apk(tmp_path / "in", key, "beta", arch="aarch64"),
    ]
    repo = tmp_path / "repo"
    result = publish(files, repo, key, allow_missing=True)  # nothing here provides libc
    assert sorted(result.indexes) == ["aarch64", "x86_64"]
    assert {p.status for p in result.packages} == {"added"}
    for arch, name in (("x86_64", "alpha"), ("aarch64", "beta")):
        index_bytes = (repo / arch / INDEX_FILE).read_bytes()
        # signature member names the public key file and verifies over the index member
        members = gzip_members(index_bytes, where="index")
        assert [e.path for e in read_tar(members[0].inflated, where="sig")] == [
            f".SIGN.RSA256.{key.keyname}"
        ]
        index = read_index(index_bytes, where="index", keyring=keyring_of(key))
        assert index.verified_by == key.keyname
        [info] = index.packages
        apk = repo / arch / f"{name}-1.0-r0.apk"
        data = apk.read_bytes()
        # C: = Q1 + sha1(control member); S: = file size (what apk checks on download)
        control = gzip_members(data, where="apk")[1].raw
        assert info.checksum == package_identity(control)
        assert info.file_size == len(data)
        assert info.arch == arch and info.name == name
        assert data == next(f for f in files if f.name.startswith(name)).read_bytes()
    alpha = load_index(repo / "x86_64", keyring_of(key)).packages[0]  # type: ignore[union-attr]
    assert alpha.depends == ["so:libc.so.6"]
    assert alpha.datahash is None and alpha.extra == []  # index letters only


def test_republishing_identical_bytes_is_a_no_op(tmp_path, key):
    apk = make_apk(tmp_path / "in", key, "alpha")
    repo = tmp_path / "repo"
    publish([apk], repo, key)
    index_path = repo / "x86_64" / INDEX_FILE
    before = index_path.read_bytes()
    mtime = index_path.stat().st_mtime_ns
    result = publish([apk], repo, key)
    assert [p.status for p in result.packages] == ["unchanged"]
    assert index_path.read_bytes() == before
    assert index_path.stat().st_mtime_ns == mtime


def test_different_bytes_under_a_published_name_are_refused(tmp_path, key):
    repo = tmp_path / "repo"
    first = make_apk(tmp_path / "a", key, "alpha", content=b"one\n")
    publish([first], repo, key)
    snapshot = {p: p.read_bytes() for p in (repo / "x86_64").iterdir()}
    second = make_apk(tmp_path / "b", key, "alpha", content=b"two\n")
    extra = make_apk(tmp_path / "b", key, "gamma")
    with pytest.raises(RepositoryError, match="immutable") as info:
        publish([extra, second], repo, key)
    message = str(info.value)
    assert hashlib.sha256(first.read_bytes()).hexdigest() in message
    assert hashlib.sha256(second.read_bytes()).hexdigest() in message
    # nothing of the refused publish landed, not even the unrelated package
    assert {p: p.read_bytes() for p in (repo / "x86_64").iterdir()} == snapshot


def test_index_bytes_are_deterministic(tmp_path, key):
    files = [make_apk(tmp_path / "in", key, n) for n in ("zeta", "alpha", "mid")]
    publish(files, tmp_path / "one", key)
    for f in reversed(files):
        publish([f], tmp_path / "two", key)
    one = (tmp_path / "one/x86_64" / INDEX_FILE).read_bytes()
    two = (tmp_path / "two/x86_64" / INDEX_FILE).read_bytes()
    assert one == two
    assert reindex(tmp_path / "two/x86_64", key).verified_by == key.keyname
    assert (tmp_path / "two/x86_64" / INDEX_FILE).read_bytes() == one


def test_new_version_is_merged_and_old_kept(tmp_path, key):
    repo = tmp_path / "repo"
    publish([make_apk(tmp_path / "in", key, "alpha", "1.0-r0")], repo, key, description="v1")
    publish([make_apk(tmp_path / "in", key, "alpha", "1.10-r0")], repo, key)
    publish([make_apk(tmp_path / "in", key, "alpha", "1.9-r0")], repo, key)
    index = load_index(repo / "x86_64", keyring_of(key))
    assert index is not None
    assert [p.version for p in index.packages] == ["1.0-r0", "1.9-r0", "1.10-r0"]
    assert index.description == "v1"  # kept across publishes


def test_noarch_goes_to_every_arch_present(tmp_path, key):
    repo = tmp_path / "repo"
    publish(
        [
            make_apk(tmp_path / "in", key, "a", arch="x86_64"),
            make_apk(tmp_path / "in", key, "b", arch="aarch64"),
        ],
        repo,
        key,
    )
    result = publish([make_apk(tmp_path / "in", key, "docs", arch="noarch")], repo, key)
    assert sorted(p.arch for p in result.packages) == ["aarch64", "x86_64"]
    for arch in ("aarch64", "x86_64"):
        index = load_index(repo / arch, keyring_of(key))
        assert index is not None
        assert "docs" in {p.name for p in index.packages}
        assert (repo / arch / "docs-1.0-r0.apk").is_file()
    empty = tmp_path / "empty"
    result = publish([make_apk(tmp_path / "in2", key, "docs", arch="noarch")], empty, key)
    assert sorted(p.arch for p in result.packages) == ["aarch64", "x86_64"]


def test_package_signatures_checked_when_keyring_given(tmp_path, key, other_key):
    repo = tmp_path / "repo"
    unsigned = make_apk(tmp_path / "in", None, "plain")
    foreign = make_apk(tmp_path / "in", other_key, "foreign")
    with pytest.raises(SignatureError, match=r"plain-1\.0-r0\.x86_64\.apk: not signed"):
        publish([unsigned], repo, key, keyring_of(key))
    with pytest.raises(SignatureError, match=r"foreign-1\.0-r0\.x86_64\.apk: .*UNTRUSTED"):
        publish([foreign], repo, key, keyring_of(key))
    assert not (repo / "x86_64").exists()
    publish([foreign], repo, key, keyring_of(key, other_key))


def test_existing_index_by_untrusted_key_is_not_merged(tmp_path, key, other_key):
    repo = tmp_path / "repo"
    publish([make_apk(tmp_path / "in", other_key, "alpha")], repo, other_key)
    with pytest.raises(RepositoryError, match="nanodistro index"):
        publish([make_apk(tmp_path / "in", key, "beta")], repo, key)
    # reindex with the new key takes over, from the files present (alpha's signer trusted)
    index = reindex(repo / "x86_64", key, keyring=keyring_of(other_key))
    assert [p.name for p in index.packages] == ["alpha"]
    publish([make_apk(tmp_path / "in", key, "beta")], repo, key)


def test_unreadable_package_is_rejected_before_anything_is_written(tmp_path, key):
    good = make_apk(tmp_path / "in", key, "alpha")
    bad = tmp_path / "in" / "bad.apk"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(FormatError) as info:
        publish([good, bad], tmp_path / "repo", key)
    assert info.value.where == str(bad)
    assert not (tmp_path / "repo" / "x86_64").exists()


def test_crash_while_writing_index_leaves_previous_repository(tmp_path, key, monkeypatch):
    repo = tmp_path / "repo"
    publish([make_apk(tmp_path / "in", key, "alpha")], repo, key)
    index_path = repo / "x86_64" / INDEX_FILE
    before = index_path.read_bytes()

    import nanodistro.repo.repository as engine

    def crash_on_index(point: str) -> None:
        # the index writer's crash point: its temporary file is written, not yet renamed
        if point == "during-index-write":
            (index_path.parent / f".{INDEX_FILE}.crash.tmp").write_bytes(before[:100])
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(engine, "crash_point", crash_on_index)
    with pytest.raises(KeyboardInterrupt):
        publish([make_apk(tmp_path / "in", key, "beta")], repo, key)
    monkeypatch.undo()
    assert index_path.read_bytes() == before
    index = read_index(before, where="index", keyring=keyring_of(key))
    assert [p.name for p in index.packages] == ["alpha"]
    for info in index.packages:  # everything the index names is there and matches
        data = (repo / "x86_64" / info.filename).read_bytes()
        assert len(data) == info.file_size
    # the next publish completes the job; the leftover temp file is ignored
    publish([make_apk(tmp_path / "in", key, "beta")], repo, key)
    index = load_index(repo / "x86_64", keyring_of(key))
    assert index is not None and [p.name for p in index.packages] == ["alpha", "beta"]


def test_reindex_checks_names_and_arch(tmp_path, key):
    repo = tmp_path / "repo"
    publish([make_apk(tmp_path / "in", key, "alpha")], repo, key)
    arch_dir = repo / "x86_64"
    wrong_name = make_apk(tmp_path / "in", key, "beta")
    (arch_dir / "renamed-1.0-r0.apk").write_bytes(wrong_name.read_bytes())
    with pytest.raises(RepositoryError, match=r"expected beta-1\.0-r0\.apk"):
        reindex(arch_dir, key)
    (arch_dir / "renamed-1.0-r0.apk").unlink()
    other_arch = make_apk(tmp_path / "in", key, "gamma", arch="aarch64")
    (arch_dir / "gamma-1.0-r0.apk").write_bytes(other_arch.read_bytes())
    with pytest.raises(RepositoryError, match="aarch64"):
        reindex(arch_dir, key)
    (arch_dir / "gamma-1.0-r0.apk").unlink()
    index = reindex(arch_dir, key, "described")
    assert index.description == "described" and len(index.packages) == 1


CONCURRENT_PUBLISHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from nanodistro.repo import publish
    from nanodistro.trust.keys import load_signing_key

    key = load_signing_key(Path(sys.argv[1]))
    repo = Path(sys.argv[2])
    for name in sys.argv[3:]:
        publish([Path(name)], repo, key)
    """
)


def test_concurrent_publishers_both_land(tmp_path, key, key_files):
    first = [make_apk(tmp_path / "p1", key, f"one-{i}") for i in range(8)]
    second = [make_apk(tmp_path / "p2", key, f"two-{i}") for i in range(8)]
    repo = tmp_path / "repo"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_PUBLISHER, str(key_files[0]), str(repo)]
            + [str(p) for p in batch],
            env=env,
        )
        for batch in (first, second)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    index = load_index(repo / "x86_64", keyring_of(key))
    assert index is not None
    assert len(index.packages) == 16
    for info in index.packages:
        assert (
            read_apk((repo / "x86_64" / info.filename).read_bytes(), where="x").info.checksum
            == info.checksum
        )
