"""A release's source for a bump, through the builder's own fetch, cache and extraction.

A bump needs what a build needs (the same bytes, checked the same way), only earlier: so it
calls ``build.sources`` instead of keeping a second downloader, cache layout, safe extractor
and git client. What differs is only that a bump has no pin yet: it fetches with
``expected-none`` and reads the digests that the recipe will be pinned to.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nanodistro.builder.cache import SourceCache
from nanodistro.builder.sources import GUEST_HOME, extract_tarball, fetch, git_checkout
from nanodistro.util.progress import Progress


@dataclass(frozen=True)
class Download:
    path: Path
    sha256: str
    sha512: str


def download(
    uri: str,
    cache: SourceCache,
    *,
    step: str,
    retries: int = 5,
    progress: Progress | None = None,
    mirrors: Mapping[str, str] | None = None,
) -> Download:
    """Fetch ``uri`` into ``cache`` (reused when already there, keyed by URI) and digest it.
    A ``mirror://`` URI is resolved with ``mirrors`` and cached under its ``mirror://`` form."""
    inputs = {
        "uri": uri,
        "expected-none": "true",  # the digests are what the bump is about to write
        "extract": "false",
        "delete": "true",
        "retry-limit": str(retries),
    }
    with tempfile.TemporaryDirectory(prefix="nanodistro-bump-fetch-") as workspace:
        record = fetch(
            inputs,
            workspace=Path(workspace),
            workdir=GUEST_HOME,
            cache=cache,
            step=step,
            progress=progress,
            mirrors=mirrors,
        )
    # Also file the object under its digests: the recipe is about to be pinned to them, and
    # the build's fetch looks pinned sources up by digest, so the next build needs no network.
    path = cache.store(cache.url_path(uri), {"sha256": record.sha256, "sha512": record.sha512})
    return Download(path, record.sha256, record.sha512)


def extract(archive: Path, destination: Path, *, strip_components: int, where: str) -> None:
    """Unpack a source tarball as the build will (``tar -x --strip-components``, unsafe
    entries refused). Zip archives are not accepted, as melange's ``fetch`` (tar) does not."""
    destination.mkdir(parents=True, exist_ok=True)
    extract_tarball(archive, destination, strip_components=strip_components, where=where)


def checkout(
    repository: str,
    tag: str,
    destination: Path,
    cache: SourceCache,
    *,
    step: str,
    expected_commit: str = "",
    progress: Progress | None = None,
) -> None:
    """Check out ``tag`` of ``repository`` into ``destination`` through the cached mirror, as the
    build's ``git-checkout`` does (verifying ``expected_commit`` when given)."""
    inputs = {"repository": repository, "tag": tag, "destination": destination.name}
    if expected_commit:
        inputs["expected-commit"] = expected_commit
    git_checkout(
        inputs,
        workspace=destination.parent,
        workdir=GUEST_HOME,
        cache=cache,
        step=step,
        source_date_epoch=0,  # no cherry-picks are made here
        progress=progress,
    )
