"""``mirror://NAME/PATH`` source URIs, resolved to a base URL at fetch time.

Recipes that take pristine upstream tarballs from a distribution archive (Debian keeps them as
``pool/main/<x>/<src>/<src>_<ver>.orig.tar.*``) should not hard-code one mirror: the machine that
builds knows which mirror it may reach. Like Gentoo's ``mirror://`` and BitBake's ``PREMIRRORS``,
the name is looked up in the workspace's ``[mirrors]`` table first; for ``debian`` the host's own
apt configuration is the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from nanodistro.errors import FetchError

SCHEME = "mirror://"

# Where a mirror name points when the workspace's [mirrors] does not say: the archive's public
# address, for SBOMs (a document must name the same place on every machine, unlike the host's
# apt configuration, which is only a fallback for downloading).
PUBLIC_MIRRORS = {"debian": "https://deb.debian.org/debian"}
APT_SOURCE_FILES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))

_ONE_LINE_DEB = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+)\s+\S+\s+.*\bmain\b")
_DEB822_URIS = re.compile(r"^URIs:\s*(?P<uris>.+)$", re.IGNORECASE)


def is_mirror_uri(uri: str) -> bool:
    return uri.startswith(SCHEME)


def apt_source_texts(sources: tuple[Path, ...] = APT_SOURCE_FILES) -> list[tuple[Path, str]]:
    """The host's apt source files (``sources.list`` and ``sources.list.d/*.list|*.sources``)
    with their text, in apt's order; unreadable ones are left out."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if p.suffix in {".list", ".sources"}))
        elif source.is_file():
            files.append(source)
    texts = []
    for path in files:
        try:
            texts.append((path, path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    return texts


def apt_debian_mirror(sources: tuple[Path, ...] = APT_SOURCE_FILES) -> str | None:
    """The first Debian archive URI the host's apt is configured with, or None."""
    for _path, text in apt_source_texts(sources):
        for line in text.splitlines():
            line = line.strip()
            match = _ONE_LINE_DEB.match(line)
            if match and "/debian" in match["uri"] and "security" not in match["uri"]:
                return match["uri"].rstrip("/")
            match = _DEB822_URIS.match(line)
            if match:
                for uri in match["uris"].split():
                    if uri.rstrip("/").endswith("/debian"):
                        return uri.rstrip("/")
    return None


def resolve_mirror_uri(uri: str, mirrors: Mapping[str, str] | None = None) -> str:
    """Turn ``mirror://NAME/PATH`` into ``<base>/PATH``; other URIs are returned unchanged."""
    if not is_mirror_uri(uri):
        return uri
    name, _, path = uri[len(SCHEME) :].partition("/")
    base = (mirrors or {}).get(name)
    if base is None and name == "debian":
        base = apt_debian_mirror()
    if not base:
        raise FetchError(
            f"no mirror configured for {name!r}: add it to [mirrors] in nanodistro.toml",
            where=uri,
        )
    return f"{base.rstrip('/')}/{path}"


def upstream_url(uri: str, mirrors: Mapping[str, str] | None = None) -> str | None:
    """The URL an SBOM records for ``uri``: ``mirror://NAME/PATH`` under the ``[mirrors]`` base,
    else under the archive's public address (``PUBLIC_MIRRORS``), else None (nothing anyone
    could fetch); other URIs as they are. Never the host's apt configuration: the same
    workspace must give the same document, and so the same package bytes, on every machine."""
    if not is_mirror_uri(uri):
        return uri
    name, _, path = uri[len(SCHEME) :].partition("/")
    base = (mirrors or {}).get(name) or PUBLIC_MIRRORS.get(name)
    return f"{base.rstrip('/')}/{path}" if base else None
