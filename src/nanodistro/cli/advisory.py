"""CLI: ``nanodistro advisory list|show|create|update|validate`` and ``nanodistro feeds OUT/``.

Documents live in the workspace's ``advisories/`` (``<package>.advisories.yaml``). A document
that cannot be read is skipped with a warning by ``list``, ``show`` and ``feeds`` (exit 0: the
others are still useful); ``validate`` reports it and exits 1 like every problem it finds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from nanodistro.advisory.model import (
    EVENT_TYPES,
    Advisory,
    Document,
    Event,
)
from nanodistro.cli._common import console, err_console, escape, print_json, workspace_file
from nanodistro.errors import AdvisoryError, ConfigError, NanodistroError

# The document writer, store and validator (ruamel.yaml) are imported by the commands that use
# them, not by --help.
if TYPE_CHECKING:
    from nanodistro.advisory.history import HistoryDiff
    from nanodistro.advisory.store import LoadedAdvisories
    from nanodistro.factory.workspace import Workspace

app = typer.Typer(
    help="Security advisories (Wolfi advisory documents, schema 2.0.2).", no_args_is_help=True
)

_WORKSPACE = typer.Option(
    None, "--workspace", "-w", help="Workspace (nanodistro.toml or its directory)."
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="advisory")
    root.command("feeds")(feeds)


def _workspace(path: Path | None) -> Workspace:
    from nanodistro.factory.workspace import load_workspace

    return load_workspace(workspace_file(path))


def _warn(errors: list[NanodistroError]) -> None:
    for error in errors:
        err_console.print(f"[yellow]warning:[/] skipped: {escape(str(error))}", soft_wrap=True)


def _valid_documents(loaded: LoadedAdvisories) -> list[Document]:
    """Documents without problems; the others are warned about and left out."""
    from nanodistro.advisory.publish import valid_documents

    good, problems = valid_documents(loaded.documents)
    _warn(problems)
    return good


@app.command("list")
def list_advisories(
    package: str | None = typer.Option(None, "--package", "-p", help="Only this package."),
    vuln: str | None = typer.Option(
        None, "--vuln", "-V", help="Only advisories with this ID or alias."
    ),
    event_type: str | None = typer.Option(
        None, "--type", "-t", help="Only this latest event type."
    ),
    unresolved: bool = typer.Option(False, "--unresolved", help="Only unresolved advisories."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    workspace: Path | None = _WORKSPACE,
) -> None:
    """List advisories with their latest event."""
    from nanodistro.advisory.store import load_directory

    loaded = load_directory(_workspace(workspace).advisories_dir)
    _warn(loaded.errors)
    rows: list[dict[str, Any]] = []
    for doc in loaded.documents:
        if package and doc.package != package:
            continue
        for adv in doc.advisories:
            latest = adv.latest()
            if vuln and not adv.describes(vuln):
                continue
            if event_type and (latest is None or latest.type != event_type):
                continue
            if unresolved and adv.resolved():
                continue
            rows.append(
                {
                    "package": doc.package,
                    "id": adv.id,
                    "aliases": adv.aliases,
                    "latest": latest.type if latest else None,
                    "timestamp": latest.timestamp_text if latest else None,
                    "fixed_version": latest.fixed_version if latest else None,
                    "note": latest.note if latest else "",
                    "resolved": adv.resolved(),
                }
            )
    if json_output:
        print_json(rows)
        return
    for row in rows:
        detail = row["fixed_version"] or row["note"] or ""
        console.print(
            f"{row['package']}  {row['id']}  {','.join(row['aliases']) or '-'}  "
            f"{row['latest']}  {row['timestamp']}  {detail}".rstrip(),
            markup=False,
            soft_wrap=True,
        )


@app.command("show")
def show(
    target: str = typer.Argument(..., help="A package name, or an advisory ID / alias."),
    workspace: Path | None = _WORKSPACE,
) -> None:
    """Print a package's advisory document, or the advisory with this ID/alias."""
    from nanodistro.advisory.store import document_path, load_directory

    directory = _workspace(workspace).advisories_dir
    path = document_path(directory, target)
    if path.is_file():
        typer.echo(path.read_bytes().decode("utf-8"), nl=False)
        return
    loaded = load_directory(directory)
    _warn(loaded.errors)
    found = False
    for doc in loaded.documents:
        adv = doc.get(target)
        if adv is None:
            continue
        found = True
        console.print(f"package: {doc.package}\nid: {adv.id}", markup=False)
        if adv.aliases:
            console.print("aliases: " + ", ".join(adv.aliases), markup=False)
        for event in adv.events:
            detail = event.fixed_version or event.fp_type or ""
            note = f" — {event.note}" if event.note else ""
            console.print(
                f"  {event.timestamp_text}  {event.type}  {detail}{note}",
                markup=False,
                soft_wrap=True,
            )
    if not found:
        raise AdvisoryError(
            f"no advisory document or advisory named {target!r}",
            rule="advisory-exists",
            where=str(directory),
        )


