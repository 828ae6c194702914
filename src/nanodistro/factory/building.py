"""The build side of a factory cycle: monitor -> bump -> build (+ tests) -> dependents.

Every recipe is considered in build order each cycle, and nothing is rebuilt that has not
changed: a recipe whose packages are published from the same recipe bytes is ``unchanged``
without a job. What must be rebuilt because a dependency changed gets an epoch bump first (a
new package version; the same version with other bytes would be a different package under one
name). The decision is made from what the last successful build of the recipe was built
against (its *triggers*, recorded in its ``build-succeeded`` event), so a crashed or repeated
cycle decides the same way.

A dependency change forces a rebuild of a recipe that
- embeds the dependency statically (the dependency ships ``.a`` archives and is in the
  recipe's build environment),
- links a soname the dependency provides (the set of those sonames changed), or
- lists the dependency's package or recipe in ``[rebuild-on]`` of nanodistro.toml.
Every other recipe whose runtime closure holds a changed package has its tests re-run against
the new package (``retest_dependents``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.crashpoints import crash_point
from nanodistro.factory.gitcommit import bump_message, commit_paths
from nanodistro.factory.records import last_event, record_release
from nanodistro.factory.resume import PendingBump, begin_bump, end_bump
from nanodistro.factory.workspace import Workspace
from nanodistro.graph.graph import DependencyGraph
from nanodistro.util.progress import Progress, prefixed

_LOG_PATH = re.compile(r"last lines of (\S+?):")


@dataclass
class BuildOutcome:
    recipe: str
    version: str  # full version (after any epoch bump)
    status: str  # built | unchanged | failed | skipped
    error: str = ""
    log_path: str = ""
    packages: list[str] = field(default_factory=list)  # package names the recipe makes
    rebuild_reason: str = ""  # why a dependency change made it rebuild (epoch bump)
    seconds: float = 0.0


@dataclass
class TestOutcome:
    recipe: str
    against: list[str]  # the changed package files it was tested with
    status: str  # passed | failed
    error: str = ""
    log_path: str = ""


def log_path_of(error: str) -> str:
    """The build log a builder error names (``last lines of <log>:``), if any."""
    match = _LOG_PATH.search(error)
    return match.group(1) if match else ""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recipe_digest(path: Path) -> str:
    """The builder's recipe hash: the file and its ``<dir>/<name>/`` source files."""
    from nanodistro.builder.orchestrate import recipe_hash
    from nanodistro.recipe.model import load_recipe

    return recipe_hash(path, load_recipe(path))


# ------------------------------------------------------------------------- monitor + bump


@dataclass
class BumpOutcome:
    recipe: str
    old: str
    new: str
    status: str  # bumped | failed
    commit: str = ""
    retired: list[str] = field(default_factory=list)
    error: str = ""


def monitor(
    workspace: Workspace,
    state: Any,
    cache_dir: Path,
    say: Progress,
    recipes: Collection[str] | None = None,
) -> tuple[list[Any], list[str]]:
    """Check every recipe's upstream (``recipes``: only those, e.g. the ones a webhook named);
    record releases seen (once each). Returns the check results and one line per monitor error
    (an unreachable upstream never stops the cycle)."""
    from nanodistro.monitor import models as m
    from nanodistro.monitor.check import RECIPE_TIMEOUT, check_paths

    paths = workspace.recipe_files()
    if recipes is not None:
        paths = [p for p in paths if p.stem in set(recipes)]
    say(f"monitor: checking {len(paths)} recipes")
    deadline = workspace.monitor_deadline or RECIPE_TIMEOUT
    results = (
        check_paths(paths, cache_dir=cache_dir, force=True, recipe_timeout=deadline)
        if paths
        else []
    )
    problems = []
    for result in results:
        if result.status == m.ERROR:
            problems.append(f"{result.name}: {result.message}")
            continue
        seen = result.next_version or (result.latest if result.status == m.UP_TO_DATE else None)
        if seen is None:
            continue
        if record_release(state, result.name, seen, result.kind or "", result.latest_published_at):
            published = result.latest_published_at
            events.record(
                state,
                events.RELEASE_DETECTED,
                f"recipe:{result.name}",
                {
                    "version": seen,
                    "current": result.current,
                    "provider": result.kind,
                    "published_at": published.isoformat() if published else None,
                    "url": result.latest_url,
                },
            )
            if result.status == m.UPDATE:
                say(f"monitor: {result.name} {result.current} -> {seen} upstream")
    return results, problems


