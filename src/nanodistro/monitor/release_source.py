"""The exact source file of a release, for upstreams that name it (Debian's archive).

Most upstreams give a version and the recipe's fetch URI is that version substituted into a
template. Debian's archive names the file itself, and the name does not follow the version
(``zlib_1.2.13.dfsg.orig.tar.bz2`` then ``zlib_1.3.dfsg+really1.3.1.orig.tar.gz``): ``bump``
asks the provider for the release it moves to and writes that file's path and checksum.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nanodistro.errors import MonitorError
from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import RecipeTarget, UpstreamRelease
from nanodistro.monitor.providers import PROVIDERS
from nanodistro.monitor.providers.base import Endpoints, ProviderConfig
from nanodistro.monitor.versions import prepare_releases

#: Providers whose releases carry the source file's URL and sha256 that bump must use.
EXACT_SOURCE_KINDS = ("debian",)
VERSION_VAR = "${{package.version}}"


async def _find(
    target: RecipeTarget, version: str, cache_dir: Path | None, endpoints: Endpoints
) -> UpstreamRelease:
    assert target.update is not None
    kind = target.update.monitor_kind()
    module = PROVIDERS[str(kind)]
    config = ProviderConfig(target=target, update=target.update, endpoints=endpoints)
    async with HttpClient(cache_dir=cache_dir) as client:
        releases = await module.versions(config, client)
    candidates = prepare_releases(releases, target.update, module.block(target.update))
    for candidate in candidates:
        if candidate.version == version:
            return candidate.release
    listed = ", ".join(c.version for c in candidates[:8]) or "none"
    raise MonitorError(
        f"the {kind} upstream has no release {version} (it lists: {listed})",
        where=str(target.path) if target.path else None,
    )


def exact_release(
    target: RecipeTarget,
    version: str,
    *,
    cache_dir: Path | None = None,
    endpoints: Endpoints | None = None,
) -> UpstreamRelease | None:
    """The release ``version`` of the recipe's upstream when it names its source file (None for
    other upstreams); MonitorError when that upstream does not have ``version``."""
    update = target.update
    if update is None or not update.enabled or update.monitor_kind() not in EXACT_SOURCE_KINDS:
        return None
    return asyncio.run(_find(target, version, cache_dir, endpoints or Endpoints.from_env()))


def archive_path(url: str) -> str | None:
    """``pool/...`` of an archive URL (the part every mirror shares), or None."""
    at = url.find("/pool/")
    return url[at + 1 :] if at >= 0 else None


def pinned_uri(raw_uri: str, rendered_uri: str, release_url: str, version: str) -> str | None:
    """The fetch URI to write so it names the release's file, or None when the recipe's URI
    already does. The recipe's base (``mirror://debian/``, a mirror's URL) is kept; the file
    keeps ``${{package.version}}`` where the version starts its upstream part, else literal."""
    path, old_path = archive_path(release_url), archive_path(rendered_uri)
    if path is None or old_path is None or path == old_path:
        return None
    at = raw_uri.find("/pool/")
    base = raw_uri[: at + 1] if at >= 0 and "${{" not in raw_uri[:at] else None
    if base is None:
        base = rendered_uri[: rendered_uri.find("/pool/") + 1]
    folder, _, name = path.rpartition("/")
    source, sep, rest = name.partition("_")
    # Where the upstream version stands in the name (first thing, or what "+really" names),
    # the recipe keeps the variable, as lint's version-not-in-fetch-uri asks.
    for lead in ("", "+really"):
        at = 0 if not lead else rest.find(lead + version)
        end = at + len(lead) + len(version)
        if sep and at >= 0 and rest[at:end] == lead + version and rest[end : end + 1] in ".+":
            rest = f"{rest[:at]}{lead}{VERSION_VAR}{rest[end:]}"
            break
    return f"{base}{folder}/{source}{sep}{rest}"
