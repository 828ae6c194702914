"""The one exception hierarchy of nanodistro.

Every error a user can cause (bad input, failed verification, unreachable upstream) is a
``NanodistroError``. Its message names *where* (file, line, field) and *what was expected*; the
CLI prints ``str(error)`` on one line and exits non-zero, never a traceback.
"""

from __future__ import annotations


class NanodistroError(Exception):
    """Base class. ``where`` is a file/URL/reference; ``line`` and ``field`` narrow it down."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.where = where
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        location = ""
        if self.where:
            location = str(self.where)
            if self.line is not None:
                location += f":{self.line}"
        if self.field:
            location = f"{location}: {self.field}" if location else self.field
        return f"{location}: {self.message}" if location else self.message


class FormatError(NanodistroError):
    """Bytes or text that do not follow the format they claim (truncated gzip, bad tar, bad line)."""


class VersionError(FormatError):
    """An invalid APK version string or dependency atom."""


class UnsafePathError(FormatError):
    """An archive entry that would escape its root (``..``, absolute path, outside symlink, device)."""


class SignatureError(NanodistroError):
    """A missing, untrusted or invalid signature."""


class TrustError(SignatureError):
    """Output from a worker that the control plane does not trust: an unknown or revoked worker,
    a bad MAC, output sealed for another job, or content that is not what the job asked for."""


class ChecksumError(NanodistroError):
    """Content whose digest differs from the one it was published or pinned with."""


class KeyLoadError(NanodistroError):
    """A signing or verification key that cannot be loaded or used."""


class RepositoryError(NanodistroError):
    """A repository operation that would break an invariant (e.g. overwrite a published file)."""


class ConsistencyError(RepositoryError):
    """Publishing would leave a dependency without a provider (``repo/consistency.py``);
    ``missing`` holds each one (``MissingDependency``)."""

    def __init__(
        self, message: str, *, where: str | None = None, missing: list[object] | None = None
    ) -> None:
        super().__init__(message, where=where)
        self.missing = missing or []


class AdvisoryError(NanodistroError):
    """An advisory document (Wolfi schema 2) that breaks a rule; ``rule`` names the rule."""

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        where: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.rule = rule
        super().__init__(f"{message} [rule {rule}]", where=where, line=line, field=field)


class RecipeError(NanodistroError):
    """A melange recipe that is invalid (names file, line and key)."""


class ConfigError(NanodistroError):
    """An image config, workspace config or pipeline definition that is invalid."""


class ResolveError(NanodistroError):
    """Package constraints that cannot be satisfied; the message explains the chain."""


class FetchError(NanodistroError):
    """A network or upstream failure (HTTP status, timeout, unexpected response shape)."""


class BuildError(NanodistroError):
    """A build step that failed; the message names the step, its last log lines and the log path."""


class SandboxError(BuildError):
    """The sandbox could not be set up or a sandboxed command was refused."""


class RegistryError(FetchError):
    """An OCI registry answered with an error or an unexpected document."""


class ImageError(NanodistroError):
    """An image could not be assembled or read (layout, lock file, missing package)."""


class MonitorError(FetchError):
    """A release monitor could not determine the upstream versions."""


class GraphError(NanodistroError):
    """A dependency graph problem, e.g. a cycle (the message lists its members)."""


class TransientError(NanodistroError):
    """A failure worth retrying as it is (a busy resource, a flaky service): the job executor
    retries it with backoff, like a ``FetchError``."""


class StateError(NanodistroError):
    """The factory's state database cannot be opened or used (``where`` is its URL, no password)."""
