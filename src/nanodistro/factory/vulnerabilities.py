"""CVE -> fix without a human: scan what the catalog ships, open advisories, bump onto fixed
upstream releases, record the fix at promotion, and keep unaccepted vulnerable images out of
stable.

Each cycle (``triage``, after the monitor):
1. the repository's ``stable`` version (or, before the first promotion, the working index) is
   scanned against the workspace's OSV data with its advisories applied (vuln/scan.py);
2. a vulnerability matching a package for the first time gets an advisory with a ``detection``
   event in ``advisories/<recipe>.advisories.yaml`` and a ``vulnerability-detected`` event (the
   start of its freshness clock);
3. if the monitor saw an upstream release at or above the fixed version, the cycle's bump builds
   it (nothing else to do: the monitor already bumps to the newest release); if upstream has no
   such release, the advisory says ``pending-upstream-fix`` with the versions in its note;
4. after a promotion (``record_fixes``) every open advisory whose vulnerability no longer matches
   the package now in stable gets a ``fixed`` event naming that package version, and a
   ``vulnerability-fixed`` event is recorded.

The gate (``vulnerability_policy``, a gates.POLICY_HOOKS entry) blocks promoting an image whose
staging build has an active finding of a severity listed in ``[gates] block`` that is neither
fixed nor *accepted* by a person: accepted means the advisory's latest event is
``false-positive-determination``, ``fix-not-planned`` or ``analysis-not-planned``.
``pending-upstream-fix`` and ``detection`` do not unblock: waiting for upstream is not a reason
to ship the vulnerability in a new image.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.records import last_event
from nanodistro.factory.workspace import Workspace
from nanodistro.util.progress import Progress

__all__ = [
    "ACCEPTED",
    "VulnerabilityReport",
    "publish_feeds",
    "record_fixes",
    "triage",
    "vulnerability_policy",
]

#: Advisory states a person chose that let an image with the vulnerability reach stable.
ACCEPTED = ("false-positive-determination", "fix-not-planned", "analysis-not-planned")
_OPEN = ("detection", "true-positive-determination", "pending-upstream-fix")
_REVISION = re.compile(r"-r\d+$")


@dataclass
class VulnerabilityReport:
    scanned: str = ""  # what was scanned ("" = nothing: no OSV data)
    note: str = ""
    active: list[str] = field(default_factory=list)  # "pkg-ver CVE-… (critical)"
    detected: list[str] = field(default_factory=list)  # new this cycle: "recipe CVE-…"
    fix_available: list[str] = field(default_factory=list)  # "recipe CVE-…: 1.2.1 upstream"
    pending: list[str] = field(default_factory=list)  # advisories now pending-upstream-fix
    fixed: list[str] = field(default_factory=list)  # "recipe CVE-… fixed in 1.2.1-r0"
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Inputs:
    db: Any
    documents: dict[str, Any]
    git_sources: dict[str, Any]
    distro: str
    warnings: list[str]

    def triage_entries(self) -> list[Any]:
        from nanodistro.advisory.latest import triage_entries

        return triage_entries(self.documents.values())


_OSV_LOADED: dict[str, tuple[tuple[int, int], Any]] = {}


def content_stamp(path: Path) -> tuple[int, int]:
    """(newest mtime, total size) of a file or of a directory's files: changes when one of
    them is replaced (``vuln update`` renames new files in; an advisory edit rewrites one)."""
    if not path.exists():
        return (0, 0)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [f.stat() for f in files]  # stat-ing is cheap next to parsing every record
    return max((st.st_mtime_ns for st in stats), default=0), sum(st.st_size for st in stats)


def _load_osv_once(path: Path, load: Any) -> Any:
    """The OSV database at ``path``, loaded again only when it changed (``vuln update`` replaces
    it by a rename): a cycle reads it for triage, the gate and the fixes, and all.zip of an
    ecosystem is large."""
    stamp = content_stamp(path)
    held = _OSV_LOADED.get(str(path))
    if held is None or held[0] != stamp:
        _OSV_LOADED.clear()  # one database at a time: the workspace's
        held = _OSV_LOADED[str(path)] = (stamp, load(path))
    return held[1]


def scan_inputs(workspace: Workspace, report: VulnerabilityReport) -> _Inputs | None:
    """What a scan of the workspace's packages needs — the OSV database (read once while
    unchanged), the advisories, the recipes' git sources, the distro name — or None with
    ``report.note`` saying why there is nothing to scan against."""
    from nanodistro.advisory.store import load_directory
    from nanodistro.formats.purl import distro_name
    from nanodistro.vuln.osvdb import load_osv
    from nanodistro.vuln.recipesources import git_sources_from_recipes

    osv = workspace.vulnerabilities_osv
    if osv is None or not osv.exists():
        report.note = f"no OSV data at {osv} (`nanodistro vuln update` fetches it)"
        return None
    try:
        db = _load_osv_once(osv, load_osv)
    except NanodistroError as error:
        report.note = f"OSV data unusable: {error}"
        return None
    report.warnings.extend(getattr(db, "warnings", []))
    loaded = load_directory(workspace.advisories_dir)
    report.warnings.extend(str(e) for e in loaded.errors)  # a bad document is skipped, said
    warnings: list[str] = []
    sources = git_sources_from_recipes(workspace.recipe_files(), warnings)
    report.warnings.extend(warnings)
    return _Inputs(db, loaded.by_package(), sources, distro_name(workspace.name), report.warnings)


def _scan_repository(workspace: Workspace, inputs: _Inputs, keyring: dict[str, bytes]) -> Any:
    """Findings for the stable channel's packages (the working index before any promotion)."""
    from nanodistro.formats.version import compare
    from nanodistro.repo.versions import channel_version, version_path
    from nanodistro.vuln.scan import scan_inventory
    from nanodistro.vuln.targets import load_targets

    stable = channel_version(workspace.packages_dir, "stable")
    where = version_path(workspace.packages_dir, stable) if stable else workspace.packages_dir
    findings: list[Any] = []
    shipped: dict[str, str] = {}  # recipe (origin) -> newest version of its packages
    for target in load_targets(str(where), distro=inputs.distro, keyring=keyring, own=True):
        # a repository keeps every version it published; what ships is the newest of each
        newest: dict[str, Any] = {}
        for component in target.inventory.components:
            held = newest.get(component.name)
            if held is None or compare(component.version, held.version) > 0:
                newest[component.name] = component
        target.inventory.components = list(newest.values())
        for component in newest.values():
            recipe = component.origin or component.name
            if recipe not in shipped or compare(component.version, shipped[recipe]) > 0:
                shipped[recipe] = component.version
        result = scan_inventory(
            target.inventory,
            inputs.db,
            target=target.label,
            triage=inputs.triage_entries(),
            git_sources=inputs.git_sources,
        )
        inputs.warnings.extend(result.warnings)
        findings.extend(f for f in result.findings if f.component.ecosystem == "apk")
    return where, findings, shipped


