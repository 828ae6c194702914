"""Obtain sources outside the sandbox: ``fetch``, ``git-checkout`` and ``patch``.

Builds are hermetic (DESIGN.md invariant 2): the sandbox has no network, so these three built-in
pipelines are carried out here, by Python, before the first sandboxed step. Every object is
verified against its pin (``expected-sha256``/``expected-sha512``/``expected-commit``) and kept
in a content-addressed cache (build/cache.py), so a second build needs no network at all.

Semantics follow melange's pipelines (pkg/build/pipelines/{fetch,git-checkout,patch}.yaml):
fetch downloads into the working directory and extracts with ``--strip-components`` into
``directory``; git-checkout clones into ``destination`` and checks out ``tag``/``branch``,
comparing HEAD with ``expected-commit``; patch applies ``patches``/``series`` with ``-p<N>``.
Differences: git-checkout always keeps a full mirror in the cache (``depth`` is accepted but a
checkout has full history), and retry/backoff inputs other than ``retry-limit`` are ignored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlparse

import httpx

from nanodistro.builder.cache import SourceCache, file_digests
from nanodistro.builder.mirrors import resolve_mirror_uri, upstream_url
from nanodistro.errors import BuildError, ChecksumError, FetchError, UnsafePathError
from nanodistro.formats.inflate import open_tar
from nanodistro.util.http import describe_http_error, is_loopback, redirect_guard
from nanodistro.util.progress import Progress

GUEST_HOME = "/home/build"

# The identity melange commits cherry-picks with (pkg/build/pipelines/git-checkout.yaml).
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Melange Build",
    "GIT_AUTHOR_EMAIL": "melange-build@cgr.dev",
    "GIT_COMMITTER_NAME": "Melange Build",
    "GIT_COMMITTER_EMAIL": "melange-build@cgr.dev",
}


@dataclass
class SourceRecord:
    """One upstream source of a build, for the SBOM and provenance."""

    kind: str  # "fetch" | "git"
    uri: str  # as the recipe says (mirror://NAME/... included)
    sha256: str = ""
    sha512: str = ""
    purl_name: str = ""
    purl_version: str = ""
    repository: str = ""
    tag: str = ""
    branch: str = ""
    commit: str = ""
    newest_mtime: int = 0  # newest file time inside the source (SOURCE_DATE_EPOCH fallback)
    extra: dict[str, str] = field(default_factory=dict)
    # where the SBOM says the source comes from: ``uri`` with a mirror:// resolved through the
    # workspace's [mirrors] (builder/mirrors.upstream_url); "" when it names nowhere fetchable
    download_url: str = ""


def host_path(workspace: Path, guest_dir: str, relative: str = ".") -> Path:
    """Map a guest path (under /home/build) to the host workspace, refusing escapes."""
    guest = PurePosixPath(guest_dir) / relative
    parts: list[str] = []
    for part in guest.parts[1:] if guest.is_absolute() else guest.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePathError(f"path {str(guest)!r} escapes the workspace")
            parts.pop()
            continue
        parts.append(part)
    home = PurePosixPath(GUEST_HOME).parts[1:]
    if tuple(parts[: len(home)]) != home:
        raise UnsafePathError(
            f"sources can only be placed under {GUEST_HOME}, got {str(guest)!r}",
        )
    return workspace.joinpath(*parts[len(home) :])


# --------------------------------------------------------------------------------------- fetch


def fetch(
    inputs: dict[str, str],
    *,
    workspace: Path,
    workdir: str,
    cache: SourceCache,
    step: str,
    progress: Progress | None = None,
    timeout: float = 300.0,
    mirrors: Mapping[str, str] | None = None,
) -> SourceRecord:
    """The ``fetch`` pipeline: download (or reuse), verify, place, extract.

    A ``mirror://NAME/PATH`` URI is resolved (build/mirrors.py) to download; the cache key keeps
    the ``mirror://`` form, and the SBOM records the URL ``[mirrors]`` (or the archive's public
    address) gives it, never the host's apt mirror, so the bytes do not depend on the machine."""
    uri = inputs["uri"]
    expected = {
        algo: inputs.get(f"expected-{algo}", "").strip().lower() for algo in ("sha256", "sha512")
    }
    pinned = {a: d for a, d in expected.items() if d}
    if not pinned and not inputs.get("expected-none"):
        raise BuildError(
            "fetch needs expected-sha256 or expected-sha512 (or expected-none)", where=step
        )
    cached: Path | None = None
    for algorithm, digest in pinned.items():
        cached = cache.lookup(algorithm, digest)
        if cached:
            break
    if cached is None and not pinned:
        candidate = cache.url_path(uri)
        cached = candidate if candidate.is_file() else None
    if cached is None:
        cached = _download_into_cache(
            resolve_mirror_uri(uri, mirrors),
            pinned,
            cache,
            cache_key=uri,  # the mirror:// form, as the lookup above
            step=step,
            progress=progress,
            timeout=timeout,
            retries=_int_input(inputs, "retry-limit", 5),
        )
    elif progress:
        progress(f"{step}: using cached {uri}")
    digests = file_digests(cached)
    for algorithm, digest in pinned.items():  # the cache is trusted only as far as it verifies
        if digests[algorithm] != digest:
            raise ChecksumError(
                f"cached object for {uri} is corrupt: expected {algorithm} {digest}, "
                f"got {digests[algorithm]}",
                where=str(cached),
            )

    cwd = host_path(workspace, workdir)
    cwd.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(urlparse(uri).path).name or "download"
    downloaded = cwd / name
    shutil.copyfile(cached, downloaded)
    newest = 0
    if inputs.get("extract", "true") == "true":
        target = host_path(workspace, workdir, inputs.get("directory", ".") or ".")
        target.mkdir(parents=True, exist_ok=True)
        newest = extract_tarball(
            downloaded,
            target,
            strip_components=int(inputs.get("strip-components", "1") or 0),
            where=uri,
        )
    if inputs.get("delete", "false") == "true":
        downloaded.unlink()
    return SourceRecord(
        kind="fetch",
        uri=uri,
        sha256=digests["sha256"],
        sha512=digests["sha512"],
        purl_name=inputs.get("purl-name", ""),
        purl_version=inputs.get("purl-version", ""),
        newest_mtime=newest,
        download_url=upstream_url(uri, mirrors) or "",
    )


