"""Download OSV data per ecosystem from OSV's bucket layout: ``<base>/<Ecosystem>/all.zip``.

Each ecosystem lands at ``<dest>/<Ecosystem>/all.zip``, replaced atomically (downloaded beside
it, checked to be a zip whose members are ``*.json``, fsynced, renamed), so a failed or
interrupted download leaves the previous copy in place. The HTTP rules are the project's
(util/http.py): plain http only to loopback unless ``insecure``, every redirect hop re-checked,
transport errors and 5xx retried with backoff, and a size cap on what is downloaded.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from nanodistro.errors import FetchError, FormatError
from nanodistro.util.atomic import fsync_dir
from nanodistro.util.http import RETRY_STATUS, call_with_retries, check_plain_http, redirect_guard

__all__ = ["DEFAULT_BASE", "MAX_DOWNLOAD", "Downloaded", "update_ecosystems"]

DEFAULT_BASE = "https://osv-vulnerabilities.storage.googleapis.com"
#: The largest ecosystem zip accepted (PyPI's is a few hundred MB at most).
MAX_DOWNLOAD = 4 * 1024**3


class _Retry(Exception):
    """A transport error or a status worth asking again."""


@dataclass(frozen=True)
class Downloaded:
    ecosystem: str
    path: Path
    size: int
    records: int


def _download(client: httpx.Client, url: str, out: Path, limit: int) -> int:
    with client.stream("GET", url) as response:
        if response.status_code in RETRY_STATUS:
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise FetchError(f"HTTP {response.status_code}", where=url)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(f"larger than the limit of {limit} bytes", where=url)
        size = 0
        with out.open("wb") as handle:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"larger than the limit of {limit} bytes", where=url)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        return size


def _check_zip(path: Path, url: str) -> int:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [i.filename for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise FormatError(f"not a zip of OSV records ({error})", where=url) from None
    stray = [name for name in names if not name.endswith(".json")]
    if stray:
        raise FormatError(f"unexpected member {stray[0]!r} (expected *.json)", where=url)
    return len(names)


def update_ecosystems(
    ecosystems: Iterable[str],
    dest: Path,
    *,
    base: str = DEFAULT_BASE,
    insecure: bool = False,
    timeout: float = 120.0,
    attempts: int = 3,
    backoff: float = 1.0,
    limit: int = MAX_DOWNLOAD,
    progress: Callable[[str], None] | None = None,
) -> list[Downloaded]:
    """Fetch ``<base>/<ecosystem>/all.zip`` for each ecosystem into ``dest``."""
    base = base.rstrip("/")
    check_plain_http(base, insecure=insecure)
    done: list[Downloaded] = []
    hooks = {"response": [redirect_guard(insecure=insecure)]}
    with httpx.Client(
        follow_redirects=True, max_redirects=5, timeout=timeout, event_hooks=hooks
    ) as client:
        for ecosystem in ecosystems:
            url = f"{base}/{urllib.parse.quote(ecosystem, safe='')}/all.zip"
            target = dest / ecosystem / "all.zip"
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".all.zip.", dir=target.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:

                def attempt(url: str = url, tmp: Path = tmp) -> int:
                    try:
                        return _download(client, url, tmp, limit)
                    except httpx.TransportError as error:
                        raise _Retry(str(error)) from None

                try:
                    size = call_with_retries(
                        attempt, attempts=attempts, backoff=backoff, retry_on=_Retry
                    )
                except _Retry as error:
                    raise FetchError(f"download failed: {error}", where=url) from None
                except httpx.HTTPError as error:
                    raise FetchError(f"download failed: {error}", where=url) from None
                records = _check_zip(tmp, url)
                tmp.chmod(0o644)
                os.replace(tmp, target)
                fsync_dir(target.parent)
            finally:
                tmp.unlink(missing_ok=True)
            if progress is not None:
                progress(f"{ecosystem}: {records} records ({size} bytes) -> {target}")
            done.append(Downloaded(ecosystem, target, size, records))
    return done