def _ids(finding: Any) -> list[str]:
    return [finding.vuln_id, *finding.aliases]


def _advisory_aliases(finding: Any) -> list[str]:
    """The ids an advisory may carry as aliases (CVE/GHSA/GO forms, per the schema)."""
    from nanodistro.advisory.model import ALIAS_PATTERNS

    return sorted({i for i in _ids(finding) if any(p.match(i) for p in ALIAS_PATTERNS.values())})


def _add_event(
    workspace: Workspace, inputs: _Inputs, recipe: str, finding: Any, event: Any
) -> str | None:
    """Append ``event`` to the recipe's advisory for the finding (creating advisory and document
    when needed); the advisory id, or None when the vulnerability has no id an advisory can
    carry as alias."""
    from nanodistro.advisory.document import (
        add_advisory,
        append_event,
        generate_cga_id,
        new_document,
        write_document,
    )
    from nanodistro.advisory.model import Advisory
    from nanodistro.advisory.store import document_path, save_document
    from nanodistro.advisory.validate import document_problems

    doc = inputs.documents.get(recipe)
    existing = _advisory_of(inputs, recipe, finding)
    if doc is not None and existing is not None:
        doc = append_event(doc, existing.id, event)
        advisory_id = existing.id
    else:
        aliases = _advisory_aliases(finding)
        if not aliases:
            inputs.warnings.append(
                f"{recipe}: {finding.vuln_id} has no CVE/GHSA/GO id; no advisory written"
            )
            return None
        taken = {a.id for d in inputs.documents.values() for a in d.advisories}
        advisory = Advisory(id=generate_cga_id(taken), aliases=aliases, events=[event])
        path = document_path(workspace.advisories_dir, recipe)
        doc = add_advisory(doc, advisory) if doc else new_document(recipe, advisory, str(path))
        advisory_id = advisory.id
    problems = document_problems(doc)
    if problems:  # never write what `advisory validate` would refuse
        inputs.warnings.append(f"{recipe}: advisory not written: {problems[0]}")
        return None
    save_document(Path(doc.where), write_document(doc))
    inputs.documents[recipe] = doc
    return advisory_id


