"""Getting a release's source for a bump: download (with a cache), digests, safe extraction."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

from nanodistro.errors import FetchError, UnsafePathError
from nanodistro.monitor.http import USER_AGENT


@dataclass(frozen=True)
class Download:
    path: Path
    sha256: str
    sha512: str


def _digests(path: Path) -> tuple[str, str]:
    sha256, sha512 = hashlib.sha256(), hashlib.sha512()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            sha512.update(chunk)
    return sha256.hexdigest(), sha512.hexdigest()


def download(uri: str, cache_dir: Path, *, timeout: float = 300.0) -> Download:
    """Fetch ``uri`` into ``cache_dir`` (reused when already there) and digest it."""
    name = PurePosixPath(httpx.URL(uri).path).name or "source"
    key = hashlib.sha256(uri.encode()).hexdigest()[:20]
    target = cache_dir / f"{key}-{name}"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".dl-", delete=False) as tmp:
            try:
                with httpx.stream(
                    "GET",
                    uri,
                    follow_redirects=True,
                    timeout=timeout,
                    headers={"User-Agent": USER_AGENT},
                ) as response:
                    if response.status_code >= 400:
                        raise FetchError(f"HTTP {response.status_code}", where=uri)
                    for chunk in response.iter_bytes(1 << 20):
                        tmp.write(chunk)
            except httpx.HTTPError as error:
                Path(tmp.name).unlink(missing_ok=True)
                raise FetchError(f"download failed: {error}", where=uri) from None
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
        Path(tmp.name).replace(target)
    sha256, sha512 = _digests(target)
    return Download(target, sha256, sha512)


def _strip(name: str, components: int) -> str | None:
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if len(parts) <= components:
        return None
    return "/".join(parts[components:])


def extract(archive: Path, destination: Path, *, strip_components: int = 1) -> None:
    """Unpack a tar (any compression) or zip, dropping leading path components like melange's
    fetch pipeline (``tar -x --strip-components``). Entries escaping ``destination`` are refused.
    """
    destination.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    relative = _strip(info.filename, strip_components)
                    if relative is None or info.is_dir():
                        continue
                    target = (destination / relative).resolve()
                    if not target.is_relative_to(destination.resolve()):
                        raise UnsafePathError("entry escapes the source tree", where=info.filename)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zipped.open(info) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
            return
        with tarfile.open(archive) as tar:
            members = []
            for member in tar.getmembers():
                relative = _strip(member.name, strip_components)
                if relative is None:
                    continue
                member.name = relative
                if member.islnk() and member.linkname:
                    member.linkname = _strip(member.linkname, strip_components) or ""
                members.append(member)
            # The "data" filter refuses absolute paths, "..", escaping links and device nodes.
            tar.extractall(destination, members=members, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        if isinstance(error, tarfile.FilterError):
            raise UnsafePathError(f"unsafe archive entry: {error}", where=str(archive)) from None
        raise FetchError(f"cannot extract source archive: {error}", where=str(archive)) from None


def git_clone(repository: str, tag: str, destination: Path) -> None:
    """Shallow clone of one tag (for checking patches against a git-checkout source)."""
    result = subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--branch", tag, repository, str(destination)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if result.returncode != 0:
        raise FetchError(
            f"git clone of tag {tag} failed: {result.stderr.strip()}", where=repository
        )
