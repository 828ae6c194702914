"""The debian provider against a loopback archive: a generated Sources index, a Release with its
SHA256, an InRelease clear-signed with a test OpenPGP key (real gpg and gpgv)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import lzma
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from upstream_server import Upstream

from nanodistro.errors import MonitorError
from nanodistro.monitor import debian_archive as da
from nanodistro.monitor.bump import bump_recipe
from nanodistro.monitor.check import check_targets_async
from nanodistro.monitor.models import CheckResult
from nanodistro.monitor.providers import debian
from nanodistro.monitor.providers.base import Endpoints
from nanodistro.monitor.recipes import target_from_document
from nanodistro.monitor.release_source import pinned_uri
from needs_tools import require_tools


@dataclass(frozen=True)
class Signer:
    home: Path
    keyring: Path

    def clearsign(self, text: str) -> bytes:
        run = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", "--clearsign"],
            input=text.encode(),
            capture_output=True,
            check=True,
        )
        return run.stdout


def _make_signer(directory: Path, uid: str) -> Signer:
    home = directory / "gnupg"
    home.mkdir(mode=0o700, parents=True)
    subprocess.run(
        [
            *("gpg", "--homedir", str(home), "--batch", "--passphrase", ""),
            *("--quick-gen-key", uid, "ed25519", "sign", "never"),
        ],
        capture_output=True,
        check=True,
    )
    keyring = directory / "keyring.gpg"
    exported = subprocess.run(
        ["gpg", "--homedir", str(home), "--export"], capture_output=True, check=True
    ).stdout
    keyring.write_bytes(exported)
    return Signer(home, keyring)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    require_tools("gpg", "gpgv")
    directory = tmp_path_factory.mktemp("archive-key")
    yield _make_signer(directory, "Test Archive <archive@example.org>")
    subprocess.run(["gpgconf", "--homedir", str(directory / "gnupg"), "--kill", "all"], check=False)


def orig_tarball(top: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def stanza(package: str, version: str, files: dict[str, bytes]) -> str:
    directory = f"pool/main/{package[0]}/{package}"
    sums = "".join(
        f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}\n" for name, data in files.items()
    )
    return (
        f"Package: {package}\nBinary: {package}\nVersion: {version}\nFormat: 3.0 (quilt)\n"
        f"Directory: {directory}\nChecksums-Sha256:\n{sums}"
    )


def publish(
    upstream: Upstream,
    signer: Signer | None,
    stanzas: list[str],
    *,
    suite: str = "unstable",
    codename: str = "sid",
    pool: dict[str, bytes] | None = None,
    tamper_sources: bool = False,
) -> None:
    """Serve ``dists/<suite>/`` (InRelease, Release, main/source/Sources.xz) and the pool."""
    sources = lzma.compress("\n".join(stanzas).encode())
    digest = hashlib.sha256(sources).hexdigest()
    release = (
        f"Origin: Debian\nSuite: {suite}\nCodename: {codename}\nComponents: main\n"
        f"SHA256:\n {digest} {len(sources)} main/source/Sources.xz\n"
        f" {'0' * 64} 123 main/source/Sources\n"
    )
    base = f"/debian/dists/{suite}"
    upstream.add(f"{base}/Release", release)
    if signer is not None:
        upstream.add(f"{base}/InRelease", signer.clearsign(release))
    served = sources + b"\n" if tamper_sources else sources
    upstream.add(f"{base}/main/source/Sources.xz", served)
    for path, data in (pool or {}).items():
        upstream.add(f"/debian/{path}", data)


def monitor_block(upstream: Upstream, keyring: Path | str, **extra: str) -> dict[str, Any]:
    return {
        "identifier": "zlib",
        "suite": "unstable",
        "archive": f"{upstream.base}/debian",
        "keyring": str(keyring),
        **extra,
    }


def check(*documents: dict[str, Any]) -> list[CheckResult]:
    targets = [target_from_document(d, None) for d in documents]
    return asyncio.run(check_targets_async(targets, endpoints=Endpoints(), backoff=0.01))


def recipe(version: str, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "package": {"name": "zlib", "version": version, "epoch": 2},
        "update": {"enabled": True, "debian": block},
    }


ZLIB_OLD = {"zlib_1.2.13.dfsg.orig.tar.bz2": b"old", "zlib_1.2.13.dfsg-1.debian.tar.xz": b"d"}
ZLIB_NEW_TAR = orig_tarball("zlib-1.3.1", {"zlib.h": '#define ZLIB_VERSION "1.3.1"\n'})
ZLIB_NEW = {
    "zlib_1.3.dfsg+really1.3.1-1.dsc": b"dsc",
    "zlib_1.3.dfsg+really1.3.1.orig.tar.gz.asc": b"signature",
    "zlib_1.3.dfsg+really1.3.1.orig-contrib.tar.xz": b"component",
    "zlib_1.3.dfsg+really1.3.1.orig.tar.xz": ZLIB_NEW_TAR,
    "zlib_1.3.dfsg+really1.3.1-1.debian.tar.xz": b"debian",
}
ZLIB_STANZAS = [
    stanza("zlib", "1:1.2.13.dfsg-1", ZLIB_OLD),
    stanza("zlib", "1:1.3.dfsg+really1.3.1-1", ZLIB_NEW),
    stanza("zlibx", "9.9-1", {"zlibx_9.9.orig.tar.gz": b"x"}),
]
NEW_SHA = hashlib.sha256(ZLIB_NEW_TAR).hexdigest()
NEW_PATH = "pool/main/z/zlib/zlib_1.3.dfsg+really1.3.1.orig.tar.xz"


@pytest.fixture(autouse=True)
def _fresh_index_cache() -> None:
    debian._INDEXES.clear()


# --- versions and names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("debian_version", "upstream", "prerelease"),
    [
        ("1:1.3.dfsg+really1.3.1-1", "1.3.1", False),
        ("1:1.2.13.dfsg-1", "1.2.13", False),
        ("1:1.35.0-4+b3", "1.35.0", False),
        ("5.4.6-3", "5.4.6", False),
        ("20230311+deb12u1", "20230311", False),
        ("20260816+nmu1", "20260816", False),
        ("3.1+dfsg1-2~bpo12+1", "3.1", False),
        ("2.4+ds.1-1", "2.4", False),
        ("1.0+repack-2", "1.0", False),
        ("2.0~rc1-1", "2.0_rc1", True),
        ("2.0~beta.3-1", "2.0_beta3", True),
        ("1.0~git20230101-2", "1.0~git20230101", True),
        ("1.2-3-4", "1.2-3", False),  # only the last hyphen starts the revision
    ],
)
def test_upstream_version(debian_version: str, upstream: str, prerelease: bool) -> None:
    assert da.upstream_version(debian_version) == (upstream, prerelease)


def test_orig_tarball_is_the_main_one_not_components_or_signatures() -> None:
    (entries,) = [da.parse_sources("\n".join(ZLIB_STANZAS))["zlib"][1:]]
    assert da.source_tarball(entries[0]) == (
        "zlib_1.3.dfsg+really1.3.1.orig.tar.xz",
        NEW_SHA,
        len(ZLIB_NEW_TAR),
    )
    native = da.parse_sources(
        stanza(
            "ca-certificates",
            "20260816+nmu1",
            {
                "ca-certificates_20260816+nmu1.dsc": b"d",
                "ca-certificates_20260816+nmu1.tar.xz": b"t",
            },
        )
    )["ca-certificates"][0]
    assert da.source_tarball(native) == (
        "ca-certificates_20260816+nmu1.tar.xz",
        hashlib.sha256(b"t").hexdigest(),
        1,
    )


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("1.0-1", "1.0-2", -1),
        ("1:1.0-1", "2.0-1", 1),
        ("1.0~rc1-1", "1.0-1", -1),
        ("1.0a-1", "1.0-1", 1),
        ("1.0+b1", "1.0", 1),
        ("1.2.13.dfsg-1", "1.3.dfsg+really1.3.1-1", -1),
        ("1.0-1", "1.0-1", 0),
    ],
)
def test_dpkg_version_order(a: str, b: str, order: int) -> None:
    assert da.compare_versions(a, b) == order
    assert da.compare_versions(b, a) == -order


def test_host_suite_from_apt_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n\n"
        "Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: trixie trixie-updates\n"
    )
    assert da.apt_suite((deb822,)) == "trixie"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://ftp.de.debian.org/debian/ sid main\n")
    assert da.apt_suite((one_line,)) == "sid"
    assert da.apt_suite((tmp_path / "missing",)) is None


def test_bumped_uri_keeps_the_variable_where_the_version_is() -> None:
    old = "mirror://debian/pool/main/z/zlib/zlib_${{package.version}}.dfsg.orig.tar.bz2"
    rendered = "mirror://debian/pool/main/z/zlib/zlib_1.3.1.dfsg.orig.tar.bz2"
    assert pinned_uri(old, rendered, f"https://m/debian/{NEW_PATH}", "1.3.1") == (
        "mirror://debian/pool/main/z/zlib/zlib_1.3.dfsg+really${{package.version}}.orig.tar.xz"
    )
    same = "mirror://debian/pool/main/m/musl/musl_1.2.5.orig.tar.gz"
    assert (
        pinned_uri(same, same, "https://m/debian/pool/main/m/musl/musl_1.2.5.orig.tar.gz", "1.2.5")
        is None
    )
    native = pinned_uri(
        "mirror://debian/pool/main/c/ca-certificates/"
        "ca-certificates_${{package.version}}${{vars.debian-revision}}.tar.xz",
        "mirror://debian/pool/main/c/ca-certificates/ca-certificates_20260816+deb12u1.tar.xz",
        "https://m/debian/pool/main/c/ca-certificates/ca-certificates_20260816+nmu1.tar.xz",
        "20260816",
    )
    assert native == (
        "mirror://debian/pool/main/c/ca-certificates/"
        "ca-certificates_${{package.version}}+nmu1.tar.xz"
    )


# --- the monitor against a loopback archive --------------------------------------------------


def test_signed_archive_reports_the_newest_upstream_and_its_orig_tarball(
    upstream: Upstream, signer: Signer
) -> None:
    publish(upstream, signer, ZLIB_STANZAS)
    block = monitor_block(upstream, signer.keyring)
    old, new = check(recipe("1.2.13", block), recipe("1.3.1", block))
    assert (old.status, old.latest, old.next_version) == ("update", "1.3.1", "1.3.1")
    assert old.latest_url == f"{upstream.base}/debian/{NEW_PATH}"
    assert (new.status, new.latest) == ("up-to-date", "1.3.1")
    # both recipes shared one download of the index
    assert upstream.paths().count("/debian/dists/unstable/main/source/Sources.xz") == 1
    assert "/debian/dists/unstable/Release" not in upstream.paths()  # the signed one is read


def test_codename_names_the_suite_too(upstream: Upstream, signer: Signer) -> None:
    publish(upstream, signer, ZLIB_STANZAS, suite="sid", codename="sid")
    (result,) = check(recipe("1.2.13", monitor_block(upstream, signer.keyring, suite="sid")))
    assert (result.status, result.latest) == ("update", "1.3.1")


def test_unknown_source_package_is_named(upstream: Upstream, signer: Signer) -> None:
    publish(upstream, signer, ZLIB_STANZAS)
    (result,) = check(recipe("1.0", monitor_block(upstream, signer.keyring, identifier="nope")))
    assert result.status == "error"
    assert "source package 'nope' is not in unstable/main" in (result.message or "")


def test_unsigned_release_with_keyring_none_checks_checksums(upstream: Upstream) -> None:
    publish(upstream, None, ZLIB_STANZAS)
    (result,) = check(recipe("1.2.13", monitor_block(upstream, "none")))
    assert (result.status, result.latest) == ("update", "1.3.1")


def test_attack_inrelease_signed_by_another_key_is_refused(
    upstream: Upstream, signer: Signer, tmp_path: Path
) -> None:
    require_tools("gpg", "gpgv")
    mallory = _make_signer(tmp_path / "mallory", "Mallory <m@example.org>")
    try:
        publish(upstream, mallory, ZLIB_STANZAS)
        (result,) = check(recipe("1.2.13", monitor_block(upstream, signer.keyring)))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(mallory.home), "--kill", "all"], check=False)
    assert result.status == "error"
    assert "InRelease signature does not verify against" in (result.message or "")
    assert "/main/source/Sources.xz" not in " ".join(upstream.paths())


def test_attack_altered_inrelease_text_is_refused(upstream: Upstream, signer: Signer) -> None:
    publish(upstream, signer, ZLIB_STANZAS)
    route = upstream.routes["/debian/dists/unstable/InRelease"]
    route.body = route.body.replace(b"Codename: sid", b"Codename: six")
    (result,) = check(recipe("1.2.13", monitor_block(upstream, signer.keyring)))
    assert result.status == "error" and "signature does not verify" in (result.message or "")


def test_attack_sources_index_not_matching_release_is_refused(
    upstream: Upstream, signer: Signer
) -> None:
    publish(upstream, signer, ZLIB_STANZAS, tamper_sources=True)
    (result,) = check(recipe("1.2.13", monitor_block(upstream, signer.keyring)))
    assert result.status == "error"
    assert "Sources index does not match its Release" in (result.message or "")


def test_attack_replayed_release_of_another_suite_is_refused(
    upstream: Upstream, signer: Signer
) -> None:
    # a validly signed old stable Release served under dists/unstable
    publish(upstream, signer, ZLIB_STANZAS, suite="unstable", codename="bookworm")
    route = upstream.routes["/debian/dists/unstable/InRelease"]
    stale = signer.clearsign(
        route.body.decode()
        .split("\n\n", 1)[1]
        .split("-----BEGIN PGP SIGNATURE", 1)[0]
        .replace("Suite: unstable", "Suite: stable")
    )
    route.body = stale
    (result,) = check(recipe("1.2.13", monitor_block(upstream, signer.keyring)))
    assert result.status == "error"
    assert "the Release file is for suite 'stable'" in (result.message or "")


# --- bump ------------------------------------------------------------------------------------

BUMP_RECIPE = """\
package:
  name: zlib
  version: 1.2.13
  epoch: 2