def _download_into_cache(
    uri: str,
    pinned: dict[str, str],
    cache: SourceCache,
    *,
    cache_key: str,
    step: str,
    progress: Progress | None,
    timeout: float,
    retries: int = 5,
) -> Path:
    if progress:
        progress(f"{step}: downloading {uri}")
    cache.root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=cache.root)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if uri.startswith("file://"):
                with open(urlparse(uri).path, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                _http_download(uri, out, timeout=timeout, attempts=retries)
        digests = file_digests(tmp)
        for algorithm, digest in pinned.items():
            if digests[algorithm] != digest:
                raise ChecksumError(
                    f"checksum mismatch in step {step!r}: expected {algorithm} {digest}, "
                    f"got {digests[algorithm]}",
                    where=uri,
                )
        if pinned:
            return cache.store(tmp, digests)
        return cache.store_unpinned(tmp, cache_key)
    except httpx.HTTPError as error:
        raise FetchError(f"download failed: {describe_http_error(error, uri)}", where=uri) from None
    except OSError as error:
        raise FetchError(f"download failed: {error}", where=uri) from None
    finally:
        tmp.unlink(missing_ok=True)


def _int_input(inputs: Mapping[str, str], key: str, default: int) -> int:
    value = inputs.get(key, "")
    return int(value) if value.isdigit() else default


def _http_download(uri: str, out: BinaryIO, *, timeout: float, attempts: int) -> None:
    """GET ``uri`` into ``out``; transport errors and 5xx are retried (fetch ``retry-limit``).

    Redirect hops are held to the plain-http rule (util/http.py); a recipe that itself names a
    plain-http URL elsewhere has accepted plain http (the download is checksum-pinned anyway).
    """
    parsed = urlparse(uri)
    accepted_plain = parsed.scheme == "http" and not is_loopback(parsed.hostname or "")
    hooks = {"response": [redirect_guard(insecure=accepted_plain)]}
    for attempt in range(1, max(attempts, 1) + 1):
        out.seek(0)
        out.truncate()
        try:
            with (
                httpx.Client(follow_redirects=True, timeout=timeout, event_hooks=hooks) as client,
                client.stream("GET", uri) as response,
            ):
                if response.status_code >= 500 and attempt < attempts:
                    time.sleep(min(2**attempt, 10) / 10)
                    continue
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code} while fetching", where=uri)
                for chunk in response.iter_bytes():
                    out.write(chunk)
                return
        except httpx.TransportError:
            if attempt >= attempts:
                raise
            time.sleep(min(2**attempt, 10) / 10)