def _event(
    kind: str,
    fixed_version: str | None,
    fp_type: str | None,
    note: str | None,
    timestamp: str | None,
) -> Event:
    from nanodistro.advisory.document import new_event

    if kind not in EVENT_TYPES:
        raise AdvisoryError(
            f"unknown event type {kind!r}; one of {', '.join(EVENT_TYPES)}",
            rule="event-type",
            field="--type",
        )
    moment = None
    if timestamp:
        try:
            moment = datetime.fromisoformat(timestamp).astimezone(UTC)
        except ValueError:
            raise AdvisoryError(
                f"--timestamp {timestamp!r} is not RFC 3339", rule="timestamp", field="--timestamp"
            ) from None
    if kind == "fixed" and not fixed_version:
        raise AdvisoryError(
            "a fixed event needs --fixed-version", rule="fixed-version", field="--fixed-version"
        )
    if kind == "false-positive-determination" and not fp_type:
        raise AdvisoryError(
            "a false-positive-determination needs --fp-type", rule="fp-type", field="--fp-type"
        )
    return new_event(
        kind,
        timestamp=moment,
        fixed_version=fixed_version or "",
        fp_type=fp_type or "",
        note=note or "",
    )


def _save(doc: Document) -> None:
    from nanodistro.advisory.document import write_document
    from nanodistro.advisory.store import save_document
    from nanodistro.advisory.validate import document_problems

    problems = document_problems(doc)
    if problems:
        raise problems[0]  # never write a document the next `validate` would refuse
    save_document(Path(doc.where), write_document(doc))


@app.command("create")
def create(
    package: str = typer.Option(..., "--package", "-p", help="The (origin) package."),
    vuln: list[str] = typer.Option(
        ..., "--vuln", "-V", help="CVE/GHSA/GO ID(s) of the vulnerability."
    ),
    kind: str = typer.Option(
        "detection", "--type", "-t", help="Event type: " + ", ".join(EVENT_TYPES)
    ),
    fixed_version: str | None = typer.Option(
        None, "--fixed-version", help="For --type fixed (with -rN)."
    ),
    fp_type: str | None = typer.Option(None, "--fp-type", help="For false-positive-determination."),
    note: str | None = typer.Option(None, "--note", help="The event's note."),
    timestamp: str | None = typer.Option(None, "--timestamp", help="RFC 3339 (default: now)."),
    workspace: Path | None = _WORKSPACE,
) -> None:
    """Create an advisory (a new CGA ID) with its first event."""
    from nanodistro.advisory.document import add_advisory, generate_cga_id, new_document
    from nanodistro.advisory.store import document_path, load_directory

    directory = _workspace(workspace).advisories_dir
    loaded = load_directory(directory)
    _warn(loaded.errors)
    aliases = [a for item in vuln for a in item.split(",") if a]
    existing = loaded.by_package().get(package)
    if existing is not None:
        for alias in aliases:
            adv = existing.get(alias)
            if adv is not None:
                raise AdvisoryError(
                    f"{alias} already has advisory {adv.id} in {package!r}; use 'advisory update'",
                    rule="duplicate-id",
                    where=existing.where,
                )
    taken = {adv.id for doc in loaded.documents for adv in doc.advisories}
    advisory = Advisory(
        id=generate_cga_id(taken),
        aliases=aliases,
        events=[_event(kind, fixed_version, fp_type, note, timestamp)],
    )
    path = document_path(directory, package)
    if existing is None and path.exists():
        raise AdvisoryError(
            "exists but could not be read (see the warning)", rule="yaml", where=str(path)
        )
    doc = (
        add_advisory(existing, advisory) if existing else new_document(package, advisory, str(path))
    )
    _save(doc)
    typer.echo(advisory.id)


