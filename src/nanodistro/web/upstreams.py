"""Which recipes name an upstream: what a webhook ("owner/repo released v2.0") turns into a
monitor check of those recipes only.

A recipe names an upstream through its ``update:`` block (``github: identifier: owner/repo``,
``gitlab``, ``pypi``, ``npm``, ``oci``, ``release-monitor``, ``debian``, ``http-regex: url``), its
``git-checkout`` repositories and its ``fetch`` URIs (``mirror://NAME/...`` resolved with the
workspace's ``[mirrors]``). Each becomes a *key*: ``github:owner/repo`` (lower case: GitHub
names are case-insensitive) for anything on github.com, ``<provider>:<identifier>`` for the
other monitors, and the URL itself (normalised) otherwise.

A hook names an upstream as ``github:owner/repo`` (or another ``provider:identifier``), as a
URL (a github.com URL is the same as ``github:owner/repo``; any other URL matches recipes
fetching from it or below it), or as a recipe's name.

Recipe files are parsed once per (path, size, mtime): a workspace of 1,000 recipes answers a
delivery without re-reading all of them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nanodistro.errors import NanodistroError
from nanodistro.graph.scan import as_str, package_mapping
from nanodistro.monitor.recipes import iter_steps, parse_update, read_recipe_text
from nanodistro.recipe.substitute import substitute
from nanodistro.recipe.update import UpdateConfig
from nanodistro.recipe.yamlsource import load_data

__all__ = [
    "RecipeUpstreams",
    "UpstreamQuery",
    "github_key",
    "match",
    "parse_query",
    "recipe_upstreams",
    "workspace_upstreams",
]

log = logging.getLogger(__name__)

# hosts whose first two path segments are GitHub's owner/repo
_GITHUB_HOSTS = {"github.com", "www.github.com", "codeload.github.com", "raw.githubusercontent.com"}
# ``provider:identifier`` spellings a hook may use (the update: block's monitor names)
PROVIDERS = ("github", "gitlab", "pypi", "npm", "oci", "release-monitor")


@dataclass(frozen=True)
class RecipeUpstreams:
    """What one recipe file names: ``recipe`` is the file's stem (what runs and the monitor
    call a recipe), ``keys`` the provider keys, ``urls`` the normalised source URLs."""

    recipe: str
    package: str
    keys: frozenset[str]
    urls: frozenset[str]
    monitored: bool  # update.enabled: a check of it does something
    prereleases: bool = False  # update.enable-prerelease-tags

    def names(self, query: UpstreamQuery) -> bool:
        if query.key is not None and query.key in self.keys:
            return True
        if query.url is not None:
            prefix = query.url + "/"
            if any(u == query.url or u.startswith(prefix) for u in self.urls):
                return True
        return query.name is not None and query.name in (self.recipe, self.package)


@dataclass(frozen=True)
class UpstreamQuery:
    """A hook's upstream, parsed: at most one of key/url, and ``name`` for a bare word."""

    text: str
    key: str | None = None
    url: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.key or self.url or self.name or self.text


def github_key(owner_repo: str) -> str | None:
    """``github:owner/repo`` (lower case) for ``owner/repo``; None if it is not that shape."""
    parts = owner_repo.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        return None
    owner, repo = parts
    repo = repo.removesuffix(".git")
    if not repo or any(c.isspace() for c in owner + repo):
        return None
    return f"github:{owner.lower()}/{repo.lower()}"


