"""Debian's archive: the versions of a source package in one suite's Sources index.

The chain of trust is apt's: ``dists/<suite>/InRelease`` is checked with ``gpgv`` against the
archive keyring (Debian's, ``/usr/share/keyrings/debian-archive-keyring.gpg``, by default) and
only the signed text is read; the Sources index must match the size and SHA256 that text gives;
the orig tarball's SHA256 comes from that index, and ``bump`` checks the download against it.
Without ``gpgv`` or a keyring (``keyring: none``) the unsigned ``Release`` is read over HTTPS and
only the checksums hold. The archive is the recipe's ``archive``, else ``NANODISTRO_DEBIAN_URL``,
else the workspace's ``[mirrors] debian``, else the host's apt mirror (over HTTPS), else
deb.debian.org; the suite is the recipe's, else the
host's (``sid``/``unstable`` see new upstream releases first).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import lzma
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nanodistro.builder.mirrors import PUBLIC_MIRRORS, apt_debian_mirror
from nanodistro.errors import MonitorError
from nanodistro.monitor import debian_archive as da
from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import Endpoints, ProviderConfig
from nanodistro.recipe.update import DebianMonitor, UpdateConfig

KIND = "debian"
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Sources of sid's main are ~50 MB; a bigger answer is not a Sources index.
MAX_INDEX_BYTES = 512 * 1024 * 1024

# Parsed indexes by (URL, sha256): every recipe of a run shares one download and parse, and a
# changed index (new sha256 in the Release) is read again. Only the newest few are kept.
_INDEXES: dict[tuple[str, str], dict[str, list[da.SourceEntry]]] = {}
_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}
_KEEP = 4


def block(update: UpdateConfig) -> Any:
    return update.debian


def workspace_mirror(recipe: Path | None) -> str | None:
    """``[mirrors] debian`` of the workspace holding ``recipe`` (where its build fetches)."""
    from nanodistro.factory.workspace import find_workspace, load_workspace

    found = find_workspace(recipe) if recipe is not None and recipe.exists() else None
    return load_workspace(found).mirrors.get("debian") if found is not None else None


def archive_url(monitor: DebianMonitor, endpoints: Endpoints, recipe: Path | None = None) -> str:
    """The archive's base URL (the folder holding ``dists/`` and ``pool/``)."""
    if monitor.archive:
        return monitor.archive.rstrip("/")
    if endpoints.debian:
        return endpoints.debian.rstrip("/")
    mirror = workspace_mirror(recipe)
    if mirror:
        return mirror.rstrip("/")
    apt = apt_debian_mirror()
    if apt:
        # apt trusts plain http because it checks signatures; the monitor's client wants
        # https to other hosts, which every Debian mirror of note serves.
        host = urlsplit(apt).hostname or ""
        if apt.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
            apt = "https://" + apt[len("http://") :]
        return apt.rstrip("/")
    return PUBLIC_MIRRORS["debian"]


def suite_name(monitor: DebianMonitor) -> str:
    """The recipe's suite, else the host's apt suite, else its codename, else ``stable``."""
    return monitor.suite or da.apt_suite() or da.os_release_codename() or "stable"


def keyring_path(monitor: DebianMonitor) -> Path | None:
    """The keyring InRelease is checked against; None when only checksums can be checked."""
    if monitor.keyring == "none":
        return None
    if monitor.keyring:
        path = Path(monitor.keyring)
        if not path.is_file():
            raise MonitorError(
                "no such keyring file (or 'none' to check checksums only)",
                where=str(path),
                field="update.debian.keyring",
            )
        if shutil.which("gpgv") is None:
            raise MonitorError("gpgv is not installed: it checks InRelease signatures")
        return path
    if DEFAULT_KEYRING.is_file() and shutil.which("gpgv") is not None:
        return DEFAULT_KEYRING
    return None


