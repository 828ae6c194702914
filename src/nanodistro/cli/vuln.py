"""CLI: ``nanodistro vuln update`` — download the OSV data the catalog needs.

Without ``--ecosystem``, the ecosystems come from the workspace's recipes: ``GIT`` (upstream
repositories, what C/C++ projects are matched by) always, plus ``PyPI``, ``Go`` or ``npm`` when a
recipe uses that language's pipelines (``py/``, ``go/``, ``npm/``), whose packages carry
language dependencies into images. They land in ``[vulnerabilities] osv`` (a directory).
"""

from __future__ import annotations

from pathlib import Path

import typer

from nanodistro.cli._common import console, err_console
from nanodistro.errors import ConfigError, NanodistroError

vuln_app = typer.Typer(help="Vulnerability data for 'nanodistro scan'.", no_args_is_help=True)

_LANGUAGE_PIPELINES = {"py/": "PyPI", "python/": "PyPI", "go/": "Go", "npm/": "npm"}


def catalog_ecosystems(recipes: list[Path], warnings: list[str]) -> list[str]:
    """The OSV ecosystems the recipes' packages need (see the module docstring)."""
    from nanodistro.recipe.loading import load_recipe

    found = {"GIT"}
    for path in recipes:
        try:
            recipe = load_recipe(path)
        except NanodistroError as error:
            warnings.append(str(error))
            continue
        steps = [s for top in recipe.pipeline for s in top.walk()]
        for step in steps:
            for prefix, ecosystem in _LANGUAGE_PIPELINES.items():
                if step.uses.startswith(prefix):
                    found.add(ecosystem)
    return sorted(found)


@vuln_app.command("update")
def update(
    ecosystem: list[str] = typer.Option(
        [], "--ecosystem", "-e", help="OSV ecosystem to fetch (repeatable; default: the catalog's)."
    ),
    url: str | None = typer.Option(
        None, "--url", help="Base URL in OSV's bucket layout (<base>/<Ecosystem>/all.zip)."
    ),
    dest: Path | None = typer.Option(
        None, "--dest", help="Where to store it (default: the workspace's [vulnerabilities] osv)."
    ),
    workspace: Path | None = typer.Option(None, "--workspace", help="Workspace directory."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow plain http to any host."),
) -> None:
    """Download OSV records per ecosystem, replacing the local copy atomically."""
    from nanodistro.factory.workspace import find_workspace, load_workspace
    from nanodistro.vuln.update import DEFAULT_BASE, update_ecosystems

    found = workspace if workspace is not None else find_workspace(Path.cwd())
    ws = load_workspace(found) if found is not None else None
    target = dest or (ws.vulnerabilities_osv if ws is not None else None)
    if target is None:
        raise ConfigError("no destination: pass --dest DIR or run inside a workspace")
    if target.suffix == ".zip":
        raise ConfigError(
            "[vulnerabilities] osv names a .zip; 'vuln update' writes a directory",
            where=str(target),
        )
    warnings: list[str] = []
    ecosystems = list(ecosystem) or catalog_ecosystems(ws.recipe_files() if ws else [], warnings)
    for warning in warnings:
        err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    update_ecosystems(
        ecosystems,
        target,
        base=url or DEFAULT_BASE,
        insecure=insecure,
        progress=lambda line: console.print(line, markup=False, soft_wrap=True),
    )


def register(app: typer.Typer) -> None:
    """Add the ``vuln`` group to the root app."""
    app.add_typer(vuln_app, name="vuln")
