"""What a build is given (``BuildConfig``) and what it produced (``BuildResult``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.builder import sources as src_mod
from nanodistro.builder.environment import InstalledPackage
from nanodistro.builder.package import BuiltPackage
from nanodistro.builder.runners import SandboxPolicy, Toolchain
from nanodistro.formats.signature import Keyring, SigningKey
from nanodistro.trust.ecdsa import EcdsaSigner
from nanodistro.util.host import host_arch


@dataclass
class BuildConfig:
    """Inputs of a build that are not in the recipe."""

    arch: str = field(default_factory=lambda: host_arch())
    repo: Path | None = None  # local repository to resolve from and publish to
    key: SigningKey | None = None
    keyring: Keyring | None = None
    extra_repos: list[str] = field(default_factory=list)  # more repositories (dirs or URLs)
    source_cache: Path | None = None
    pipeline_dirs: list[Path] = field(default_factory=list)
    toolchain: Toolchain = field(default_factory=Toolchain)
    workspace_dir: Path | None = None  # parent of per-build workspaces (default: temp dir)
    keep_workspace: bool = False
    # a failed build without keep_workspace keeps its logs (not its roots) for the factory's
    # run records; the CLI removes the whole workspace instead (nothing left behind silently)
    keep_failed_logs: bool = True
    # called when a sandboxed step fails, before the build fails (``build --debug``): the
    # caller may open a shell in that step's sandbox (FailedStep.open_shell)
    on_step_failure: Callable[[FailedStep], None] | None = None
    rebuild: bool = False
    run_tests: bool = True
    source_date_epoch: int | None = None
    step_timeout: float | None = 3600.0
    build_timeout: float | None = None
    build_options: list[str] = field(default_factory=list)
    namespace: str = "nanodistro"  # purl distro: formats.purl.DEFAULT_DISTRO
    mirrors: dict[str, str] = field(default_factory=dict)  # mirror://NAME/ bases (build/mirrors.py)
    sandbox: SandboxPolicy = field(default_factory=SandboxPolicy)  # build uid and limits
    allow_downgrade: bool = False  # accept an older repository index (resolve.replay)
    # ECDSA P-256 key (trust/ecdsa.EcdsaSigner) signing each published package's SLSA provenance
    # (builder/provenance.py); used by build_recipes in the control plane, never in a sandbox
    provenance_key: EcdsaSigner | None = None
    builder_id: str = ""  # provenance runDetails.builder.id (default: builder/provenance.py)


@dataclass
class FailedStep:
    """A sandboxed step that just failed: what it was, and a shell in its very sandbox (same
    root, mounts, environment and working directory) that returns its exit status."""

    label: str  # "[package] step"
    workdir: str
    log: Path
    open_shell: Callable[[], int]


@dataclass
class StepTiming:
    """How long one stage of a build took (``kind``: source, environment, build, package,
    test, publish; ``status``: ok, failed, interrupted)."""

    kind: str
    package: str
    step: str
    seconds: float
    status: str = "ok"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "package": self.package,
            "step": self.step,
            "seconds": round(self.seconds, 3),
            "status": self.status,
        }


@dataclass
class TestOutcome:
    package: str
    passed: bool
    steps: int


@dataclass
class BuildResult:
    """What building one recipe produced (``packages`` empty when ``skipped``)."""

    recipe_path: Path
    name: str
    version: str
    arch: str
    skipped: bool = False
    skip_reason: str = ""
    packages: list[BuiltPackage] = field(default_factory=list)
    source_date_epoch: int = 0
    workspace: Path | None = None
    log_dir: Path | None = None
    sources: list[src_mod.SourceRecord] = field(default_factory=list)
    toolchain: dict[str, str] = field(default_factory=dict)
    sandbox: dict[str, object] = field(default_factory=dict)  # uid and limits the steps ran with
    tests: list[TestOutcome] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    # the build root's packages with their checksums (provenance's resolved dependencies)
    environment_packages: list[InstalledPackage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published: list[Path] = field(default_factory=list)
    steps: list[StepTiming] = field(default_factory=list)
    seconds: float = 0.0  # the whole recipe, from loading it to publishing

    def package_seconds(self, name: str) -> float:
        """Time spent on package ``name``: its steps, its emission and its tests."""
        return sum(s.seconds for s in self.steps if s.package == name)

    def to_json(self) -> dict[str, object]:
        return {
            "recipe": str(self.recipe_path),
            "name": self.name,
            "version": self.version,
            "arch": self.arch,
            "skipped": self.skipped,
            "skip_reason": self.skip_reason,
            "source_date_epoch": self.source_date_epoch,
            "packages": [
                {
                    "name": p.info.name,
                    "version": p.info.version,
                    "file": p.filename,
                    "sha256": hashlib.sha256(p.data).hexdigest(),
                    "depends": p.info.depends,
                    "provides": p.info.provides,
                    "seconds": round(self.package_seconds(p.info.name), 3),
                }
                for p in self.packages
            ],
            "tests": [{"package": t.package, "passed": t.passed} for t in self.tests],
            "sources": [
                {"kind": s.kind, "uri": s.uri, "sha256": s.sha256, "commit": s.commit}
                for s in self.sources
            ],
            "toolchain": self.toolchain,
            "sandbox": self.sandbox,
            "environment": self.environment,
            "workspace": str(self.workspace) if self.workspace else None,
            "published": [str(p) for p in self.published],
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
            "steps": [s.to_json() for s in self.steps],
        }
