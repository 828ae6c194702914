"""Image references: ``[host[:port]/]path[:tag][@digest]``.

Follows the grammar of distribution's ``reference`` package (distribution/reference/regexp.go)
and Docker's normalisation (reference/normalize.go): a first path component without ``.`` or ``:``
that is not ``localhost`` is a Docker Hub repository, so ``alpine`` means
``docker.io/library/alpine:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nanodistro.errors import RegistryError

DOCKER_HUB = "docker.io"
# Docker Hub's API lives on another host than its name (as docker/cli registry.IndexServer).
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_SHA256_HEX = re.compile(r"[a-f0-9]{64}")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``tag`` and ``digest`` may both be set (the digest wins)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the registry API."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def hostname(self) -> str:
        """The registry host without port (IPv6 literals without brackets)."""
        host = self.registry
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def name(self) -> str:
        """``registry/repository``, the name cosign and skopeo print."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest if set, else the tag (default ``latest``)."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def validate_digest(digest: str, *, where: str | None = None) -> str:
    """Return ``digest`` if it is ``algorithm:encoded`` (sha256 must be 64 lowercase hex)."""
    if not _DIGEST_RE.fullmatch(digest):
        raise RegistryError(
            f"invalid digest {digest!r} (expected algorithm:hex, e.g. sha256:<64 hex>)",
            where=where,
        )
    algorithm, encoded = digest.split(":", 1)
    if algorithm == "sha256" and not _SHA256_HEX.fullmatch(encoded):
        raise RegistryError(f"invalid sha256 digest {digest!r} (expected 64 hex)", where=where)
    return digest


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; raise RegistryError naming the part that is wrong."""
    original = text
    if not text or text != text.strip():
        raise RegistryError("empty reference or surrounding whitespace", where=repr(original))
    if "://" in text:
        raise RegistryError(
            "a reference has no URL scheme (write host[:port]/repo[:tag])", where=original
        )
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        validate_digest(digest, where=original)
    tag = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise RegistryError(
                f"invalid tag {tag!r} (expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})",
                where=original,
            )
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, rest
        if not _DOMAIN_RE.fullmatch(registry):
            raise RegistryError(f"invalid registry host {registry!r}", where=original)
    else:
        registry, path = DOCKER_HUB, text
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _PATH_RE.fullmatch(path):
        hint = " (repository names must be lowercase)" if path.lower() != path else ""
        raise RegistryError(f"invalid repository name {path!r}{hint}", where=original)
    if len(path) > _MAX_NAME:
        raise RegistryError(f"repository name longer than {_MAX_NAME} characters", where=original)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)