def _normal_url(url: str) -> str | None:
    """``scheme://host/path`` with the host lower-cased, no query/fragment, no trailing slash
    or ``.git``; None when ``url`` is not an http(s)/git URL with a host."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https", "git", "ssh") or not host:
        return None
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    netloc = f"{host}:{port}" if port else host
    # http and https name the same upstream
    return f"https://{netloc}{path}"


def _url_github_key(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if host not in _GITHUB_HOSTS:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        return None
    return github_key(f"{segments[0]}/{segments[1]}")


def parse_query(text: str) -> UpstreamQuery:
    """A hook's ``upstream``: ``github:owner/repo`` (or ``gitlab:``, ``pypi:``... ), a URL,
    ``owner/repo`` (GitHub), or a recipe name."""
    text = text.strip()
    provider, sep, identifier = text.partition(":")
    if sep and provider.lower() in PROVIDERS and not identifier.startswith("//"):
        provider = provider.lower()
        if provider == "github":
            return UpstreamQuery(text, key=github_key(identifier) or f"github:{identifier.lower()}")
        return UpstreamQuery(text, key=f"{provider}:{_identifier(provider, identifier)}")
    if "://" in text:
        key = _url_github_key(text)
        if key is not None:
            return UpstreamQuery(text, key=key)
        return UpstreamQuery(text, url=_normal_url(text) or text)
    if "/" in text:  # recipe names have no slash: owner/repo is GitHub's spelling
        key = github_key(text)
        if key is not None:
            return UpstreamQuery(text, key=key)
    return UpstreamQuery(text, name=text)


def _identifier(provider: str, identifier: str) -> str:
    identifier = identifier.strip()
    if provider == "pypi":  # PEP 503 normalisation: Foo_Bar and foo-bar are one project
        return re.sub(r"[-_.]+", "-", identifier).lower()
    if provider == "gitlab":
        return identifier.strip("/").lower()
    return identifier


def _update_keys(update: UpdateConfig | None) -> tuple[set[str], set[str]]:
    keys: set[str] = set()
    urls: set[str] = set()
    if update is None:
        return keys, urls
    if update.github is not None:
        key = github_key(update.github.identifier)
        if key:
            keys.add(key)
    if update.gitlab is not None:
        keys.add(f"gitlab:{_identifier('gitlab', update.gitlab.identifier)}")
    if update.pypi is not None:
        keys.add(f"pypi:{_identifier('pypi', update.pypi.identifier)}")
    if update.npm is not None:
        keys.add(f"npm:{update.npm.identifier.strip()}")
    if update.oci is not None:
        keys.add(f"oci:{update.oci.identifier.strip()}")
    if update.release_monitor is not None:
        keys.add(f"release-monitor:{update.release_monitor.identifier}")
    if update.debian is not None:
        keys.add(f"debian:{update.debian.identifier.strip()}")
    if update.http_regex is not None:
        url = _normal_url(update.http_regex.url)
        if url:
            urls.add(url)
    return keys, urls


def _source_urls(document: Mapping[str, Any], mirrors: Mapping[str, str]) -> list[str]:
    """The git-checkout repositories and fetch URIs of the recipe's pipelines (subpackages'
    too), substituted as far as the recipe's own variables go."""
    from nanodistro.builder.mirrors import SCHEME

    mapping = package_mapping(document)
    steps = list(iter_steps(document.get("pipeline")))
    subpackages = document.get("subpackages")
    if isinstance(subpackages, list):
        for sub in subpackages:
            if isinstance(sub, Mapping):
                steps.extend(iter_steps(sub.get("pipeline")))
    found = []
    for step in steps:
        inputs = step.get("with")
        if not isinstance(inputs, Mapping):
            continue
        raw = {"git-checkout": inputs.get("repository"), "fetch": inputs.get("uri")}.get(
            as_str(step.get("uses"))
        )
        if raw is None:
            continue
        url = substitute(as_str(raw), mapping, keep_unknown=True)
        if url.startswith(SCHEME):  # only the workspace's mirrors: never the host's apt config
            name, _, rest = url[len(SCHEME) :].partition("/")
            base = mirrors.get(name)
            if not base:
                continue
            url = f"{base.rstrip('/')}/{rest}"
        found.append(url)
    return found


def recipe_upstreams(path: Path, mirrors: Mapping[str, str] | None = None) -> RecipeUpstreams:
    """What the recipe at ``path`` names; a RecipeError when it does not parse."""
    where = str(path)
    document = load_data(read_recipe_text(path), where)
    if not isinstance(document, Mapping):
        document = {}
    package = document.get("package")
    name = as_str(package.get("name")) if isinstance(package, Mapping) else ""
    update = parse_update(document.get("update"), where)
    keys, urls = _update_keys(update)
    for url in _source_urls(document, mirrors or {}):
        key = _url_github_key(url)
        if key:
            keys.add(key)
        normal = _normal_url(url)
        if normal:
            urls.add(normal)
    return RecipeUpstreams(
        recipe=path.stem,
        package=name or path.stem,
        keys=frozenset(keys),
        urls=frozenset(urls),
        monitored=update is not None and update.enabled,
        prereleases=update is not None and update.enable_prerelease_tags,
    )


_cache: dict[Path, tuple[tuple[int, int, tuple[tuple[str, str], ...]], RecipeUpstreams]] = {}
_cache_lock = threading.Lock()


def workspace_upstreams(
    paths: Iterable[Path], mirrors: Mapping[str, str] | None = None
) -> list[RecipeUpstreams]:
    """Every readable recipe's upstreams (a recipe that does not parse is skipped and logged:
    one broken file must not stop a delivery for the others)."""
    mirror_items = tuple(sorted((mirrors or {}).items()))
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamp = (stat.st_mtime_ns, stat.st_size, mirror_items)
        with _cache_lock:
            cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            found.append(cached[1])
            continue
        try:
            upstreams = recipe_upstreams(path, dict(mirror_items))
        except NanodistroError as error:
            log.warning("webhook matching skips %s: %s", path, error)
            continue
        with _cache_lock:
            _cache[path] = (stamp, upstreams)
        found.append(upstreams)
    return found


def match(query: UpstreamQuery, recipes: Iterable[RecipeUpstreams]) -> list[RecipeUpstreams]:
    """The recipes naming ``query``'s upstream, by recipe name."""
    return sorted((r for r in recipes if r.names(query)), key=lambda r: r.recipe)
