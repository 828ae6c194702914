"""The recipe's ``update:`` block: how nanodistro finds new upstream releases.

Mirrors melange's ``config.Update`` (chainguard-dev/melange:pkg/config/config.go, docs/UPDATE.md);
keys keep their melange spelling (dashes) as aliases, Python attributes use underscores. nanodistro
adds monitors of its own: ``pypi``, ``npm``, ``http-regex`` and ``debian``. ``version_data`` (Chainguard's
data sources) is kept as free-form data; nanodistro does not act on it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "DebianMonitor",
    "GitHubMonitor",
    "GitLabMonitor",
    "GitMonitor",
    "HttpRegexMonitor",
    "NpmMonitor",
    "OciMonitor",
    "PypiMonitor",
    "ReleaseMonitor",
    "Schedule",
    "UpdateConfig",
    "VersionTransform",
]


def _scalar_to_str(value: Any) -> Any:
    # YAML reads `tag-filter-prefix: 2.0` as a number; melange decodes it into a Go string.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_to_str)]


class _Block(BaseModel):
    # melange decodes recipes strictly, so an unknown key is a typo worth reporting.
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class _TagFilters(_Block):
    strip_prefix: Text | None = Field(default=None, alias="strip-prefix")
    strip_suffix: Text | None = Field(default=None, alias="strip-suffix")
    tag_filter_prefix: Text | None = Field(default=None, alias="tag-filter-prefix")
    tag_filter_contains: Text | None = Field(default=None, alias="tag-filter-contains")


class VersionTransform(_Block):
    """A regex rewrite applied to candidate versions; ``replace`` uses Go's ``${1}`` syntax."""

    match: Text
    replace: Text


class Schedule(_Block):
    """Check at most once per ``period`` (lint rule ``valid-update-schedule``)."""

    period: Literal["daily", "weekly", "monthly"]
    reason: Text | None = None


class ReleaseMonitor(_Block):
    """release-monitoring.org (Anitya) project."""

    identifier: int
    strip_prefix: Text | None = Field(default=None, alias="strip-prefix")
    strip_suffix: Text | None = Field(default=None, alias="strip-suffix")
    version_filter_prefix: Text | None = Field(default=None, alias="version-filter-prefix")
    version_filter_contains: Text | None = Field(default=None, alias="version-filter-contains")


class GitHubMonitor(_TagFilters):
    """GitHub releases (or tags with ``use-tag``) of ``identifier`` = ``org/repo``."""

    identifier: Text
    use_tag: bool = Field(default=False, alias="use-tag")
    # Deprecated by melange: same meaning as tag-filter-prefix.
    tag_filter: Text | None = Field(default=None, alias="tag-filter")


class GitLabMonitor(_TagFilters):
    """GitLab releases (or tags with ``use-tag``) of ``identifier`` = ``group/project``."""

    identifier: Text
    use_tag: bool = Field(default=False, alias="use-tag")
    tag_filter: Text | None = Field(default=None, alias="tag-filter")


class GitMonitor(_TagFilters):
    """Tags of the recipe's first ``git-checkout`` repository."""


class OciMonitor(_TagFilters):
    """Tags of an OCI image reference."""

    identifier: Text


class PypiMonitor(_Block):
    """nanodistro addition: releases of a PyPI project."""

    identifier: Text


class NpmMonitor(_Block):
    """nanodistro addition: versions of an npm package."""

    identifier: Text


class DebianMonitor(_Block):
    """nanodistro addition: versions of a source package in a Debian archive's Sources index.

    ``identifier`` is the source package; ``suite`` defaults to the host's (``unstable``/``sid``
    sees new upstream releases first), ``archive`` to the host's apt mirror, ``keyring`` (the
    InRelease signers; ``none``: checksums only) to Debian's archive keyring.
    """

    identifier: Text
    suite: Text | None = None
    component: Text = "main"
    archive: Text | None = None
    keyring: Text | None = None


class HttpRegexMonitor(_Block):
    """nanodistro addition: versions scraped from a page (a download directory) by regex.

    ``pattern`` must have one capture group (or a group named ``version``) holding the version.
    """

    url: Text
    pattern: Text


class UpdateConfig(_Block):
    """melange ``update:`` plus nanodistro's ``pypi``/``npm``/``http-regex``/``debian`` monitors."""

    # Go's zero value: an update: block without `enabled: true` is not monitored (melange
    # schema.json marks it required).
    enabled: bool = False
    manual: bool = False
    require_sequential: bool = Field(default=False, alias="require-sequential")
    shared: bool = False
    version_separator: Text | None = Field(default=None, alias="version-separator")
    ignore_regex_patterns: list[Text] = Field(default_factory=list, alias="ignore-regex-patterns")
    version_transform: list[VersionTransform] = Field(
        default_factory=list, alias="version-transform"
    )
    enable_prerelease_tags: bool = Field(default=False, alias="enable-prerelease-tags")
    exclude_reason: Text | None = Field(default=None, alias="exclude-reason")
    schedule: Schedule | None = None
    release_monitor: ReleaseMonitor | None = Field(default=None, alias="release-monitor")
    github: GitHubMonitor | None = None
    gitlab: GitLabMonitor | None = None
    git: GitMonitor | None = None
    oci: OciMonitor | None = None
    version_data: dict[str, Any] | None = None
    pypi: PypiMonitor | None = None
    npm: NpmMonitor | None = None
    http_regex: HttpRegexMonitor | None = Field(default=None, alias="http-regex")
    debian: DebianMonitor | None = None

    def monitor_kind(self) -> str | None:
        """The configured upstream kind (provider module name), or None when there is none.

        When several are given, the first in melange's documented precedence wins.
        """
        for kind, block in (
            ("release_monitoring", self.release_monitor),
            ("github", self.github),
            ("gitlab", self.gitlab),
            ("git", self.git),
            ("oci", self.oci),
            ("pypi", self.pypi),
            ("npm", self.npm),
            ("http_regex", self.http_regex),
            ("debian", self.debian),
        ):
            if block is not None:
                return kind
        return None
