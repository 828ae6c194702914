"""CLI: ``nanodistro scan TARGET`` — known vulnerabilities in an image, package, repository or root.

Inside a workspace (the nanodistro.toml at or above the current directory, or ``--workspace``):
OSV data from ``[vulnerabilities] osv``, advisories from ``advisories/``, the repository keys
from ``keys/`` and the upstream repository of each recipe (GIT-range matching) come from it;
the options override them.

The apk distro (OSV ecosystem of our records, purl namespace): a target that is the workspace's
own — a path inside the workspace or its ``out`` directory, or a reference under its
``[registry] url`` — is of the workspace distro (its name), whatever its os-release ``ID`` says, as
in the factory; a foreign image keeps its os-release ``ID`` (``wolfi``, ``alpine``), and
``--distro`` names the distro of a root without one. ``.apk`` files and repositories are always
of the workspace distro (or ``--distro``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, err_console, escape, print_json
from nanodistro.errors import ConfigError
from nanodistro.formats.cvss import SEVERITY_LEVELS
from nanodistro.formats.purl import distro_name

if TYPE_CHECKING:
    from nanodistro.advisory.triage import TriageEntry
    from nanodistro.vuln.scan import ScanResult

FAIL_LEVELS = ("low", "medium", "high", "critical")


@dataclass
class ScanContext:
    """What a scan takes from the workspace (all optional outside one)."""

    distro: str = distro_name(None)
    osv: Path | None = None
    advisories: Path | None = None
    keys: Path | None = None
    recipes: list[Path] = field(default_factory=list)
    own_dirs: tuple[Path, ...] = ()  # the workspace root and its out directory, resolved
    registry: str | None = None  # the workspace's [registry] url


def workspace_context(workspace: Path | None) -> ScanContext:
    from nanodistro.factory.workspace import find_workspace, load_workspace

    found = workspace if workspace is not None else find_workspace(Path.cwd())
    if found is None:
        return ScanContext()
    ws = load_workspace(found)
    return ScanContext(
        distro=distro_name(ws.name),
        osv=ws.vulnerabilities_osv,
        advisories=ws.root / "advisories",
        keys=ws.keys_dir if ws.keys_dir.is_dir() else None,
        recipes=ws.recipe_files(),
        own_dirs=(ws.root.resolve(), ws.out_dir.resolve()),
        registry=ws.registry,
    )


def is_own_target(target: str, context: ScanContext) -> bool:
    """Whether ``target`` is one of the workspace's images or repositories (see the module
    docstring): a path (``DIR``, ``DIR:TAG``, ``FILE``) inside it, or a reference under its
    registry prefix."""
    from nanodistro.image.diff import split_layout_tag

    path = Path(target)
    if not path.exists():
        tagged = split_layout_tag(target)
        if tagged is not None:
            path = tagged[0]
    if path.exists():
        where = path.resolve()
        return any(where.is_relative_to(own) for own in context.own_dirs)
    return bool(context.registry) and target.startswith(f"{context.registry}/")


def load_triage(directory: Path | None, warnings: list[str]) -> list[TriageEntry]:
    """The advisories of ``directory`` as the scanner applies them (bad documents: warnings)."""
    if directory is None or not directory.is_dir():
        return []
    try:
        from nanodistro.advisory.latest import triage_entries
        from nanodistro.advisory.store import load_directory
    except ImportError:  # the advisory loader lands separately (issue 13 item 1)
        raise ConfigError(
            "reading advisory documents is not available", where=str(directory)
        ) from None
    loaded = load_directory(directory)
    warnings.extend(f"{error}; advisory document skipped" for error in loaded.errors)
    return triage_entries(loaded.documents)


def _table(results: list[ScanResult]) -> None:
    from rich.table import Table  # Rich: only when a table is printed

    for result in results:
        active = result.active
        console.print(
            f"[bold]{escape(result.target)}[/]: {len(result.inventory.components)} packages, "
            f"{len(active)} vulnerabilities ({len(result.findings) - len(active)} suppressed "
            "by advisories)"
        )
        if not result.findings:
            continue
        table = Table(show_edge=False, pad_edge=False)
        for column in ("package", "installed", "vulnerability", "severity", "fixed in", "status"):
            table.add_column(column)
        for f in result.findings:
            status = f.status + (f" ({f.annotation})" if f.annotation else "")
            style = "dim" if f.suppressed else None
            table.add_row(
                escape(f.component.name),
                escape(f.component.version),
                escape(f.vuln_id),
                f.severity,
                escape(f.fixed_in or "-"),
                escape(("suppressed: " if f.suppressed else "") + status),
                style=style,
            )
        console.print(table)


def scan(
    target: str = typer.Argument(
        ...,
        help="OCI layout (DIR or DIR:TAG), oci-archive, registry reference, .apk file, "
        "repository directory or root directory.",
    ),
    osv: Path | None = typer.Option(
        None, "--osv", help="OSV records: a directory or .zip (default: the workspace's)."
    ),
    advisories: Path | None = typer.Option(
        None, "--advisories", help="Advisory documents directory (default: <workspace>/advisories)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    sarif: str | None = typer.Option(
        None, "--sarif", help="Write SARIF 2.1.0 to FILE ('-' for standard output)."
    ),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Exit 1 when an unsuppressed finding has this severity or higher."
    ),
    distro: str | None = typer.Option(
        None,
        "--distro",
        help="The apk distro (purl namespace, OSV ecosystem) when no os-release says.",
    ),
    keyring: list[Path] = typer.Option(
        [], "--keyring", help="Trusted key directory or file for a repository target."
    ),
    workspace: Path | None = typer.Option(None, "--workspace", help="Workspace directory."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow plain-http registries."),
) -> None:
    """Scan TARGET for known vulnerabilities (OSV data, our advisories applied)."""
    from nanodistro.trust.keys import load_keyring
    from nanodistro.vuln.osvdb import load_osv
    from nanodistro.vuln.recipesources import git_sources_from_recipes
    from nanodistro.vuln.report import sarif_document, scan_document
    from nanodistro.vuln.scan import scan_inventory, severity_at_least
    from nanodistro.vuln.targets import load_targets

    if fail_on is not None and fail_on not in FAIL_LEVELS:
        raise ConfigError(f"expected one of {', '.join(FAIL_LEVELS)}", field="--fail-on")
    context = workspace_context(workspace)
    osv_path = osv or context.osv
    if osv_path is None:
        raise ConfigError("no OSV data: pass --osv PATH or scan inside a workspace")
    warnings: list[str] = []
    db = load_osv(osv_path)
    warnings.extend(db.warnings)
    triage = load_triage(advisories or context.advisories, warnings)
    git_sources = git_sources_from_recipes(context.recipes, warnings)
    keys = (
        load_keyring(keyring) if keyring else (load_keyring(context.keys) if context.keys else None)
    )
    targets = load_targets(
        target,
        distro=distro or context.distro,
        keyring=keys,
        insecure=insecure,
        own=is_own_target(target, context),
    )
    results = [
        scan_inventory(t.inventory, db, target=t.label, triage=triage, git_sources=git_sources)
        for t in targets
    ]
    if results:
        results[0].warnings[:0] = warnings
    for result in results:
        for warning in result.warnings:
            err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    if sarif is not None:
        text = json.dumps(sarif_document(results), indent=2, sort_keys=True) + "\n"
        if sarif == "-":
            sys.stdout.write(text)
        else:
            Path(sarif).write_text(text, encoding="utf-8")
    if json_output:
        print_json(scan_document(results))
    elif sarif != "-":
        _table(results)
    if fail_on is not None:
        hits = [f for r in results for f in r.active if severity_at_least(f.severity, fail_on)]
        if hits:
            worst = max(SEVERITY_LEVELS.index(f.severity) for f in hits)
            err_console.print(
                f"{len(hits)} finding(s) at or above {fail_on} (worst: {SEVERITY_LEVELS[worst]})",
                markup=False,
            )
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``scan`` to the root app."""
    app.command("scan")(scan)