def bump_updates(
    workspace: Workspace, state: Any, results: list[Any], *, git: bool, say: Progress
) -> list[BumpOutcome]:
    """Bump each recipe the monitor found an update for; a git commit per bump when the
    workspace is a git work tree. A failed bump leaves its recipe as it was."""
    from nanodistro.monitor import models as m
    from nanodistro.monitor.bump import bump_recipe
    from nanodistro.recipe.model import load_recipe

    outcomes = []
    for result in results:
        if result.status != m.UPDATE or result.path is None or result.next_version is None:
            continue
        path = Path(result.path)
        entry = None
        try:
            # journal first: a cycle killed after the rewrite finishes the bump (resume.py)
            old_full = load_recipe(path).package.full_version
            entry = begin_bump(workspace, PendingBump(result.name, str(path), old_full))
            bumped = bump_recipe(
                path,
                result.next_version,
                source_cache=workspace.source_cache,
                mirrors=workspace.mirrors,
                progress=say,
            )
        except NanodistroError as error:
            if entry is not None:
                end_bump(entry)
            outcomes.append(
                BumpOutcome(
                    result.name, result.current, result.next_version, "failed", error=str(error)
                )
            )
            say(f"FAILED bump {result.name}: {str(error).splitlines()[0]}")
            continue
        crash_point("after-bump")
        retired = [p.name for p in bumped.removed_patches]
        old = f"{bumped.old_version}-r{bumped.old_epoch}"
        new = f"{bumped.new_version}-r{bumped.new_epoch}"
        commit = ""
        if git:
            touched = [path, *bumped.removed_patches, *_series_files(path, result.name)]
            commit = (
                commit_paths(workspace.root, touched, bump_message(result.name, old, new, retired))
                or ""
            )
        events.record(
            state,
            events.RECIPE_BUMPED,
            f"recipe:{result.name}",
            {"old": old, "new": new, "retired_patches": retired, "commit": commit},
        )
        end_bump(entry)
        say(f"bump {result.name}: {old} -> {new}" + (f" (commit {commit[:12]})" if commit else ""))
        outcomes.append(BumpOutcome(result.name, old, new, "bumped", commit, retired))
    return outcomes


def _series_files(recipe: Path, name: str) -> list[Path]:
    folder = recipe.parent / name
    return [folder] if folder.is_dir() else []


# -------------------------------------------------------------------------------- triggers


def _apk_facts(
    path: Path, cache: dict[str, tuple[bool, frozenset[str]]]
) -> tuple[bool, frozenset[str]]:
    """(ships static archives, so: names provided) of a package file, cached by content."""
    from nanodistro.formats.apk import read_apk

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest not in cache:
        package = read_apk(data, where=str(path))
        static = any(e.path.endswith(".a") for e in package.entries)
        sonames = frozenset(
            p.split("=", 1)[0] for p in package.info.provides if p.startswith("so:")
        )
        cache[digest] = (static, sonames)
    return cache[digest]