def extract_tarball(archive: Path, dest: Path, *, strip_components: int, where: str) -> int:
    """Extract like ``tar -x --strip-components=N --no-same-owner``, refusing unsafe entries.

    Returns the newest member mtime (a fallback for SOURCE_DATE_EPOCH).
    """
    try:
        # Decompression is budgeted (formats/inflate.py): a small bomb fails before the disk fills.
        with open_tar(archive, where=where) as tar:
            members: list[tarfile.TarInfo] = []
            newest = 0
            for member in tar.getmembers():
                name = _strip(member.name, strip_components)
                if not name:
                    continue
                changes: dict[str, object] = {
                    "name": name,
                    "uid": 0,
                    "gid": 0,
                    "uname": "",
                    "gname": "",
                }
                if member.islnk():
                    linkname = _strip(member.linkname, strip_components)
                    if not linkname:
                        continue
                    changes["linkname"] = linkname
                try:
                    safe = tarfile.data_filter(member.replace(**changes, deep=False), str(dest))  # type: ignore[arg-type]
                except tarfile.FilterError as error:
                    raise UnsafePathError(
                        f"unsafe archive entry {member.name!r}: {error}", where=where
                    ) from None
                if safe is None:
                    continue
                newest = max(newest, int(member.mtime))
                members.append(safe)
            tar.extractall(dest, members=members, filter="fully_trusted")
            return newest
    except tarfile.TarError as error:
        raise BuildError(f"cannot extract {archive.name}: {error}", where=where) from None


def _strip(name: str, count: int) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts[count:])


# -------------------------------------------------------------------------------- git-checkout


def _git(
    args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, where: str
) -> str:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    result = subprocess.run(
        ["git", "-c", "advice.detachedHead=false", "-c", "protocol.file.allow=always", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(
            f"git {' '.join(args[:2])} failed: {result.stderr.strip()[-800:]}", where=where
        )
    return result.stdout


def git_checkout(
    inputs: dict[str, str],
    *,
    workspace: Path,
    workdir: str,
    cache: SourceCache,
    step: str,
    source_date_epoch: int,
    progress: Progress | None = None,
) -> SourceRecord:
    """The ``git-checkout`` pipeline, through a cached bare mirror of the repository."""
    repository = inputs["repository"]
    tag, branch = inputs.get("tag", ""), inputs.get("branch", "")
    expected = inputs.get("expected-commit", "").strip().lower()
    if tag and branch:
        raise BuildError("git-checkout: 'tag' and 'branch' are mutually exclusive", where=step)
    mirror = cache.git_mirror(repository)
    wanted = f"refs/tags/{tag}" if tag else (f"refs/heads/{branch}" if branch else "HEAD")
    if not mirror.is_dir():
        if progress:
            progress(f"{step}: cloning {repository}")
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=mirror.parent))
        try:
            _git(["clone", "--mirror", "--quiet", repository, str(tmp / "m.git")], where=repository)
            os.replace(tmp / "m.git", mirror)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif not _has(mirror, wanted, expected) or not (expected or tag):
        # an unpinned branch moves, so its mirror is refreshed; pinned refs come from the cache
        if progress:
            progress(f"{step}: updating mirror of {repository}")
        _git(
            ["fetch", "--quiet", "--prune", "origin", "+refs/*:refs/*"],
            cwd=mirror,
            where=repository,
        )
    elif progress:
        progress(f"{step}: using cached mirror of {repository}")

    dest = host_path(workspace, workdir, inputs.get("destination", ".") or ".")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="checkout-", dir=workspace) as tmp_dir:
        clone = Path(tmp_dir) / "c"
        _git(["clone", "--quiet", "--no-checkout", str(mirror), str(clone)], where=repository)
        _git(["remote", "set-url", "origin", repository], cwd=clone, where=repository)
        ref = f"refs/tags/{tag}" if tag else (f"origin/{branch}" if branch else "HEAD")
        if branch and expected:
            ref = expected  # melange resets a branch to the pinned commit when it is reachable
        _git(["checkout", "--quiet", "--detach", ref], cwd=clone, where=repository)
        head = _git(["rev-parse", "HEAD"], cwd=clone, where=repository).strip()
        if expected:
            tag_object = (
                _git(["rev-parse", f"refs/tags/{tag}"], cwd=clone, where=repository).strip()
                if tag
                else head
            )
            if expected not in (head, tag_object):
                raise ChecksumError(
                    f"commit mismatch in step {step!r}: expected-commit {expected}, "
                    f"got {head}" + (f" (tag {tag})" if tag else ""),
                    where=repository,
                )
        if inputs.get("recurse-submodules", "false") == "true":
            # submodules are fetched here, outside the sandbox, but not cached
            _git(["submodule", "update", "--init", "--recursive"], cwd=clone, where=repository)
        _cherry_pick(clone, inputs.get("cherry-picks", ""), source_date_epoch, where=repository)
        commit_time = int(_git(["log", "-1", "--format=%ct"], cwd=clone, where=repository))
        for entry in sorted(clone.iterdir()):
            target = dest / entry.name
            if target.exists() or target.is_symlink():
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            shutil.move(str(entry), str(target))
    return SourceRecord(
        kind="git",
        uri=repository,
        repository=repository,
        tag=tag,
        branch=branch,
        commit=head,
        newest_mtime=commit_time,
    )