@app.command("update")
def update(
    package: str = typer.Option(..., "--package", "-p"),
    vuln: str = typer.Option(
        ..., "--vuln", "-V", help="The advisory's CGA ID or one of its aliases."
    ),
    kind: str = typer.Option(..., "--type", "-t", help="Event type: " + ", ".join(EVENT_TYPES)),
    fixed_version: str | None = typer.Option(None, "--fixed-version"),
    fp_type: str | None = typer.Option(None, "--fp-type"),
    note: str | None = typer.Option(None, "--note"),
    timestamp: str | None = typer.Option(None, "--timestamp", help="RFC 3339 (default: now)."),
    workspace: Path | None = _WORKSPACE,
) -> None:
    """Append an event to an advisory (history is append-only)."""
    from nanodistro.advisory.decode import parse_document
    from nanodistro.advisory.document import append_event
    from nanodistro.advisory.store import document_path

    path = document_path(_workspace(workspace).advisories_dir, package)
    if not path.is_file():
        raise AdvisoryError(
            f"no advisory document for package {package!r}", rule="advisory-exists", where=str(path)
        )
    doc = parse_document(path.read_bytes(), str(path))
    updated = append_event(doc, vuln, _event(kind, fixed_version, fp_type, note, timestamp))
    _save(updated)
    adv = updated.get(vuln)
    typer.echo(adv.id if adv else vuln)


def _recipe_packages(
    workspace: Workspace,
) -> tuple[dict[str, str], dict[str, list[str]], list[NanodistroError]]:
    """Every package name the recipes build (-> recipe) and each origin's subpackages."""
    from nanodistro.advisory.publish import recipe_packages

    arch = workspace.archs[0] if workspace.archs else "x86_64"
    return recipe_packages(workspace.recipe_files(), arch)


def _repository_versions(workspace: Workspace) -> dict[str, set[str]] | None:
    """Package name -> full versions in the repository index (verified), or None if none."""
    from nanodistro.repo.repository import load_index
    from nanodistro.trust.keys import load_keyring

    repo = workspace.packages_dir
    if not repo.is_dir():
        return None
    keyring = dict(load_keyring(workspace.keys_dir)) if workspace.keys_dir.is_dir() else None
    versions: dict[str, set[str]] = {}
    found = False
    for arch_dir in sorted(p for p in repo.iterdir() if p.is_dir()):
        index = load_index(arch_dir, keyring or None)
        if index is None:
            continue
        found = True
        for info in index.packages:
            versions.setdefault(info.name, set()).add(info.version)
            if info.origin:
                versions.setdefault(info.origin, set()).add(info.version)
    return versions if found else None


def _base_files(
    directory: Path, base: str | None, skip: bool
) -> tuple[dict[str, bytes] | None, str]:
    """The documents as the base revision holds them (file name -> bytes) and the revision, or
    None and why the diff rules are skipped. Without ``--base`` the base is ``HEAD``, so
    uncommitted edits are what gets checked."""
    from nanodistro.advisory.store import SUFFIX
    from nanodistro.util.gitrev import files_at_revision, git_folder, resolve_commit

    if skip:
        return None, "--skip-diff"
    folder = git_folder(directory)
    if folder is None:
        if base:
            raise ConfigError(
                "the advisories folder is not in a git work tree",
                field="--base",
                where=str(directory),
            )
        return None, "the advisories folder is not in a git work tree"
    if base is None:
        if folder.ignored:
            return None, "git ignores the advisories folder"
        try:
            resolve_commit(folder.top, "HEAD")
        except ConfigError:
            return None, "the git work tree has no commit yet"
    revision = base or "HEAD"
    return files_at_revision(folder, revision, SUFFIX), revision


def _history(
    directory: Path,
    loaded: LoadedAdvisories,
    docs: list[Document],
    package: str | None,
    base: str | None,
    skip: bool,
) -> tuple[HistoryDiff | None, str]:
    """The diff-based rules against the base state (None and a note when skipped)."""
    from nanodistro.advisory.decode import parse_document
    from nanodistro.advisory.history import compare_history
    from nanodistro.advisory.store import SUFFIX

    files, label = _base_files(directory, base, skip)
    if files is None:
        return None, label
    base_docs: list[Document] = []
    not_compared: set[str] = set()
    for name, data in sorted(files.items()):
        try:
            base_docs.append(parse_document(data, str(directory / name)))
        except NanodistroError as error:
            # the change may be the fix of this very file: it is checked without its history
            not_compared.add(name.removesuffix(SUFFIX))
            _warn_note(f"{label}: cannot compare with {name}: {error}")
    unreadable = {Path(str(e.where)).name.removesuffix(SUFFIX) for e in loaded.errors if e.where}
    diff = compare_history(
        [d for d in base_docs if (not package or d.package == package)],
        [d for d in docs if d.package not in not_compared],
        now=datetime.now(UTC),
        base_label=label,
        unreadable=unreadable | not_compared,
    )
    return diff, label