def rebuild_triggers(
    graph: DependencyGraph,
    recipe: str,
    arch_dir: Path,
    rebuild_on: Mapping[str, list[str]],
    cache: dict[str, tuple[bool, frozenset[str]]],
) -> dict[str, str]:
    """What of its build dependencies the recipe's packages are tied to, per package name:
    ``static:<version>``, ``rebuild-on:<version>`` or ``soname:<names>``. A recipe whose
    triggers differ from those of its last build must be rebuilt."""
    from nanodistro.formats.pkginfo import apk_filename

    wanted_by_config = set(rebuild_on.get(recipe, []))
    uses = {d for p in graph.recipes[recipe].packages for d in p.runtime if d.startswith("so:")}
    triggers: dict[str, str] = {}
    for dep in sorted(graph.build_deps.get(recipe, ())):
        node = graph.recipes[dep]
        full = f"{node.version}-r{node.epoch}"
        for package in node.packages:
            file = arch_dir / apk_filename(package.name, full)
            if not file.is_file():
                continue
            static, sonames = _apk_facts(file, cache)
            if package.name in wanted_by_config or dep in wanted_by_config:
                triggers[package.name] = f"rebuild-on:{full}"
            elif static:
                triggers[package.name] = f"static:{full}"
            elif uses & sonames:
                triggers[package.name] = "soname:" + ",".join(sorted(uses & sonames))
    return triggers


