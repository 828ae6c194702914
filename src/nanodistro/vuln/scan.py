"""Match an inventory against OSV records and apply our advisories: the scanner's engine.

Which records apply to a component:
- apk packages: affected entries whose ecosystem (or purl namespace) is the scanned distro
  (os-release ``ID``, else the workspace's distro name), looked up by name and then by origin
  (Chainguard's guidance, grype's "indirect" match); an ``Alpine:vX.Y`` entry applies to an
  Alpine root only when ``VERSION_ID`` starts with ``X.Y``. Records of other apk distros do not
  apply to our packages (their ``-rN`` are another distro's builds);
- apk packages built by a recipe (``git_sources``: package or origin -> :class:`GitSource`):
  GIT ranges of the recipe's upstream repository (vuln/match.py);
- PyPI, npm, Go components: their ecosystem's records, by (normalized) name.

Advisories (``advisory.triage.TriageEntry``) apply as grype applies the Wolfi secdb: looked up by
the apk package (or origin) and any id of the record (id, aliases, upstream); a language package
uses the advisories of the apk package owning its file. ``fixed`` at or below the installed apk
version, and ``false-positive-determination``, suppress the finding (kept in the result with the
reason); ``fix-not-planned``, ``pending-upstream-fix``, ``analysis-not-planned`` keep it annotated
with the note; ``detection``/``true-positive-determination`` keep it as triaged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nanodistro.advisory.triage import TriageEntry
from nanodistro.errors import FormatError, VersionError
from nanodistro.formats import version as apkversion
from nanodistro.formats.cvss import SEVERITY_LEVELS, base_score, level_of_score
from nanodistro.formats.osv import Affected, OsvRecord
from nanodistro.vuln.inventory import Component, Inventory
from nanodistro.vuln.match import (
    GitSource,
    MatchResult,
    comparator,
    match_affected,
    match_git,
)
from nanodistro.vuln.osvdb import OsvDatabase, normalize_repo, package_key

__all__ = ["Finding", "ScanResult", "record_severity", "scan_inventory", "severity_at_least"]

_DB_SEVERITY = {"moderate": "medium", "important": "high", "negligible": "low"}


@dataclass(frozen=True)
class Finding:
    component: Component
    vuln_id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str  # one of formats.cvss.SEVERITY_LEVELS
    score: float | None
    fixed_in: str
    how: str  # what matched: "ECOSYSTEM range", "GIT <repo>", "... via origin <name>"
    url: str = ""
    status: str = "affected"  # or the advisory's latest event type
    suppressed: bool = False
    annotation: str = ""  # the advisory's reason or note

    def to_dict(self) -> dict[str, Any]:
        c = self.component
        return {
            "package": {
                "name": c.name,
                "version": c.version,
                "ecosystem": c.ecosystem,
                "purl": c.purl,
                "location": c.location,
                **({"origin": c.origin} if c.origin and c.origin != c.name else {}),
                **({"owner": c.owner} if c.owner else {}),
            },
            "vulnerability": {
                "id": self.vuln_id,
                "aliases": list(self.aliases),
                "summary": self.summary,
                "severity": self.severity,
                "score": self.score,
                "fixed_in": self.fixed_in,
                "url": self.url,
            },
            "match": self.how,
            "status": self.status,
            "suppressed": self.suppressed,
            "annotation": self.annotation,
        }


@dataclass
class ScanResult:
    target: str
    inventory: Inventory
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]


def severity_at_least(level: str, threshold: str) -> bool:
    """Whether ``level`` meets ``threshold`` ("unknown" never does)."""
    if level == "unknown":
        return False
    return SEVERITY_LEVELS.index(level) >= SEVERITY_LEVELS.index(threshold)


def record_severity(record: OsvRecord) -> tuple[str, float | None]:
    """(level, CVSS v3 base score): the highest CVSS v3 vector, else ``database_specific``."""
    scores: list[float] = []
    for item in record.severity:
        if item.type == "CVSS_V3":
            try:
                scores.append(base_score(item.score, where=record.id))
            except FormatError:
                continue
    if scores:
        return level_of_score(max(scores)), max(scores)
    candidates = [record.database_specific, *(a.database_specific for a in record.affected)]
    candidates += [a.ecosystem_specific for a in record.affected]
    for data in candidates:
        text = data.get("severity")
        if isinstance(text, str):
            level = _DB_SEVERITY.get(text.lower(), text.lower())
            if level in SEVERITY_LEVELS:
                return level, None
    return "unknown", None


def _apk_entry_applies(affected: Affected, inventory: Inventory) -> bool:
    """An ``Alpine:v3.18`` entry only for an Alpine 3.18 root (other apk ecosystems: always)."""
    package = affected.package
    if package is None or ":" not in package.ecosystem:
        return True
    release = package.ecosystem.split(":", 1)[1].strip().removeprefix("v")
    return not inventory.distro_version or inventory.distro_version.startswith(release)


@dataclass
class _Matcher:
    db: OsvDatabase
    inventory: Inventory
    git_sources: Mapping[str, GitSource]
    warnings: list[str]

    def candidates(self, component: Component) -> list[tuple[OsvRecord, MatchResult]]:
        if component.ecosystem == "apk":
            return self._apk(component)
        key = package_key(component.ecosystem, component.name)
        compare = comparator(key[0], self.inventory.distro)
        found = []
        for record, affected in self.db.by_package.get(key, []):
            result = self._evaluate(record, component.version, affected, compare)
            if result.affected:
                found.append((record, result))
        return found

    def _evaluate(
        self, record: OsvRecord, version: str, affected: Affected, compare: Any
    ) -> MatchResult:
        if compare is None:
            return MatchResult(False)
        try:
            return match_affected(version, affected, compare)
        except VersionError as error:
            self.warnings.append(f"{record.id}: cannot compare {version!r}: {error}; skipped")
            return MatchResult(False)

    def _apk(self, component: Component) -> list[tuple[OsvRecord, MatchResult]]:
        distro = self.inventory.distro
        compare = comparator(distro, distro)
        found: list[tuple[OsvRecord, MatchResult]] = []
        seen: set[str] = set()
        names = [component.name]
        if component.origin and component.origin != component.name:
            names.append(component.origin)
        for name in names:
            for record, affected in self.db.by_package.get(package_key(distro, name), []):
                if record.id in seen or not _apk_entry_applies(affected, self.inventory):
                    continue
                result = self._evaluate(record, component.version, affected, compare)
                if result.affected:
                    seen.add(record.id)
                    how = result.how + ("" if name == component.name else f" via origin {name}")
                    found.append((record, MatchResult(True, result.fixed_in, how)))
        for name in names:
            source = self.git_sources.get(name)
            if source is None:
                continue
            for record, affected, item in self.db.by_repo.get(normalize_repo(source.repo), []):
                if record.id in seen:
                    continue
                result = match_git(component.version, source, affected, item)
                if result.affected:
                    seen.add(record.id)
                    found.append((record, result))
        return found


def _triage(finding: Finding, entries: Iterable[TriageEntry], installed: str) -> Finding:
    ids = {finding.vuln_id, *finding.aliases}
    entry = next((e for e in entries if e.ids & ids), None)
    if entry is None:
        return finding
    label = f"{entry.advisory_id}: {entry.kind}"
    if entry.kind == "fixed":
        fixed = entry.fixed_version or ""
        try:
            done = bool(fixed) and bool(installed) and apkversion.compare(installed, fixed) >= 0
        except VersionError:
            done = False
        if done:
            return _replace(finding, "fixed", True, f"{label} in {fixed}")
        return _replace(finding, "affected", False, f"{label} in {fixed}", fixed_in=fixed)
    if entry.kind == "false-positive-determination":
        return _replace(
            finding, entry.kind, True, f"{label} ({entry.note})" if entry.note else label
        )
    note = f"{label}: {entry.note}" if entry.note else label
    return _replace(finding, entry.kind, False, note)


def _replace(
    finding: Finding, status: str, suppressed: bool, annotation: str, fixed_in: str | None = None
) -> Finding:
    return replace(
        finding,
        status=status,
        suppressed=suppressed,
        annotation=annotation,
        fixed_in=finding.fixed_in if fixed_in is None else fixed_in,
    )


def scan_inventory(
    inventory: Inventory,
    db: OsvDatabase,
    *,
    target: str,
    triage: Iterable[TriageEntry] = (),
    git_sources: Mapping[str, GitSource] | None = None,
) -> ScanResult:
    """Every (component, record) match, with advisories applied, in a stable order."""
    result = ScanResult(target, inventory, warnings=list(inventory.warnings))
    matcher = _Matcher(db, inventory, git_sources or {}, result.warnings)
    by_package: dict[str, list[TriageEntry]] = {}
    for entry in triage:
        by_package.setdefault(entry.package, []).append(entry)
    apk_versions = {c.name: c.version for c in inventory.components if c.ecosystem == "apk"}
    origins = {c.name: c.origin for c in inventory.components if c.ecosystem == "apk"}
    for component in inventory.components:
        for record, match in matcher.candidates(component):
            level, score = record_severity(record)
            aliases = tuple(sorted((set(record.aliases) | set(record.upstream)) - {record.id}))
            finding = Finding(
                component=component,
                vuln_id=record.id,
                aliases=aliases,
                summary=record.summary or record.details.split("\n", 1)[0][:200],
                severity=level,
                score=score,
                fixed_in=match.fixed_in,
                how=match.how,
                url=record.advisory_url,
            )
            # Advisories of the apk package itself, or of the apk that owns a language package.
            apk = component.name if component.ecosystem == "apk" else component.owner
            if apk:
                names = [apk, origins.get(apk, apk)]
                entries = [e for name in dict.fromkeys(names) for e in by_package.get(name, [])]
                # a repository holds several versions of a name: judge the component's own
                installed = (
                    component.version if component.ecosystem == "apk" else apk_versions.get(apk, "")
                )
                finding = _triage(finding, entries, installed)
            result.findings.append(finding)
    result.findings.sort(
        key=lambda f: (f.component.name, f.component.location, f.component.version, f.vuln_id)
    )
    return result