def _warn_note(text: str) -> None:
    err_console.print(f"[yellow]note:[/] {escape(text)}", soft_wrap=True)


@app.command("validate")
def validate(
    package: str | None = typer.Option(None, "--package", "-p", help="Only this package."),
    base: str | None = typer.Option(
        None,
        "--base",
        help="Git revision to compare with for the diff rules (default: HEAD in a git work tree).",
    ),
    skip_diff: bool = typer.Option(False, "--skip-diff", help="Do not run the diff rules."),
    workspace: Path | None = _WORKSPACE,
) -> None:
    """Check every document (schema rules, file names, unique IDs) and, against the workspace,
    that each package is built by a recipe and each fixed version is in the repository. In a git
    work tree, also the diff rules against --base (default HEAD): no document, advisory or event
    removed or modified, new events at most 30 days old, new documents' packages built by a
    recipe, only new fixed events checked against the repository.
    One line per problem; exit 1 if there is any."""
    from nanodistro.advisory.store import load_directory
    from nanodistro.advisory.validate import (
        check_against_workspace,
        check_unique_ids,
        document_problems,
    )

    ws = _workspace(workspace)
    loaded = load_directory(ws.advisories_dir)
    problems: list[NanodistroError] = list(loaded.errors)
    packages, _, recipe_errors = _recipe_packages(ws)
    problems.extend(recipe_errors)
    versions = _repository_versions(ws)
    docs = [d for d in loaded.documents if not package or d.package == package]
    history, label = _history(ws.advisories_dir, loaded, docs, package, base, skip_diff)
    if history is None:
        _warn_note(f"diff rules skipped: {label}")
    else:
        problems.extend(history.problems)
    for doc in docs:
        problems.extend(document_problems(doc))
        change = history.changes.get(doc.package) if history else None
        problems.extend(
            check_against_workspace(
                doc, packages=packages, repository_versions=versions, change=change
            )
        )
    problems.extend(check_unique_ids(loaded.documents))
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        raise typer.Exit(1)
    compared = f", compared with {label}" if history is not None else ""
    console.print(f"{len(docs)} advisory document(s) valid{compared}", markup=False)


def feeds(
    out: Path = typer.Argument(..., help="Output directory."),
    url_prefix: str | None = typer.Option(
        None, "--url-prefix", help="secdb urlprefix (default: the workspace's out/ as a file URL)."
    ),
    workspace: Path | None = _WORKSPACE,
    json_output: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write the vulnerability feeds of the workspace's advisories: secdb security.json,
    OpenVEX (openvex/<package>.openvex.json) and OSV (osv/<CGA-ID>.json + osv/all.json)."""
    from nanodistro.advisory.publish import write_feeds
    from nanodistro.advisory.store import load_directory
    from nanodistro.formats.purl import distro_name

    ws = _workspace(workspace)
    loaded = load_directory(ws.advisories_dir)
    _warn(loaded.errors)
    documents = _valid_documents(loaded)
    _, subpackages, recipe_errors = _recipe_packages(ws)
    _warn(recipe_errors)
    result = write_feeds(
        out,
        documents,
        ecosystem=ws.name,
        distro=distro_name(ws.name),
        archs=ws.archs,
        repo_name=ws.packages_dir.name,
        url_prefix=url_prefix or ws.packages_dir.parent.as_uri(),
        subpackages=subpackages,
    )
    result.skipped = len(loaded.documents) - len(documents) + len(loaded.errors)
    written = result.to_json()
    if json_output:
        print_json(written)
    else:
        console.print(
            f"wrote {result.secdb}, {len(result.osv)} OSV record(s), "
            f"{len(result.openvex)} OpenVEX document(s)",
            markup=False,
            soft_wrap=True,
        )