def describe_trigger_change(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    changed = [
        f"{name} {old.get(name, '-').split(':', 1)[-1]} -> {new.get(name, '-').split(':', 1)[-1]}"
        f" ({(new.get(name) or old.get(name, '')).split(':', 1)[0]})"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
    return "rebuild for changed dependencies: " + "; ".join(changed)


def epoch_bump(
    workspace: Workspace,
    state: Any,
    path: Path,
    name: str,
    reason: str,
    *,
    git: bool,
    say: Progress,
) -> str:
    """Rewrite the recipe with its epoch + 1 (same upstream version); the new full version."""
    from nanodistro.monitor.bump import bump_recipe
    from nanodistro.recipe.model import load_recipe

    loaded = load_recipe(path).package
    version = loaded.version
    entry = begin_bump(workspace, PendingBump(name, str(path), loaded.full_version, reason))
    try:
        bumped = bump_recipe(
            path,
            version,
            source_cache=workspace.source_cache,
            mirrors=workspace.mirrors,
            progress=say,
        )
    except NanodistroError:
        end_bump(entry)
        raise
    crash_point("after-bump")
    old = f"{bumped.old_version}-r{bumped.old_epoch}"
    new = f"{bumped.new_version}-r{bumped.new_epoch}"
    commit = ""
    if git:
        commit = (
            commit_paths(workspace.root, [path], bump_message(name, old, new, reason=reason)) or ""
        )
    events.record(
        state,
        events.RECIPE_BUMPED,
        f"recipe:{name}",
        {"old": old, "new": new, "reason": reason, "commit": commit, "retired_patches": []},
    )
    end_bump(entry)
    say(f"epoch bump {name}: {old} -> {new} ({reason})")
    return new


# ---------------------------------------------------------------------------------- builds


@dataclass
class BuildPlan:
    """What the build step needs from the cycle."""

    workspace: Workspace
    state: Any
    arch: str
    config: Any  # builder BuildConfig
    run_jobs: Callable[[list[Any]], list[Any]]  # the executor: specs -> finished jobs
    git: bool
    say: Progress
    rebuild_on: Mapping[str, list[str]] = field(default_factory=dict)


def _graph(workspace: Workspace) -> DependencyGraph:
    from nanodistro.graph.corpus import load_corpus
    from nanodistro.graph.graph import DependencyGraph

    corpus = load_corpus(workspace.recipes_dir)
    return DependencyGraph(corpus.recipes)


def build_catalog(plan: BuildPlan) -> list[BuildOutcome]:
    """Every recipe, in waves of the build order: epoch-bump those a dependency change forces to
    rebuild, build (jobs) what is not published from the current recipe bytes. A wave's build
    jobs are submitted together (the executor runs them up to its concurrency bound); a recipe
    only needs recipes of earlier waves, which are published before its wave starts. Deciding
    (bumps, git commits, triggers) stays sequential and in build order, so the outcome does not
    depend on which build finishes first. One failure never stops the others; a recipe that
    needs a failed one fails naming it. Outcomes come in wave order (a build order)."""
    from nanodistro.builder.order import build_waves
    from nanodistro.recipe.model import load_recipe

    workspace, arch, say = plan.workspace, plan.arch, plan.say
    outcomes: list[BuildOutcome] = []
    loadable = []
    for path in workspace.recipe_files():
        try:
            load_recipe(path)
            loadable.append(path)
        except NanodistroError as error:
            name = path.name.removesuffix(".yaml")
            outcomes.append(BuildOutcome(name, "", "failed", error=str(error)))
            say(f"FAILED {name}: {str(error).splitlines()[0]}")
    try:
        waves = build_waves(loadable, arch)
    except NanodistroError as error:
        say(f"FAILED build order: {error}")
        return outcomes + [
            BuildOutcome(p.name.removesuffix(".yaml"), "", "failed", error=str(error))
            for p in loadable
        ]
    catalog = _CatalogBuild(plan, {o.recipe: o.recipe for o in outcomes})
    for number, wave in enumerate(waves, 1):
        jobs = [job for job in (catalog.plan_recipe(path) for path in wave) if job is not None]
        if jobs:
            names = ", ".join(outcome.recipe for outcome, _spec in jobs)
            say(f"build wave {number}/{len(waves)}: {names}")
            finished = plan.run_jobs([spec for _outcome, spec in jobs])
            for (outcome, _spec), job in zip(jobs, finished, strict=True):
                catalog.finish(outcome, job)
    return outcomes + catalog.outcomes


class _CatalogBuild:
    """The state ``build_catalog`` carries from wave to wave."""

    def __init__(self, plan: BuildPlan, failed: dict[str, str]) -> None:
        self.plan = plan
        self.arch_dir = plan.workspace.packages_dir / plan.arch
        self.failed = failed  # package or recipe name -> the failed recipe it comes from
        self.facts: dict[str, tuple[bool, frozenset[str]]] = {}
        self.graph: DependencyGraph | None = None
        self.outcomes: list[BuildOutcome] = []

    def plan_recipe(self, path: Path) -> tuple[BuildOutcome, Any] | None:
        """Decide one recipe: its outcome, and the build job to run (None: nothing to run)."""
        from nanodistro.builder.orchestrate import existing_build
        from nanodistro.factory.jobs import JobSpec, JobStore
        from nanodistro.formats.pkginfo import apk_filename
        from nanodistro.recipe.model import load_recipe

        plan, failed = self.plan, self.failed
        if self.graph is None:  # (re-)read after an epoch bump changed a node
            self.graph = _graph(plan.workspace)  # (not per recipe: that is O(n^2))
        graph = self.graph
        recipe = load_recipe(path)
        name = recipe.package.name
        full = recipe.package.full_version
        packages = [p.name for p in _compiled_packages(path, plan.arch)]
        outcome = BuildOutcome(name, full, "failed", packages=packages)
        self.outcomes.append(outcome)
        blockers = sorted({failed[d] for d in graph.build_deps.get(name, ()) if d in failed})
        if blockers:
            outcome.status, outcome.error = "skipped", f"needs {', '.join(blockers)} (failed)"
            failed.update(dict.fromkeys([name, *packages], name))
            return None
        triggers = rebuild_triggers(graph, name, self.arch_dir, plan.rebuild_on, self.facts)
        main_file = apk_filename(name, full)
        digest = recipe_digest(path)
        if (self.arch_dir / main_file).is_file():
            last = last_event(plan.state, f"recipe:{name}", [events.BUILD_SUCCEEDED], version=full)
            recorded = last.payload.get("triggers") if last else None
            if isinstance(recorded, dict) and recorded != triggers:
                reason = describe_trigger_change(recorded, triggers)
                try:
                    full = epoch_bump(
                        plan.workspace, plan.state, path, name, reason, git=plan.git, say=plan.say
                    )
                except NanodistroError as error:
                    outcome.error = f"epoch bump failed: {error}"
                    failed.update(dict.fromkeys([name, *packages], name))
                    return None
                outcome.version, outcome.rebuild_reason = full, reason
                self.graph = None
                main_file = apk_filename(name, full)
                digest = recipe_digest(path)
        spec = JobSpec(
            "build",
            {
                "recipe": name,
                "path": str(path),
                "arch": plan.arch,
                "version": full,
                "recipe_sha256": digest,
                "triggers": triggers,
            },
        )
        if not outcome.rebuild_reason and (
            existing_build(plan.workspace.packages_dir, plan.arch, main_file) == digest
        ):
            # published; unless a killed cycle left its job unfinished: that job is run (it
            # finds the package published) rather than left queued for good
            pending = JobStore(plan.state).get(spec.key)
            if pending is None or pending.done:
                outcome.status = "unchanged"
                return None
        return outcome, spec

    def finish(self, outcome: BuildOutcome, job: Any) -> None:
        if job.state == "succeeded":
            result = dict(job.result or {})
            outcome.status = str(result.get("status", "built"))
            outcome.seconds = float(result.get("seconds", 0.0))
            return
        outcome.error = job.error or "build failed"
        outcome.log_path = job.log_path or log_path_of(outcome.error)
        self.failed.update(dict.fromkeys([outcome.recipe, *outcome.packages], outcome.recipe))
        self.plan.say(f"FAILED {outcome.recipe}-{outcome.version}: {outcome.error.splitlines()[0]}")


def _compiled_packages(path: Path, arch: str) -> list[Any]:
    from nanodistro.builder.compile import compile_recipe
    from nanodistro.recipe.model import load_recipe

    return list(compile_recipe(load_recipe(path), arch).packages)


def published_files(result: Any) -> list[dict[str, str]]:
    """``{file, sha256}`` of each package a build result published (the job result's and the
    ``build-succeeded`` event's ``packages``)."""
    return [{"file": p.name, "sha256": file_sha256(p)} for p in result.published if p.is_file()]


def record_build_tests(state: Any, subject: str, version: str, tests: Sequence[Any]) -> None:
    """One ``test-passed``/``test-failed`` event per package test run by a build."""
    for test in tests:
        events.record(
            state,
            events.TEST_PASSED if test.passed else events.TEST_FAILED,
            subject,
            {"version": version, "package": test.package, "against": "build"},
        )


def build_handler(plan: BuildPlan) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The ``build`` job: build, test and publish one recipe (idempotent: a package already
    published from the same recipe bytes is not rebuilt, and publishing the same bytes again is
    a no-op)."""
    import time

    from nanodistro.builder.orchestrate import build_recipes
    from nanodistro.errors import BuildError
    from nanodistro.factory import joblog

    def on_log_line(step: str, line: str) -> None:
        crash_point("during-build")
        joblog.write(f"  {step}: {line}")

    def handle(inputs: dict[str, Any]) -> dict[str, Any]:
        name, version = inputs["recipe"], inputs["version"]
        subject = f"recipe:{name}"
        events.record(plan.state, events.BUILD_STARTED, subject, {"version": version})
        started = time.monotonic()
        try:
            (result,) = build_recipes(
                [Path(inputs["path"])],
                plan.config,
                progress=prefixed(plan.say, name),
                on_log_line=on_log_line,
            )
        except NanodistroError as error:
            events.record(
                plan.state,
                events.BUILD_FAILED,
                subject,
                {"version": version, "error": str(error), "log": log_path_of(str(error))},
            )
            raise
        if result.version != version:
            raise BuildError(
                f"the recipe says {result.version}, the job was for {version} "
                "(changed while queued)",
                where=inputs["path"],
            )
        published = published_files(result)
        record_build_tests(plan.state, subject, version, result.tests)
        status = "unchanged" if result.skipped else "built"
        events.record(
            plan.state,
            events.BUILD_SUCCEEDED,
            subject,
            {
                "version": version,
                "status": status,
                "triggers": inputs["triggers"],
                "packages": published,
                "log": str(result.log_dir or ""),
            },
        )
        crash_point("after-publish")
        return {"status": status, "published": published, "seconds": time.monotonic() - started}

    return handle


# --------------------------------------------------------------------------------- re-tests


def runtime_closure(graph: DependencyGraph, recipe: str) -> set[str]:
    """Package names a recipe's packages pull in at run time (within the catalog)."""
    seen: set[str] = set()
    todo = [d for p in graph.recipes[recipe].packages for d in p.runtime]
    while todo:
        for package in graph.resolve(todo.pop()):
            if package not in seen:
                seen.add(package)
                todo.extend(graph.package_runtime.get(package, ()))
    return seen


def retest_dependents(
    plan: BuildPlan, changed: Mapping[str, str], rebuilt: set[str]
) -> list[TestOutcome]:
    """Re-run the tests of every recipe (not itself changed) whose runtime closure holds a
    changed package, as test jobs run together; ``changed`` maps package name -> its new
    file."""
    from nanodistro.factory.jobs import JobSpec
    from nanodistro.formats.pkginfo import apk_filename

    graph = _graph(plan.workspace)
    arch_dir = plan.workspace.packages_dir / plan.arch
    outcomes = []
    specs = []
    for name in sorted(graph.recipes):
        if name in rebuilt:
            continue
        own = {p.name for p in graph.recipes[name].packages}
        hit = sorted((runtime_closure(graph, name) - own) & set(changed))
        if not hit:
            continue
        node = graph.recipes[name]
        full = f"{node.version}-r{node.epoch}"
        own_files = {
            f.name: file_sha256(f)
            for f in (arch_dir / apk_filename(p, full) for p in sorted(own))
            if f.is_file()
        }
        if not own_files:
            continue  # not built (a failure reported by the build step)
        against = {changed[p]: file_sha256(arch_dir / changed[p]) for p in hit}
        spec = JobSpec(
            "test",
            {
                "recipe": name,
                "path": node.path,
                "arch": plan.arch,
                "version": full,
                "recipe_sha256": recipe_digest(Path(node.path)),
                "packages": own_files,
                "against": against,
            },
        )
        specs.append(spec)
    # independent of each other (the repository is only read): submitted together
    for spec, job in zip(specs, plan.run_jobs(specs) if specs else [], strict=True):
        passed = job.state == "succeeded"
        outcome = TestOutcome(
            spec.inputs["recipe"], sorted(spec.inputs["against"]), "passed" if passed else "failed"
        )
        if not passed:
            outcome.error = job.error or "test failed"
            outcome.log_path = job.log_path or log_path_of(outcome.error)
        outcomes.append(outcome)
    return outcomes


def test_handler(plan: BuildPlan) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The ``test`` job: a recipe's tests against the working repository (its new packages)."""
    from nanodistro.builder.orchestrate import test_recipe

    def handle(inputs: dict[str, Any]) -> dict[str, Any]:
        subject = f"recipe:{inputs['recipe']}"
        payload = {"version": inputs["version"], "against": sorted(inputs["against"])}
        try:
            test_recipe(
                Path(inputs["path"]), plan.config, progress=prefixed(plan.say, inputs["recipe"])
            )
        except NanodistroError as error:
            events.record(
                plan.state,
                events.TEST_FAILED,
                subject,
                {**payload, "error": str(error), "log": log_path_of(str(error))},
            )
            raise
        events.record(plan.state, events.TEST_PASSED, subject, payload)
        return {"passed": True}

    return handle