def _has(mirror: Path, ref: str, commit: str) -> bool:
    probe = commit or ref
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{probe}^{{commit}}"],
        cwd=mirror,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        return False
    if commit and ref != "HEAD":
        ref_ok = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", ref],
            cwd=mirror,
            capture_output=True,
            check=False,
        )
        return ref_ok.returncode == 0
    return True


def _cherry_pick(clone: Path, spec: str, source_date_epoch: int, *, where: str) -> None:
    date = f"@{source_date_epoch} +0000"
    env = {**_GIT_IDENTITY, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
    for raw in spec.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        ref = line.split(":", 1)[0].strip()
        commit = ref.rsplit("/", 1)[-1]
        if ":" not in line:
            raise BuildError(
                f"cherry-pick {line!r} needs a comment: '[branch/]commit: comment'", where=where
            )
        _git(["cherry-pick", "-x", commit], cwd=clone, env=env, where=where)


# --------------------------------------------------------------------------------------- patch


def apply_patches(
    inputs: dict[str, str],
    *,
    workspace: Path,
    workdir: str,
    patch_dirs: list[Path],
    step: str,
    progress: Progress | None = None,
) -> None:
    """The ``patch`` pipeline: GNU patch ``-p<N> --fuzz=<F>`` for each file, in order."""
    names: list[str] = inputs.get("patches", "").split()
    series = inputs.get("series", "").strip()
    if series:
        series_file = _find_patch(series, workspace, workdir, patch_dirs, step)
        for raw in series_file.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                names.append(line)
    if not names:
        raise BuildError("patch: no 'patches' or 'series' given", where=step)
    cwd = host_path(workspace, workdir)
    strip = inputs.get("strip-components", "1") or "1"
    fuzz = inputs.get("fuzz", "2") or "2"
    for name in names:
        path = _find_patch(name, workspace, workdir, patch_dirs, step)
        if progress:
            progress(f"{step}: applying {name}")
        with path.open("rb") as handle:
            result = subprocess.run(
                ["patch", f"-p{strip}", f"--fuzz={fuzz}", "--verbose", "--batch", "--forward"],
                stdin=handle,
                cwd=cwd,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise BuildError(f"patch {name} does not apply:\n{tail}", where=step)


def _find_patch(name: str, workspace: Path, workdir: str, dirs: list[Path], step: str) -> Path:
    if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
        raise UnsafePathError(f"patch path {name!r} must be relative and stay inside", where=step)
    for base in [*dirs, host_path(workspace, workdir), workspace]:
        candidate = base / name
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in [*dirs, host_path(workspace, workdir)])
    raise BuildError(f"patch file {name!r} not found (searched {searched})", where=step)
