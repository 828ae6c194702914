"""One factory cycle: monitor -> bump -> build + tests -> publish -> snapshot -> staging ->
dependents -> images -> smoke -> gates -> promote, with events all along.

A cycle reconciles rather than replays: what it rebuilds, re-tests and promotes follows from
the workspace's files, the repository, the image layouts and the job/event records, never from
"what this process did so far". So a cycle killed at any point and started again finishes the
same work (jobs keyed by their inputs run once; publishing, snapshots, channel and tag moves are
idempotent), and the change a gate judges is always *staging compared with stable*.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.building import (
    BuildOutcome,
    BuildPlan,
    BumpOutcome,
    TestOutcome,
    build_catalog,
    build_handler,
    bump_updates,
    monitor,
    retest_dependents,
    test_handler,
)
from nanodistro.factory.catalog import (
    CatalogReport,
    RecipeReport,
    _toolchain,
    ensure_keys,
    provenance_signer,
    repository_packages,
)
from nanodistro.factory.crashpoints import crash_point
from nanodistro.factory.gates import GateInput, GateResult, evaluate
from nanodistro.factory.gitcommit import is_git_worktree
from nanodistro.factory.imagebuild import ImagePlan, build_images, image_handler, smoke_handler
from nanodistro.factory.imagesign import sign_unsigned_stable
from nanodistro.factory.joblog import teeing
from nanodistro.factory.promote import current_stable, promote, push_to_registry
from nanodistro.factory.records import last_event, record_package, record_recipe_version
from nanodistro.factory.reproducibility import ReproducibilityStatus, catalog_status, check_sample
from nanodistro.factory.resume import finish_bumps, finish_publishes
from nanodistro.factory.vulnerabilities import (
    VulnerabilityReport,
    publish_feeds,
    record_fixes,
    triage,
)
from nanodistro.factory.workspace import Workspace
from nanodistro.util.progress import Progress


@dataclass
class CycleReport:
    cycle: str
    workspace: str
    started: str
    seconds: float = 0.0
    monitored: bool = True
    git: bool = False
    monitor_errors: list[str] = field(default_factory=list)
    bumps: list[BumpOutcome] = field(default_factory=list)
    builds: list[BuildOutcome] = field(default_factory=list)
    tests: list[TestOutcome] = field(default_factory=list)
    repo_version: int | None = None  # the staging version this cycle judged
    stable_before: int | None = None
    channels: dict[str, int] = field(default_factory=dict)
    changed_packages: dict[str, str] = field(default_factory=dict)
    changed_images: dict[str, str] = field(default_factory=dict)
    gate: GateResult | None = None
    promoted: bool = False
    status: str = "up-to-date"  # promoted | gate-blocked | up-to-date | nothing-published
    events: int = 0
    notes: list[str] = field(default_factory=list)
    catalog: CatalogReport | None = None
    # the catalog's reproducible share (every check so far) and this cycle's sample
    reproducibility: ReproducibilityStatus | None = None
    # what the scan of stable found, advisories opened, fixes available/recorded
    vulnerabilities: VulnerabilityReport | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("promoted", "up-to-date") and (
            self.catalog is None or self.catalog.ok
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["catalog"] = self.catalog.to_json() if self.catalog else None
        data["ok"] = self.ok
        return data


def _keyring(workspace: Workspace, key_path: Path) -> dict[str, bytes]:
    from nanodistro.trust.keys import load_keyring, load_signing_key

    key = load_signing_key(key_path)
    keyring = dict(load_keyring(workspace.keys_dir))
    keyring.setdefault(key.keyname, key.public_pem())
    return keyring


def _build_config(
    workspace: Workspace, arch: str, key_path: Path, keyring: dict[str, bytes]
) -> Any:
    from nanodistro.builder.orchestrate import BuildConfig
    from nanodistro.trust.keys import load_signing_key

    builds = workspace.root / ".nanodistro" / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    return BuildConfig(
        arch=arch,
        repo=workspace.packages_dir,
        key=load_signing_key(key_path),
        keyring=keyring,
        source_cache=workspace.source_cache,
        toolchain=_toolchain(workspace),
        mirrors=dict(workspace.mirrors),
        namespace=workspace.name,
        workspace_dir=builds,  # a failed build's logs stay in the workspace
        provenance_key=provenance_signer(workspace),
    )


def _record_published(state: Any, workspace: Workspace, version: int) -> None:
    """``published`` for every package first seen in a repository version (once each)."""
    from nanodistro.builder.recipeinfo import recorded_recipe_hash
    from nanodistro.formats.apk import read_apk
    from nanodistro.repo.versions import read_version, version_path

    record = read_version(workspace.packages_dir, version)
    for arch, files in record.packages.items():
        for filename, sha in sorted(files.items()):
            path = version_path(workspace.packages_dir, version) / arch / filename
            apk = read_apk(path.read_bytes(), where=str(path))
            info = apk.info
            recipe_sha = recorded_recipe_hash(apk.extra_control)
            if info.name == (info.origin or info.name) and recipe_sha:
                record_recipe_version(
                    state,
                    recipe=info.name,
                    version=info.version,
                    recipe_sha256=recipe_sha,
                    repo_version=version,
                )
            if record_package(
                state,
                name=info.name,
                version=info.version,
                arch=arch,
                sha256=sha,
                recipe=info.origin or info.name,
                repo_version=version,
            ):
                events.record(
                    state,
                    events.PUBLISHED,
                    f"package:{info.name}",
                    {
                        "version": info.version,
                        "arch": arch,
                        "file": filename,
                        "sha256": sha,
                        "recipe": info.origin or info.name,
                        "repo_version": version,
                    },
                )


def _changed_packages(workspace: Workspace, staging: int, stable: int | None) -> dict[str, str]:
    """Package name -> file, for files in the staging version that stable does not hold."""
    from nanodistro.repo.versions import read_version

    new = read_version(workspace.packages_dir, staging).packages
    old = read_version(workspace.packages_dir, stable).packages if stable is not None else {}
    changed: dict[str, str] = {}
    for arch, files in new.items():
        for filename, sha in files.items():
            if old.get(arch, {}).get(filename) != sha:
                changed[_package_name(filename)] = filename
    return changed


def _package_name(filename: str) -> str:
    # name-version-rN.apk: the version starts at the second-to-last '-'
    return filename.removesuffix(".apk").rsplit("-", 2)[0]


def run_cycle(
    workspace: Workspace,
    state: Any,
    *,
    progress: Progress | None = None,
    monitor_upstreams: bool = True,
    concurrency: int | None = None,
    monitor_recipes: Collection[str] | None = None,
) -> CycleReport:
    """Run one cycle (``monitor_recipes``: check only these recipes' upstreams); failures of recipes, images and gates are in the report, never raised
    (only a broken workspace, key or state database raises). ``concurrency``: jobs at once
    (default: ``[executor] concurrency`` of nanodistro.toml, else the CPU count); each wave of
    builds, the re-tests, the image builds and the smoke tests each run that many at a time."""
    from nanodistro.factory.jobs import JobStore, LocalExecutor
    from nanodistro.repo.versions import channel_version, set_channel, snapshot

    # said from a job's thread, a line also goes to that job's log (factory/joblog.py)
    say = teeing(progress or (lambda _m: None))
    started = time.monotonic()
    cycle = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    report = CycleReport(cycle=cycle, workspace=str(workspace.root), started=cycle[:16])
    store = JobStore(state, log_dir=workspace.root / ".nanodistro" / "jobs")
    recovered = store.recover()
    if recovered:
        say(f"jobs: {len(recovered)} left running by a dead process are queued again")
    key_path, generated = ensure_keys(workspace, say)
    keyring = _keyring(workspace, key_path)

    # monitor -> bump (first the bumps a killed cycle left uncommitted)
    report.monitored = monitor_upstreams
    report.git = is_git_worktree(workspace.root)
    finish_bumps(workspace, state, git=report.git, say=say)
    results: list[Any] | None = None
    if monitor_upstreams:
        cache = workspace.root / ".nanodistro" / "monitor"
        results, report.monitor_errors = monitor(workspace, state, cache, say, monitor_recipes)
        if not report.git and any(r.status == "update" for r in results):
            note = f"{workspace.root} is not a git work tree: bumps are plain file edits"
            report.notes.append(note)
            say(note)
    # what stable ships against the OSV data: advisories opened, upstream fixes looked up
    report.vulnerabilities = _guarded(
        report,
        "vulnerability triage",
        say,
        lambda: triage(workspace, state, keyring, results, say=say),
    )
    if results is not None:
        report.bumps = bump_updates(workspace, state, results, git=report.git, say=say)

    # build + tests (jobs), each success published to the working repository
    plans: dict[str, BuildPlan] = {}
    for arch in workspace.archs:
        plans[arch] = BuildPlan(
            workspace=workspace,
            state=state,
            arch=arch,
            config=_build_config(workspace, arch, key_path, keyring),
            run_jobs=lambda specs: [],  # set below, once the executor exists
            git=report.git,
            say=say,
            rebuild_on=workspace.rebuild_on,
        )
    image_plan = ImagePlan(workspace, state, 0, lambda specs: [], say)

    def handlers_for(plan: BuildPlan) -> Any:
        if workspace.executor_kind == "celery":
            # the same jobs on Celery workers: they build and test, this process verifies,
            # signs and publishes (factory/distributed, factory/remote)
            from nanodistro.factory.distributed.app import make_app
            from nanodistro.factory.distributed.executor import CeleryExecutor
            from nanodistro.factory.remote import WorkerRegistry, control_kinds

            return CeleryExecutor(
                store,
                control_kinds(plan, image_plan, repository_url=workspace.repository_url),
                make_app(workspace.broker or "redis://127.0.0.1:6379/0"),
                token_for=WorkerRegistry.for_workspace(workspace.root).token_for,
                in_flight=concurrency or workspace.concurrency or 256,
                say=say,
            )
        return LocalExecutor(
            store,
            {
                "build": build_handler(plan),
                "test": test_handler(plan),
                "image": image_handler(image_plan),
                "smoke": smoke_handler(image_plan),
            },
            concurrency=concurrency or workspace.concurrency or os.cpu_count() or 1,
        )

    for plan in plans.values():
        try:
            finish_publishes(plan.config, say)  # files a killed publish wrote, unindexed
        except NanodistroError as error:  # e.g. refused by the consistency gate: said, not fatal
            report.notes.append(f"interrupted publish not finished: {error}")
            say(report.notes[-1])
        executor = handlers_for(plan)
        plan.run_jobs = executor.run
        report.builds.extend(build_catalog(plan))

    repo = workspace.packages_dir
    if not any((repo / a / "APKINDEX.tar.gz").is_file() for a in workspace.archs):
        report.status = "nothing-published"
        return _finish(report, workspace, state, key_path, keyring, generated, [], started)

    # snapshot -> staging
    staging = snapshot(repo, keyring=keyring, progress=say)
    if channel_version(repo, "staging") != staging:
        set_channel(repo, "staging", staging)
        say(f"staging -> repository version {staging}")
    report.repo_version = staging
    _record_published(state, workspace, staging)
    # a sample of this cycle's builds rebuilt independently and compared with what was published
    built = [b.recipe for b in report.builds if b.status == "built"]
    report.reproducibility = ReproducibilityStatus(
        this_cycle=[
            item
            for plan in plans.values()
            for item in check_sample(
                workspace,
                state,
                plan.config,
                built=built,
                cycle=cycle,
                say=say,
                cost={b.recipe: b.seconds for b in report.builds},
            )
        ]
    )
    stable = channel_version(repo, "stable")
    report.stable_before = stable
    report.changed_packages = _changed_packages(workspace, staging, stable)

    # dependents: re-run the tests of recipes running with a changed package
    owners = {b.recipe for b in report.builds if set(b.packages) & set(report.changed_packages)}
    for plan in plans.values():
        report.tests.extend(retest_dependents(plan, report.changed_packages, owners))

    # images against the staging version, smoke tests
    image_plan.repo_version = staging
    first_plan = next(iter(plans.values()))
    image_plan.run_jobs = first_plan.run_jobs
    failed = {
        p: b.recipe for b in report.builds if b.status in ("failed", "skipped") for p in b.packages
    }
    images = build_images(image_plan, failed)
    good = {i.name: i.digest for i in images if i.digest and i.status in ("built", "unchanged")}
    stable_images = current_stable(workspace).images
    report.changed_images = {n: d for n, d in good.items() if stable_images.get(n) != d}
    for name in sorted(report.changed_images):  # the registry gets staging as the layout does
        push_to_registry(workspace, name, "staging", say=say)

    # images promoted before signing existed (or by a cycle killed before it signed) get signed
    _guarded(report, "signing stable images", say, lambda: sign_unsigned_stable(workspace, say=say))
    if stable == staging and not report.changed_images:
        report.status = "up-to-date"
        say(f"stable is repository version {staging}: nothing to promote")
        return _finish(report, workspace, state, key_path, keyring, generated, images, started)

    # gates -> promote
    gate = evaluate(
        GateInput(
            workspace=workspace,
            state=state,
            cycle=cycle,
            staging=staging,
            stable=stable,
            changed_packages=report.changed_packages,
            builds=report.builds,
            tests=report.tests,
            images=images,
            changed_images=report.changed_images,
            keyring=keyring,
            toolchain=first_plan.config.toolchain,
        )
    )
    report.gate = gate
    if not gate.passed:
        report.status = "gate-blocked"
        payload = {
            "cycle": cycle,
            "version": staging,
            "stable": stable,
            "reasons": gate.reasons,
            "log": gate.log_path,
            "images": report.changed_images,
        }
        previous = last_event(state, "channel:stable", [events.GATE_BLOCKED], version=staging)
        if previous is None or previous.payload.get("reasons") != gate.reasons:
            events.record(state, events.GATE_BLOCKED, "channel:stable", payload)
        for reason in gate.reasons:
            say(f"GATE BLOCKED: {reason}")
        return _finish(report, workspace, state, key_path, keyring, generated, images, started)
    crash_point("before-promote")
    promote(
        workspace,
        state,
        cycle=cycle,
        version=staging,
        images=report.changed_images,
        image_packages={i.name: i.packages for i in images},
        say=say,
    )
    report.promoted, report.status = True, "promoted"
    return _finish(report, workspace, state, key_path, keyring, generated, images, started)


def _guarded(report: CycleReport, what: str, say: Progress, step: Any) -> Any:
    """Run a step whose failure (bad OSV data, an unwritable advisory...) must not stop the
    cycle: said, noted in the report, the cycle goes on."""
    try:
        return step()
    except NanodistroError as error:
        report.notes.append(f"{what} failed: {error}")
        say(report.notes[-1])
        return None


def _finish(
    report: CycleReport,
    workspace: Workspace,
    state: Any,
    key_path: Path,
    keyring: dict[str, bytes],
    generated: bool,
    images: list[Any],
    started: float,
) -> CycleReport:
    from nanodistro.repo.versions import channels

    if workspace.packages_dir.is_dir():
        report.channels = channels(workspace.packages_dir)
    if report.channels.get("stable") is not None:
        # reconciled every cycle: a fix promoted by a cycle that died after promoting is
        # still recorded
        report.vulnerabilities = (
            _guarded(
                report,
                "recording vulnerability fixes",
                lambda _m: None,
                lambda: record_fixes(
                    workspace,
                    state,
                    keyring,
                    report.channels["stable"],
                    say=lambda m: None,
                    report=report.vulnerabilities,
                ),
            )
            or report.vulnerabilities
        )
    if workspace.packages_dir.is_dir():
        _guarded(
            report,
            "publishing vulnerability feeds",
            lambda _m: None,
            lambda: publish_feeds(workspace),
        )
    recipes = [
        RecipeReport(
            name=b.recipe,
            version=b.version,
            arch=workspace.archs[0],
            status=b.status if b.status != "skipped" else "failed",
            seconds=b.seconds,
            error=b.error,
            packages=b.packages,
        )
        for b in report.builds
    ]
    catalog = CatalogReport(
        workspace=str(workspace.root),
        repository=str(workspace.packages_dir),
        keys_dir=str(workspace.keys_dir),
        public_key=str(key_path.with_name(key_path.name + ".pub")),
        images_dir=str(workspace.image_out_dir),
        archs=list(workspace.archs),
        key_generated=generated,
        recipes=recipes,
        images=list(images),
    )
    for arch in workspace.archs:
        catalog.packages.extend(
            repository_packages(workspace, arch, [r for r in recipes if r.arch == arch])
        )
    report.reproducibility = catalog_status(
        state,
        [(p.name, p.version, p.arch) for p in catalog.packages],
        report.reproducibility.this_cycle if report.reproducibility else [],
    )
    report.seconds = round(time.monotonic() - started, 1)
    catalog.seconds = report.seconds
    report.catalog = catalog
    report.events = len(events.query(state))
    return report