def _advisory_of(inputs: _Inputs, recipe: str, finding: Any) -> Any:
    """The recipe's advisory naming any id of the finding, if there is one."""
    doc = inputs.documents.get(recipe)
    return next((a for i in _ids(finding) if doc and (a := doc.get(i))), None)


def _latest_type(inputs: _Inputs, recipe: str, finding: Any) -> str | None:
    advisory = _advisory_of(inputs, recipe, finding)
    latest = advisory.latest() if advisory else None
    return latest.type if latest else None


def _upstream_fixed(fixed_in: str) -> str | None:
    """The upstream version a finding's fix is in: ``1.2.1-r0`` -> ``1.2.1``, a tag -> its
    version, a commit -> None (no release named)."""
    from nanodistro.vuln.match import tag_version

    if not fixed_in:
        return None
    return tag_version(_REVISION.sub("", fixed_in))


def _at_least(version: str, minimum: str) -> bool:
    from nanodistro.formats.version import compare

    try:
        return compare(version, minimum) >= 0
    except NanodistroError:
        return False


def triage(
    workspace: Workspace,
    state: Any,
    keyring: dict[str, bytes],
    monitor_results: list[Any] | None,
    *,
    say: Progress,
) -> VulnerabilityReport:
    """Steps 1-3 of the module docstring. ``monitor_results``: this cycle's upstream checks
    (None when the monitor did not run: nothing is concluded about upstream fixes)."""
    from nanodistro.advisory.document import new_event

    report = VulnerabilityReport()
    inputs = scan_inputs(workspace, report)
    if inputs is None:
        say(f"vulnerabilities: {report.note}")
        return report
    where, findings, _shipped = _scan_repository(workspace, inputs, keyring)
    report.scanned = str(where)
    latest = {r.name: r.latest for r in monitor_results or [] if getattr(r, "latest", None)}
    for finding in findings:
        if finding.suppressed:
            continue
        component = finding.component
        recipe = component.origin or component.name
        label = f"{component.name}-{component.version} {finding.vuln_id} ({finding.severity})"
        report.active.append(label)
        subject = f"vulnerability:{finding.vuln_id}"
        if last_event(state, subject, [events.VULNERABILITY_DETECTED], recipe=recipe) is None:
            advisory_id = None
            if _latest_type(inputs, recipe, finding) is None:
                advisory_id = _add_event(
                    workspace,
                    inputs,
                    recipe,
                    finding,
                    new_event("detection"),
                )
            events.record(
                state,
                events.VULNERABILITY_DETECTED,
                subject,
                {
                    "recipe": recipe,
                    "package": component.name,
                    "version": component.version,
                    "severity": finding.severity,
                    "aliases": list(finding.aliases),
                    "fixed_in": finding.fixed_in,
                    "advisory": advisory_id,
                },
            )
            report.detected.append(f"{recipe} {finding.vuln_id}")
            say(f"vulnerabilities: {label} detected (fixed in {finding.fixed_in or 'unknown'})")
        if monitor_results is None:
            continue
        wanted = _upstream_fixed(finding.fixed_in)
        newest = latest.get(recipe)
        if wanted and newest and _at_least(newest, wanted):
            report.fix_available.append(f"{recipe} {finding.vuln_id}: {newest} upstream")
            say(f"vulnerabilities: {recipe} {newest} upstream fixes {finding.vuln_id}")
        elif _latest_type(inputs, recipe, finding) != "pending-upstream-fix":
            note = (
                f"upstream's newest release {newest or 'unknown'} is affected; "
                f"fixed in {finding.fixed_in or 'no released version yet'}"
            )
            event = new_event("pending-upstream-fix", note=note)
            if _add_event(workspace, inputs, recipe, finding, event):
                report.pending.append(f"{recipe} {finding.vuln_id}")
                say(f"vulnerabilities: {recipe} {finding.vuln_id} pending upstream fix")
    return report


