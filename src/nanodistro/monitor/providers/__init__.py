"""Upstream providers, one module per kind (see ``base.Provider``)."""

from __future__ import annotations

from types import ModuleType

from nanodistro.monitor.providers import (
    debian,
    git,
    github,
    gitlab,
    http_regex,
    npm,
    oci,
    pypi,
    release_monitoring,
)

PROVIDERS: dict[str, ModuleType] = {
    module.KIND: module
    for module in (release_monitoring, github, gitlab, git, oci, pypi, npm, http_regex, debian)
}
"""Provider module by ``UpdateConfig.monitor_kind()``."""

__all__ = ["PROVIDERS"]
