"""Repositories on disk and over http (127.0.0.1): signed indexes, verified packages, the CLI."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nanodistro.cli import app
from nanodistro.errors import ChecksumError, ConfigError, FetchError, SignatureError
from nanodistro.formats.apk import read_apk, write_apk
from nanodistro.formats.apkindex import write_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.formats.tarball import TarEntry
from nanodistro.resolve import (
    RepositoryClient,
    RepositoryRef,
    parse_repository,
    parse_repository_list,
    solve,
)
from nanodistro.trust.keys import load_keyring

ARCH = "x86_64"


def make_key(name: str) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return SigningKey(pem, f"{name}.rsa.pub")


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return make_key("test-5f3a9c01")


def build_package(name: str, version: str, depends: list[str], key: SigningKey) -> bytes:
    info = PackageInfo(name=name, version=version, arch=ARCH, depends=depends, license="MIT")
    entries = [TarEntry(f"usr/share/{name}/README", data=f"{name} {version}\n".encode())]
    return write_apk(info, entries, key=key, source_date_epoch=1700000000)


def build_repo(root: Path, key: SigningKey, packages: list[tuple[str, str, list[str]]]) -> Path:
    arch_dir = root / ARCH
    arch_dir.mkdir(parents=True)
    infos = []
    for name, version, depends in packages:
        data = build_package(name, version, depends, key)
        info = read_apk(data, where=name).info
        (arch_dir / info.filename).write_bytes(data)
        infos.append(info)
    (arch_dir / "APKINDEX.tar.gz").write_bytes(write_index(infos, description="test", key=key))
    return root


@pytest.fixture(scope="module")
def keyring_dir(tmp_path_factory: pytest.TempPathFactory, signing_key: SigningKey) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    (directory / signing_key.keyname).write_bytes(signing_key.public_pem())
    return directory


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory, signing_key: SigningKey) -> Path:
    return build_repo(
        tmp_path_factory.mktemp("repo") / "main",
        signing_key,
        [
            ("libfoo", "1.0-r0", []),
            ("foo", "1.0-r0", ["libfoo"]),
            ("foo", "2.0-r0", ["libfoo>=1.0"]),
            ("bar", "0.1-r0", ["foo<2"]),
        ],
    )


@pytest.fixture(scope="module")
def http_root(repo_dir: Path) -> Iterator[str]:
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(repo_dir.parent)
    )
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_parse_repository_specs(tmp_path: Path) -> None:
    assert parse_repository("https://dl-cdn.alpinelinux.org/alpine/v3.19/main/") == RepositoryRef(
        "https://dl-cdn.alpinelinux.org/alpine/v3.19/main"
    )
    assert parse_repository("@edge https://x/edge") == RepositoryRef("https://x/edge", "edge")
    listed = parse_repository_list("# comment\n/srv/repo\n\n@testing http://127.0.0.1/t # x\n")
    assert listed == [RepositoryRef("/srv/repo"), RepositoryRef("http://127.0.0.1/t", "testing")]
    with pytest.raises(ConfigError, match=r"invalid repository '@ https://x' \(expected URL"):
        parse_repository("@ https://x")
    with pytest.raises(ConfigError, match="repositories"):
        parse_repository_list("a b c\n")


def test_local_repository_resolve_and_fetch(repo_dir: Path, keyring_dir: Path) -> None:
    keyring = load_keyring(keyring_dir)
    repo = RepositoryRef(str(repo_dir))
    with RepositoryClient(keyring) as client:
        universe = client.load_universe([repo], ARCH)
        resolution = solve(universe, ["bar"])
        assert [(p.name, p.version) for p in resolution.packages] == [
            ("libfoo", "1.0-r0"),
            ("foo", "1.0-r0"),
            ("bar", "0.1-r0"),
        ]
        for p in resolution.packages:
            data = client.fetch_package(p.repository, ARCH, p.candidate.info)
            assert read_apk(data, where=p.name).identity == p.checksum


def test_http_repository(http_root: str, keyring_dir: Path, tmp_path: Path) -> None:
    keyring = load_keyring(keyring_dir)
    repo = parse_repository(f"{http_root}/main")
    with RepositoryClient(keyring) as client:
        universe = client.load_universe([repo], ARCH)
        resolution = solve(universe, ["foo"])
        assert [(p.name, p.version) for p in resolution.packages] == [
            ("libfoo", "1.0-r0"),
            ("foo", "2.0-r0"),
        ]
        cached = client.fetch_to_cache(repo, ARCH, resolution.packages[-1].candidate.info, tmp_path)
        assert cached == tmp_path / ARCH / "foo-2.0-r0.apk"
        assert (
            read_apk(cached.read_bytes(), where="cache").identity
            == resolution.packages[-1].checksum
        )
        with pytest.raises(FetchError, match="HTTP 404"):
            client.fetch_index(parse_repository(f"{http_root}/missing"), ARCH)


def test_plain_http_refused_for_remote_hosts(keyring_dir: Path) -> None:
    with (
        RepositoryClient(load_keyring(keyring_dir)) as client,
        pytest.raises(FetchError, match="plain http"),
    ):
        client.fetch_index(RepositoryRef("http://example.invalid/repo"), ARCH)


def test_untrusted_index_is_rejected(repo_dir: Path, tmp_path: Path) -> None:
    other = make_key("other-00000000")
    (tmp_path / other.keyname).write_bytes(other.public_pem())
    with (
        RepositoryClient(load_keyring(tmp_path)) as client,
        pytest.raises(SignatureError, match="UNTRUSTED"),
    ):
        client.fetch_index(RepositoryRef(str(repo_dir)), ARCH)


def test_tampered_package_is_rejected(
    repo_dir: Path, keyring_dir: Path, tmp_path: Path, signing_key: SigningKey
) -> None:
    # A repository whose index promises one foo but serves another (same name and version).
    fake = build_repo(tmp_path / "fake", signing_key, [("foo", "1.0-r0", [])])
    with RepositoryClient(load_keyring(keyring_dir)) as client:
        genuine = client.fetch_index(RepositoryRef(str(repo_dir)), ARCH)
        info = next(p for p in genuine.packages if p.name == "foo" and p.version == "1.0-r0")
        with pytest.raises(
            ChecksumError, match=r"foo-1\.0-r0\.apk: size .* differs from the index"
        ):
            client.fetch_package(RepositoryRef(str(fake)), ARCH, info)
        # a record whose size fits the substitute: only the C: identity can tell them apart
        served = fake / ARCH / "foo-1.0-r0.apk"
        same_size = dataclasses.replace(info, file_size=served.stat().st_size)
        expected = rf"identity \S+ differs from the index \({re.escape(str(info.checksum))}\)$"
        with pytest.raises(ChecksumError, match=expected) as error:
            client.fetch_package(RepositoryRef(str(fake)), ARCH, same_size)
        assert error.value.where == str(served)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from nanodistro.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_resolve_text_and_json(
    http_root: str, keyring_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert app is not None
    base = ["resolve", "--repo", f"{http_root}/main", "--keyring", str(keyring_dir), "--arch", ARCH]
    code, out, _ = run_cli([*base, "bar"], capsys)
    assert code == 0
    assert out.splitlines() == [
        "(1/3) Installing libfoo (1.0-r0)",
        "(2/3) Installing foo (1.0-r0)",
        "(3/3) Installing bar (0.1-r0)",
    ]
    code, out, _ = run_cli([*base, "--json", "foo"], capsys)
    assert code == 0
    data = json.loads(out)
    assert [(d["name"], d["version"]) for d in data] == [("libfoo", "1.0-r0"), ("foo", "2.0-r0")]
    assert all(d["checksum"].startswith("Q1") and d["repository"].endswith("/main") for d in data)


def test_cli_resolve_error_is_one_line(
    repo_dir: Path, keyring_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["resolve", "--repo", str(repo_dir), "--keyring", str(keyring_dir), "--arch", ARCH]
    code, out, err = run_cli([*base, "bar", "foo>=2"], capsys)
    assert code != 0
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "foo" in lines[0] and "bar-0.1-r0[foo<2]" in lines[0]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_matches_apko_lock_file(third_party: Path, arch: str) -> None:
    """apko resolved apko.yaml (``replayout``) into apko.lock.json; we must agree exactly."""
    testdata = third_party / "chainguard-dev+apko/internal/cli/testdata"
    lock = json.loads((testdata / "apko.lock.json").read_text())
    want = [
        (p["name"], p["version"], p["checksum"])
        for p in lock["contents"]["packages"]
        if p["architecture"] == arch
    ]
    repo = RepositoryRef(str(testdata / "packages"))
    with RepositoryClient(load_keyring(testdata / "melange.rsa.pub")) as client:
        universe = client.load_universe([repo], arch)
        resolution = solve(universe, ["replayout"])
        assert [(p.name, p.version, p.checksum) for p in resolution.packages] == want
        for p in resolution.packages:  # the real melange-built .apk files pass the identity check
            client.fetch_package(repo, arch, p.candidate.info)