def record_fixes(
    workspace: Workspace,
    state: Any,
    keyring: dict[str, bytes],
    repo_version: int,
    *,
    say: Progress,
    report: VulnerabilityReport | None = None,
) -> VulnerabilityReport:
    """Step 4: after a promotion, a ``fixed`` event for every open advisory the factory opened
    whose vulnerability no longer matches the recipe's package now in stable."""
    from nanodistro.advisory.document import new_event

    # what loading says (bad records, bad documents) the cycle's triage already reported
    loading = VulnerabilityReport()
    inputs = scan_inputs(workspace, loading)
    report = report or loading
    if inputs is None:
        return report
    _where, findings, stable_versions = _scan_repository(workspace, inputs, keyring)
    still = {
        (f.component.origin or f.component.name, i)
        for f in findings
        if not f.suppressed
        for i in _ids(f)
    }
    for event in events.query(
        state, subject="vulnerability:", types=[events.VULNERABILITY_DETECTED]
    ):
        recipe = str(event.payload.get("recipe", ""))
        vuln = event.subject.split(":", 1)[1]
        if (recipe, vuln) in still or recipe not in stable_versions:
            continue
        subject = event.subject
        if last_event(state, subject, [events.VULNERABILITY_FIXED], recipe=recipe) is not None:
            continue
        version = stable_versions[recipe]
        if version == event.payload.get("version"):
            continue  # matched data changed (record withdrawn), the package did not
        finding = _Finding(vuln, tuple(event.payload.get("aliases") or ()))
        if _latest_type(inputs, recipe, finding) in _OPEN:
            _add_event(
                workspace,
                inputs,
                recipe,
                finding,
                new_event("fixed", fixed_version=version),
            )
        events.record(
            state,
            events.VULNERABILITY_FIXED,
            subject,
            {"recipe": recipe, "version": version, "repo_version": repo_version},
        )
        report.fixed.append(f"{recipe} {vuln} fixed in {version}")
        say(f"vulnerabilities: {recipe} {vuln} fixed in {version} (stable)")
    return report


@dataclass(frozen=True)
class _Finding:
    """The ids of a recorded detection, shaped like a scan finding for the advisory helpers."""

    vuln_id: str
    aliases: tuple[str, ...]


def vulnerability_policy(gate: Any) -> list[str]:
    """Gate hook: reasons to keep staging images out of stable (module docstring)."""

    workspace: Workspace = gate.workspace
    block = list(workspace.gates_block)
    if not block or not gate.changed_images:
        return []
    report = VulnerabilityReport()
    inputs = scan_inputs(workspace, report)
    if inputs is None:
        return []
    reasons = []
    for name in sorted(gate.changed_images):
        for finding in scan_image(inputs, workspace.image_out_dir / name, "staging"):
            if finding.suppressed or finding.severity not in block:
                continue
            if finding.status in ACCEPTED:
                continue
            c = finding.component
            reasons.append(
                f"image {name}: {finding.vuln_id} ({finding.severity}) in "
                f"{c.name}-{c.version}, not fixed and not accepted in an advisory"
            )
    return sorted(set(reasons))


def scan_image(inputs: _Inputs, layout: Path, tag: str) -> list[Any]:
    """Every finding (suppressed ones marked) for the image ``layout:tag``, with the
    workspace's advisories applied."""
    from nanodistro.vuln.scan import scan_inventory
    from nanodistro.vuln.targets import load_targets

    findings: list[Any] = []
    # our images hold our packages, whatever os-release ID their base layout writes
    for target in load_targets(f"{layout}:{tag}", distro=inputs.distro, own=True):
        result = scan_inventory(
            target.inventory,
            inputs.db,
            target=target.label,
            triage=inputs.triage_entries(),
            git_sources=inputs.git_sources,
        )
        findings.extend(result.findings)
    return findings


def publish_feeds(workspace: Workspace) -> Any:
    """The advisories as scanners read them: ``<repo>/security.json`` (secdb) and
    ``<out>/feeds/{osv,openvex}/``; a document that does not load or validate is left out."""
    from nanodistro.advisory.publish import recipe_packages, valid_documents, write_feeds
    from nanodistro.advisory.store import load_directory
    from nanodistro.formats.purl import distro_name

    loaded = load_directory(workspace.advisories_dir)
    documents, _problems = valid_documents(loaded.documents)
    _, subpackages, _errors = recipe_packages(workspace.recipe_files(), workspace.archs[0])
    return write_feeds(
        workspace.out_dir / "feeds",
        documents,
        ecosystem=workspace.name,
        distro=distro_name(workspace.name),
        archs=workspace.archs,
        repo_name=workspace.packages_dir.name,
        url_prefix=workspace.packages_dir.parent.as_uri(),
        subpackages=subpackages,
        secdb_file=workspace.packages_dir / "security.json",
    )
