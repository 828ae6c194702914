"""Registry authentication: HTTP Basic and the Docker bearer-token flow.

The token flow is the one of the distribution spec's auth companion (distribution
docs/spec/auth/token.md): a request answered ``401`` with
``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` is retried with a token got
from ``GET realm?service=...&scope=...`` (Basic credentials on that request when we have them);
the answer is JSON with ``token`` or ``access_token``. Tokens are cached per scope set.

Credentials come from explicit arguments, else from ``$DOCKER_CONFIG/config.json`` (default
``~/.docker/config.json``) in docker's order: the ``credHelpers`` entry for the registry, else the
``credsStore`` helper (both run ``docker-credential-<name> get``, credhelpers.py), else the
``auths`` map — ``auth`` (base64 ``user:password``) or ``username``/``password``. The config is
read (and a helper run) only when the registry asks for credentials, so an anonymous registry
works whatever the config names.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from nanodistro.errors import RegistryError
from nanodistro.registry.credhelpers import run_helper
from nanodistro.registry.reference import DOCKER_HUB
from nanodistro.util.http import plain_http_allowed

_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*(?:,|$)')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge: scheme (lowercased) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """Parse ``Bearer realm="x",service="y",scope="repository:a:pull,push"`` (quoted values may
    contain commas)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if not match or match.end() == pos:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else (bare or "")
        params[match.group(1).lower()] = value
        pos = match.end()
    return Challenge(scheme=scheme.lower(), params=params)


def _config_key_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``index.docker.io`` (docker/cli ConvertToHostname)."""
    host = key
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    return host.split("/", 1)[0]


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def credentials_from_docker_config(registry: str, path: Path | None = None) -> Credentials | None:
    """The ``auths`` entry of a docker config.json for ``registry`` (host[:port]), if any."""
    path = path or docker_config_path()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"cannot read docker config: {exc}", where=str(path)) from None
    if not isinstance(document, dict):
        return None
    wanted = _HUB_ALIASES if registry in _HUB_ALIASES else frozenset({registry})
    from_helper = _credentials_from_helpers(document, registry, wanted, path)
    if from_helper is not None:
        return from_helper
    auths = document.get("auths")
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _config_key_host(str(key)) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password") is not None:
            return Credentials(str(entry["username"]), str(entry["password"]))
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, sep, password = base64.b64decode(encoded).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, sep, password = "", "", ""
            if not sep:
                raise RegistryError(
                    "auth is not base64 of user:password", where=str(path), field=f"auths.{key}"
                )
            return Credentials(user, password)
    return None


def _credentials_from_helpers(
    document: dict[str, object], registry: str, wanted: frozenset[str], path: Path
) -> Credentials | None:
    """What the ``credHelpers`` entry for ``registry``, else the ``credsStore``, answers."""
    # Docker Hub's credentials are stored under its v1 URL (docker/cli registry.IndexServer).
    server = "https://index.docker.io/v1/" if registry in _HUB_ALIASES else registry
    helper: tuple[str, str] | None = None
    helpers = document.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _config_key_host(str(key)) in wanted and isinstance(name, str) and name:
                helper = (name, f"credHelpers.{key}")
                break
    store = document.get("credsStore")
    if helper is None and isinstance(store, str) and store:
        helper = (store, "credsStore")
    if helper is None:
        return None
    found = run_helper(helper[0], server, config=path, field=helper[1])
    return Credentials(found.username, found.secret) if found else None


def repository_scope(repository: str, actions: Iterable[str]) -> str:
    return f"repository:{repository}:{','.join(actions)}"


class Authenticator:
    """Answers registry challenges and remembers what worked, so later requests skip the 401."""

    def __init__(
        self,
        registry: str,
        credentials: Credentials | Callable[[], Credentials | None] | None,
        *,
        insecure: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.registry = registry
        # A callable is asked once, at the first challenge: reading the docker config (and
        # running a credential helper) only when the registry wants credentials.
        self._lookup = credentials if callable(credentials) else None
        self._credentials = None if callable(credentials) else credentials
        self.insecure = insecure
        self.timeout = timeout
        self._basic = False
        self._tokens: dict[tuple[str, ...], str] = {}

    @property
    def credentials(self) -> Credentials | None:
        if self._lookup is not None:
            lookup, self._lookup = self._lookup, None
            self._credentials = lookup()
        return self._credentials

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header to send for a request needing ``scopes``, if known."""
        if self._basic and self.credentials:
            return self.credentials.basic_header()
        token = self._tokens.get(scopes)
        return f"Bearer {token}" if token else None

    def answer(self, response: httpx.Response, scopes: tuple[str, ...], http: httpx.Client) -> None:
        """Handle a 401: obtain what the challenge asks for, or raise RegistryError."""
        header = response.headers.get("WWW-Authenticate", "")
        challenge = parse_challenge(header)
        where = str(response.request.url)
        if challenge.scheme == "basic":
            if not self.credentials:
                raise RegistryError(
                    "registry requires a username and password (none given, and neither the "
                    "docker config.json nor its credential helpers have any for it)",
                    where=where,
                )
            if self._basic:
                raise RegistryError("registry refused the username/password", where=where)
            self._basic = True
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise RegistryError(f"unsupported authentication challenge {header!r}", where=where)
        wanted = list(scopes)
        if challenge.params.get("scope"):
            wanted += [s for s in challenge.params["scope"].split(" ") if s not in wanted]
        self._tokens[scopes] = self._fetch_token(challenge, wanted, http)

    def _fetch_token(self, challenge: Challenge, scopes: list[str], http: httpx.Client) -> str:
        realm = challenge.params["realm"]
        url = httpx.URL(realm)
        if url.scheme != "https" and not (
            url.scheme == "http" and plain_http_allowed(url.host, insecure=self.insecure)
        ):
            raise RegistryError(
                "refusing to fetch a token over plain http from a non-loopback host "
                "(pass insecure=True to allow)",
                where=realm,
            )
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params += [("scope", scope) for scope in scopes]
        headers = {}
        if self.credentials:
            headers["Authorization"] = self.credentials.basic_header()
        try:
            response = http.get(url, params=params, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise RegistryError(f"token request failed: {exc}", where=realm) from None
        if response.status_code in (401, 403):
            raise RegistryError(
                f"token server refused the credentials (HTTP {response.status_code})",
                where=realm,
            )
        if response.status_code != 200:
            raise RegistryError(f"token server answered HTTP {response.status_code}", where=realm)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(
                "token server answer has no 'token' or 'access_token' string", where=realm
            )
        return token
