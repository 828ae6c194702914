"""The ``package:`` block and the per-package parts that subpackages share with it.

Copyright entries, declared dependencies, package options, scriptlets, checks, CPE, file
capabilities and resource hints appear both in ``package:`` and in each ``subpackages:`` entry;
:class:`PackageInfo` and :class:`Subpackage` are assembled from them here. Values stay
unsubstituted text; ``timeout`` is checked as a Go duration by :mod:`nanodistro.recipe.loading`.
"""

from __future__ import annotations

import re

from pydantic import Field

from nanodistro.recipe.fields import Text, TextMap, _Model
from nanodistro.recipe.steps import PipelineStep, TestSpec

__all__ = [
    "Capability",
    "Checks",
    "Copyright",
    "Cpe",
    "Dependencies",
    "PackageInfo",
    "PackageOptions",
    "Resources",
    "Scriptlets",
    "Subpackage",
    "Trigger",
]


class Copyright(_Model):
    """One licence entry; each becomes a ``license =`` line, SPDX expression joined by AND."""

    license: Text
    paths: list[Text] = Field(default_factory=list)
    attestation: Text = ""
    license_path: Text = ""
    detection_override: Text = ""


class Dependencies(_Model):
    """Declared runtime deps, provides and replaces (merged with SCA results at build time)."""

    runtime: list[Text] = Field(default_factory=list)
    provides: list[Text] = Field(default_factory=list)
    replaces: list[Text] = Field(default_factory=list)
    provider_priority: Text = ""
    replaces_priority: Text = ""


class PackageOptions(_Model):
    """Switches that drop generated provides/depends (melange ``PackageOption``)."""

    no_provides: bool = False
    no_depends: bool = False
    no_commands: bool = False
    no_versioned_shlib_deps: bool = False


class Trigger(_Model):
    """apk trigger: ``script`` runs when files under ``paths`` change."""

    script: Text = ""
    paths: list[Text] = Field(default_factory=list)


class Scriptlets(_Model):
    """Install scripts stored as control files (``.pre-install`` …)."""

    trigger: Trigger | None = None
    pre_install: Text = ""
    post_install: Text = ""
    pre_deinstall: Text = ""
    post_deinstall: Text = ""
    pre_upgrade: Text = ""
    post_upgrade: Text = ""


class Checks(_Model):
    """Package linters disabled for this (sub)package."""

    disabled: list[Text] = Field(default_factory=list)
    enabled: list[Text] = Field(default_factory=list)


class Cpe(_Model):
    """CPE parts used to match NVD records."""

    part: Text = ""
    vendor: Text = ""
    product: Text = ""
    edition: Text = ""
    language: Text = ""
    sw_edition: Text = Field("", alias="sw_edition")
    target_sw: Text = Field("", alias="target_sw")
    target_hw: Text = Field("", alias="target_hw")
    other: Text = ""


class Capability(_Model):
    """File capabilities written as ``security.capability`` xattrs."""

    path: Text
    add: TextMap = Field(default_factory=dict)
    reason: Text = ""


class Resources(_Model):
    """Resource hints for VM/cluster runners."""

    cpu: Text = ""
    cpumodel: Text = ""
    memory: Text = ""
    disk: Text = ""


_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^\d+$")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class PackageInfo(_Model):
    """The ``package:`` block."""

    name: Text
    version: Text
    epoch: int = Field(0, ge=0)
    description: Text = ""
    url: Text = ""
    commit: Text = ""
    annotations: TextMap = Field(default_factory=dict)
    target_architecture: list[Text] = Field(default_factory=list)
    copyright: list[Copyright] = Field(default_factory=list)
    dependencies: Dependencies = Field(default_factory=Dependencies)
    options: PackageOptions | None = None
    scriptlets: Scriptlets | None = None
    checks: Checks = Field(default_factory=Checks)
    cpe: Cpe | None = None
    setcap: list[Capability] = Field(default_factory=list)
    timeout: Text = ""
    resources: Resources | None = None
    test_resources: Resources | None = None

    @property
    def full_version(self) -> str:
        """``<version>-r<epoch>``."""
        return f"{self.version}-r{self.epoch}"

    @property
    def timeout_seconds(self) -> float | None:
        """``timeout`` (a Go duration like ``1h30m``, or nanoseconds) in seconds."""
        if not self.timeout:
            return None
        if self.timeout.isdigit():
            return int(self.timeout) / 1e9
        return sum(
            float(number) * _DURATION_UNITS[unit]
            for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", self.timeout)
        )

    def license_expression(self) -> str:
        """SPDX expression of all copyright entries (joined with AND, as melange's SBOM does)."""
        licenses = [entry.license for entry in self.copyright if entry.license]
        if len(licenses) <= 1:
            return licenses[0] if licenses else ""
        return " AND ".join(f"({lic})" if " " in lic else lic for lic in licenses)


class Subpackage(_Model):
    """One ``subpackages:`` entry (before ``range`` expansion and substitution)."""

    name: Text
    if_: Text = Field("", alias="if")
    range_: Text = Field("", alias="range")
    description: Text = ""
    url: Text = ""
    commit: Text = ""
    annotations: TextMap = Field(default_factory=dict)
    copyright: list[Copyright] = Field(default_factory=list)
    dependencies: Dependencies = Field(default_factory=Dependencies)
    options: PackageOptions | None = None
    scriptlets: Scriptlets | None = None
    checks: Checks = Field(default_factory=Checks)
    setcap: list[Capability] = Field(default_factory=list)
    pipeline: list[PipelineStep] = Field(default_factory=list)
    test: TestSpec | None = None