def verify_inrelease(data: bytes, keyring: Path, where: str) -> str:
    """The text ``gpgv`` vouches for in a clear-signed InRelease; MonitorError otherwise."""
    with tempfile.TemporaryDirectory(prefix="nanodistro-inrelease-") as scratch:
        signed = Path(scratch) / "InRelease"
        output = Path(scratch) / "Release"
        signed.write_bytes(data)
        run = subprocess.run(
            [
                "gpgv",
                "--homedir",
                scratch,
                "--keyring",
                str(keyring.resolve()),
                "--output",
                str(output),
                str(signed),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0 or not output.is_file():
            lines = [line for line in run.stderr.splitlines() if line.strip()]
            detail = lines[-1].removeprefix("gpgv: ") if lines else f"gpgv exited {run.returncode}"
            raise MonitorError(
                f"InRelease signature does not verify against {keyring} ({detail})", where=where
            )
        return output.read_text(encoding="utf-8", errors="replace")


async def read_release(
    client: HttpClient, archive: str, suite: str, keyring: Path | None
) -> dict[str, str]:
    """The suite's Release fields, from the signed InRelease when a keyring is given."""
    base = f"{archive}/dists/{suite}"
    if keyring is not None:
        url = f"{base}/InRelease"
        body = (await client.get(url)).body
        text = await asyncio.to_thread(verify_inrelease, body, keyring, url)
    else:
        url = f"{base}/Release"
        text = (await client.get(url)).text
    release = next(da.deb822(text), {})
    # A validly signed Release of another suite (an old stable) must not pass for this one.
    names = {release.get("Suite"), release.get("Codename")}
    if suite not in names:
        raise MonitorError(
            f"the Release file is for suite {release.get('Suite')!r} "
            f"(codename {release.get('Codename')!r}), not {suite!r}",
            where=url,
        )
    return release


def _decompress(data: bytes, name: str, where: str) -> str:
    try:
        if name.endswith(".xz"):
            raw = lzma.LZMADecompressor().decompress(data, MAX_INDEX_BYTES)
        else:
            raw = gzip.GzipFile(fileobj=io.BytesIO(data)).read(MAX_INDEX_BYTES)
    except (lzma.LZMAError, OSError, EOFError) as error:
        raise MonitorError(f"cannot decompress the Sources index: {error}", where=where) from None
    return raw.decode("utf-8", errors="replace")


async def read_sources(
    client: HttpClient, archive: str, suite: str, component: str, keyring: Path | None
) -> dict[str, list[da.SourceEntry]]:
    """The suite's Sources index for ``component``, checked against its Release, parsed."""
    release = await read_release(client, archive, suite, keyring)
    entry = da.sources_index(release, component)
    where = f"{archive}/dists/{suite}/Release"
    if entry is None:
        raise MonitorError(
            f"the Release lists no {component}/source/Sources.xz or .gz (no such component, "
            "or an archive without sources)",
            where=where,
        )
    url = f"{archive}/dists/{suite}/{entry.path}"
    key = (url, entry.sha256)
    loop_lock = (id(asyncio.get_running_loop()), url)
    lock = _LOCKS.setdefault(loop_lock, asyncio.Lock())
    async with lock:
        if key in _INDEXES:
            return _INDEXES[key]
        data = (await client.get(url)).body
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != entry.size or digest != entry.sha256:
            raise MonitorError(
                f"Sources index does not match its Release: got {len(data)} bytes sha256 "
                f"{digest}, the Release says {entry.size} bytes sha256 {entry.sha256}",
                where=url,
            )
        text = await asyncio.to_thread(_decompress, data, entry.path, url)
        index = await asyncio.to_thread(da.parse_sources, text)
        for old in [k for k in _INDEXES if k[0] == url] + list(_INDEXES)[: -_KEEP + 1]:
            _INDEXES.pop(old, None)
        _INDEXES[key] = index
        return index


def releases_of(entries: list[da.SourceEntry], archive: str) -> list[UpstreamRelease]:
    """One release per upstream version (from its newest Debian version), newest first."""
    newest: dict[str, da.SourceEntry] = {}
    for entry in entries:
        upstream, _ = da.upstream_version(entry.version)
        seen = newest.get(upstream)
        if seen is None or da.compare_versions(entry.version, seen.version) > 0:
            newest[upstream] = entry
    ordered = sorted(
        newest.values(),
        key=lambda e: _SortKey(e.version),
        reverse=True,
    )
    releases = []
    for entry in ordered:
        upstream, prerelease = da.upstream_version(entry.version)
        tarball = da.source_tarball(entry)
        releases.append(
            UpstreamRelease(
                version=upstream,
                url=f"{archive}/{entry.directory}/{tarball[0]}" if tarball else None,
                checksum=f"sha256:{tarball[1]}" if tarball else None,
                prerelease=prerelease,
            )
        )
    return releases


class _SortKey:
    def __init__(self, version: str) -> None:
        self.version = version

    def __lt__(self, other: _SortKey) -> bool:
        return da.compare_versions(self.version, other.version) < 0


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    monitor = config.update.debian
    assert monitor is not None
    archive = archive_url(monitor, config.endpoints, config.target.path)
    suite = suite_name(monitor)
    index = await read_sources(client, archive, suite, monitor.component, keyring_path(monitor))
    entries = index.get(monitor.identifier)
    if not entries:
        raise MonitorError(
            f"source package {monitor.identifier!r} is not in {suite}/{monitor.component}",
            where=archive,
        )
    return releases_of(entries, archive)