pipeline:
  - uses: fetch
    with:
      # Debian repacks zlib (".dfsg")
      uri: mirror://debian/pool/main/z/zlib/zlib_${{{{package.version}}}}.dfsg.orig.tar.bz2
      expected-sha256: {sha}

update:
  enabled: true
  debian:
    identifier: zlib
    suite: unstable
    keyring: {keyring}
"""


def _bump_workspace(tmp_path: Path, upstream: Upstream, keyring: Path) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "nanodistro.toml").write_text(
        f'[workspace]\nname = "t"\n[mirrors]\ndebian = "{upstream.base}/debian"\n'
    )
    path = tmp_path / "recipes" / "zlib.yaml"
    path.write_text(BUMP_RECIPE.format(sha=hashlib.sha256(b"old").hexdigest(), keyring=keyring))
    return path


def test_bump_writes_the_archive_file_name_and_checksum(
    upstream: Upstream, signer: Signer, tmp_path: Path
) -> None:
    publish(upstream, signer, ZLIB_STANZAS, pool={NEW_PATH: ZLIB_NEW_TAR})
    path = _bump_workspace(tmp_path, upstream, signer.keyring)
    result = bump_recipe(
        path,
        None,
        source_cache=tmp_path / "sources",
        mirrors={"debian": f"{upstream.base}/debian"},
    )
    assert (result.new_version, result.new_epoch) == ("1.3.1", 0)
    text = path.read_text()
    assert (
        "uri: mirror://debian/pool/main/z/zlib/"
        "zlib_1.3.dfsg+really${{package.version}}.orig.tar.xz\n" in text
    )
    assert f"expected-sha256: {NEW_SHA}\n" in text
    assert '# Debian repacks zlib (".dfsg")' in text
    assert f"/debian/{NEW_PATH}" in upstream.paths()


def test_attack_bump_refuses_a_pool_file_unlike_the_signed_index(
    upstream: Upstream, signer: Signer, tmp_path: Path
) -> None:
    swapped = orig_tarball("zlib-1.3.1", {"zlib.h": "backdoor\n"})
    publish(upstream, signer, ZLIB_STANZAS, pool={NEW_PATH: swapped})
    path = _bump_workspace(tmp_path, upstream, signer.keyring)
    before = path.read_text()
    with pytest.raises(MonitorError, match="the archive's index says " + NEW_SHA):
        bump_recipe(
            path,
            "1.3.1",
            source_cache=tmp_path / "sources",
            mirrors={"debian": f"{upstream.base}/debian"},
        )
    assert path.read_text() == before


def test_bump_to_a_version_the_archive_lacks_names_what_it_has(
    upstream: Upstream, signer: Signer, tmp_path: Path
) -> None:
    publish(upstream, signer, ZLIB_STANZAS)
    path = _bump_workspace(tmp_path, upstream, signer.keyring)
    with pytest.raises(MonitorError, match=r"has no release 1\.4 \(it lists: 1\.3\.1, 1\.2\.13\)"):
        bump_recipe(path, "1.4", source_cache=tmp_path / "sources")


def test_archive_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nanodistro.recipe.update import DebianMonitor

    monkeypatch.setattr(debian, "apt_debian_mirror", lambda: "http://deb.debian.org/debian")
    block = DebianMonitor(identifier="zlib")
    # apt trusts http because it checks signatures; the monitor asks over https
    assert debian.archive_url(block, Endpoints()) == "https://deb.debian.org/debian"
    assert debian.archive_url(block, Endpoints(debian="http://127.0.0.1:1/d/")) == (
        "http://127.0.0.1:1/d"
    )
    (tmp_path / "nanodistro.toml").write_text(
        '[workspace]\nname = "t"\n[mirrors]\ndebian = "https://mirror.example/debian"\n'
    )
    (tmp_path / "r.yaml").write_text("package: {name: a, version: '1'}\n")
    assert debian.archive_url(block, Endpoints(), tmp_path / "r.yaml") == (
        "https://mirror.example/debian"
    )
    explicit = DebianMonitor(identifier="zlib", archive="https://other.example/debian/")
    assert debian.archive_url(explicit, Endpoints()) == "https://other.example/debian"
    assert debian.suite_name(DebianMonitor(identifier="z", suite="sid")) == "sid"
