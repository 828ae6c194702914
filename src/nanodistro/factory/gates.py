"""The gates between staging and stable.

A staging state (a repository version plus each image's ``staging`` digest) is promoted only
when every build, test and smoke test of the change is green, the staging repository version
passes the consistency check (repo/consistency.py, the same as ``nanodistro repo check``), and
every policy hook agrees. Later issues extend ``POLICY_HOOKS`` (a vulnerability budget, a
signature policy...): a hook gets the ``GateInput`` and returns the reasons it blocks, if any.

Failures that are not part of the change do not block: a recipe whose new version failed to
build published nothing (staging still holds its previous package), and an image that failed to
build keeps its previous ``stable`` digest. A failure does block when the recipe builds against
or runs with a changed package: the change broke it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.building import BuildOutcome, TestOutcome, runtime_closure
from nanodistro.factory.catalog import ImageReport
from nanodistro.factory.vulnerabilities import vulnerability_policy
from nanodistro.factory.workspace import Workspace
from nanodistro.util.atomic import atomic_write_bytes


@dataclass
class GateInput:
    workspace: Workspace
    state: Any
    cycle: str
    staging: int
    stable: int | None
    changed_packages: dict[str, str]  # package name -> new file in staging
    builds: list[BuildOutcome]
    tests: list[TestOutcome]
    images: list[ImageReport]
    changed_images: dict[str, str]  # image -> staging digest that would become stable
    keyring: dict[str, bytes]
    toolchain: Any


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    log_path: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PolicyHook = Callable[[GateInput], list[str]]


def rolled_back_policy(gate: GateInput) -> list[str]:
    """An operator rolled stable back from this exact staging state: do not promote it again
    until something changes (a new repository version or image digest)."""
    for event in reversed(events.query(gate.state, subject="channel:stable")):
        if event.type == events.PROMOTED and event.payload.get("version") == gate.staging:
            return []
        if event.type == events.ROLLED_BACK and event.payload.get("from") == gate.staging:
            images = event.payload.get("from_images") or {}
            if all(images.get(n) == d for n, d in gate.changed_images.items()):
                return [f"repository version {gate.staging} was rolled back from stable"]
    return []


POLICY_HOOKS: list[PolicyHook] = [rolled_back_policy, vulnerability_policy]


def _blocking(gate: GateInput, outcome: BuildOutcome, graph: Any) -> bool:
    """Whether a failed or skipped recipe was broken by the change."""
    if outcome.rebuild_reason:
        return True
    if outcome.recipe not in graph.recipes:
        return False
    changed_recipes = {graph.package_recipe.get(p) for p in gate.changed_packages}
    changed_recipes.discard(outcome.recipe)
    if graph.build_deps.get(outcome.recipe, set()) & changed_recipes:
        return True
    return bool(runtime_closure(graph, outcome.recipe) & set(gate.changed_packages))


def evaluate(gate: GateInput, hooks: list[PolicyHook] | None = None) -> GateResult:
    from nanodistro.builder.environment import ToolchainIndex
    from nanodistro.factory.building import _graph
    from nanodistro.repo.consistency import check_repository
    from nanodistro.repo.versions import version_path

    reasons: list[str] = []
    logs: list[str] = []
    graph = _graph(gate.workspace)
    for build in gate.builds:
        if build.status in ("failed", "skipped") and _blocking(gate, build, graph):
            first = build.error.splitlines()[0] if build.error else build.status
            # the same words whether this cycle or an earlier one made the epoch bump, so a
            # repeated cycle records no second gate-blocked for the same failure
            reasons.append(f"build of {build.recipe}-{build.version} {build.status}: {first}")
            if build.log_path:
                logs.append(build.log_path)
    for test in gate.tests:
        if test.status != "passed":
            first = test.error.splitlines()[0] if test.error else "failed"
            reasons.append(
                f"tests of {test.recipe} against {', '.join(test.against)} failed: {first}"
            )
            if test.log_path:
                logs.append(test.log_path)
    for image in gate.images:
        if image.name in gate.changed_images and image.smoke.status not in ("passed", "none"):
            reasons.append(
                f"smoke test of image {image.name} ({image.digest[:19]}) {image.smoke.status}: "
                f"{(image.smoke.detail or image.smoke.output or '').splitlines()[:1]}"
            )
    try:
        reports = check_repository(
            version_path(gate.workspace.packages_dir, gate.staging),
            gate.keyring,
            host_provides=ToolchainIndex(gate.toolchain).satisfies,
        )
    except NanodistroError as error:
        reasons.append(f"consistency check of repository version {gate.staging}: {error}")
    else:
        for report in reports:
            for missing in report.missing:
                reasons.append(
                    f"repository version {gate.staging} ({report.arch}) is inconsistent: "
                    f"{json.dumps(missing.to_json(), sort_keys=True)}"
                )
    for hook in hooks if hooks is not None else POLICY_HOOKS:
        reasons.extend(hook(gate))
    result = GateResult(passed=not reasons, reasons=reasons)
    if reasons:
        report_file = gate.workspace.root / ".nanodistro" / "gates" / f"{gate.cycle}.json"
        report_file.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "cycle": gate.cycle,
            "staging": gate.staging,
            "stable": gate.stable,
            "reasons": reasons,
            "logs": logs,
            "changed_packages": gate.changed_packages,
            "changed_images": gate.changed_images,
        }
        atomic_write_bytes(report_file, (json.dumps(document, indent=2) + "\n").encode())
        result.log_path = logs[0] if logs else str(report_file)
    return result


def gate_file(workspace: Workspace, cycle: str) -> Path:
    return workspace.root / ".nanodistro" / "gates" / f"{cycle}.json"
