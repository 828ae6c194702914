"""CLI: ``nanodistro lint`` — check melange recipes before they are built."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, err_console, escape, print_json
from nanodistro.cli._recipe_args import print_note, recipe_files
from nanodistro.errors import NanodistroError

if TYPE_CHECKING:
    from nanodistro.recipe.lint import LintResult

_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


def lint(
    recipes: list[Path] = typer.Argument(
        None,
        help="Recipe files, or directories whose top-level *.yaml files are recipes (a "
        "workspace root: its recipes directory).",
    ),
    json_output: bool = typer.Option(
        False,
        "--json",
        help="Print findings as a JSON list of {file, line, rule, severity, message}.",
    ),
    pipeline_dirs: list[Path] = typer.Option(
        [], "--pipeline-dir", help="Directory of local named pipelines (<name>.yaml); repeatable."
    ),
    disable: list[str] = typer.Option([], "--disable", help="Skip this rule (repeatable)."),
    list_rules: bool = typer.Option(False, "--list-rules", help="List the rules and exit."),
    summary: bool = typer.Option(
        False,
        "--summary",
        help="Print counts per rule (findings, recipes) instead of each finding; with --json "
        "as {recipes, loaded, clean, rules: {RULE: {severity, findings, recipes}}}.",
    ),
    no_git: bool = typer.Option(
        False, "--no-git", help="Do not compare with git history (epoch-not-reset)."
    ),
) -> None:
    """Lint melange recipes: pinned sources, no network in builds, valid versions and licences,
    an update: block, known pipelines and variables (plus wolfictl's rules).

    Exit status: 0 clean (warnings allowed), 1 errors found, 2 a recipe does not load.
    """
    # the linter (recipe models: pydantic, YAML) is imported by a lint, not by --help
    from nanodistro.recipe.lint import describe_rules, lint_path, summarize, summary_lines
    from nanodistro.recipe.pipelines import known_pipeline_names

    if list_rules:
        rules = describe_rules()
        if json_output:
            print_json(rules)
        else:
            for rule in rules:
                console.print(
                    f"{rule['rule']:45} {rule['severity']:8} {rule['description']}",
                    soft_wrap=True,
                    highlight=False,
                    markup=False,
                )
        raise typer.Exit(0)
    if not recipes:
        raise NanodistroError("give at least one recipe file or directory", field="RECIPE")
    for directory in pipeline_dirs:
        if not directory.is_dir():
            raise NanodistroError("not a directory", where=str(directory), field="--pipeline-dir")
    files = recipe_files(recipes, missing_ok=True, note=print_note)
    names = known_pipeline_names(pipeline_dirs)
    results: list[LintResult] = []
    show_progress = len(files) > 20 and not json_output
    for index, path in enumerate(files, start=1):
        if show_progress and index % 100 == 0:
            err_console.print(f"linted {index}/{len(files)}", style="dim")
        results.append(
            lint_path(
                path,
                pipeline_dirs=pipeline_dirs,
                disabled=disable,
                use_git=not no_git,
                pipeline_names=names,
            )
        )
    findings = [finding for result in results for finding in result.findings]
    if summary:
        counts = summarize(results)
        if json_output:
            print_json(counts)
        else:
            for line in summary_lines(counts):
                console.print(line, highlight=False, markup=False, soft_wrap=True)
        # a corpus report lists unloadable recipes as counts; the exit status still says so
        if any(not result.loaded for result in results):
            raise typer.Exit(2)
        raise typer.Exit(1 if any(result.errors for result in results) else 0)
    if json_output:
        print_json([finding.to_json() for finding in findings])
    else:
        for finding in findings:
            location = f"{finding.file}:{finding.line}" if finding.line else finding.file
            style = _STYLE[finding.severity]
            console.print(
                f"{escape(location)}: [{style}]{finding.severity}[/{style}]: "
                f"{escape(finding.message)} "
                f"[dim]\\[{finding.rule}][/dim]",
                highlight=False,
                soft_wrap=True,
            )
        clean = sum(result.clean for result in results)
        err_console.print(
            f"{len(results)} recipe(s): {clean} clean, "
            f"{sum(not r.loaded for r in results)} failed to load, "
            f"{sum(len(r.errors) for r in results)} error(s), "
            f"{sum(f.severity == 'warning' for f in findings)} warning(s)"
        )
    unloadable = [result for result in results if not result.loaded]
    if unloadable:
        # bad input gets the one error: line every command prints. Printed findings are the
        # report, so the line points at them instead of repeating one (each finding once);
        # with --json they are not on the terminal, so the line names the first problem.
        if len(unloadable) == 1:
            load_errors = [f for f in unloadable[0].findings if f.rule == "load-error"]
            first = load_errors[0] if load_errors else unloadable[0].errors[0]
            where = f"{first.file}:{first.line}" if first.line else first.file
            count = max(len(load_errors), 1)
            if json_output:
                more = f" (and {count - 1} more)" if count > 1 else ""
                what = f"{first.message}{more}"
            else:
                what = f"the recipe does not load ({count} problem{'s' if count > 1 else ''} "
                what += "listed above)"
            typer.echo(f"error: {where}: {what}", err=True)
        else:
            listed = ", ".join(result.file for result in unloadable)
            typer.echo(f"error: {len(unloadable)} recipes do not load: {listed}", err=True)
        raise typer.Exit(2)
    if any(result.errors for result in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``nanodistro lint``."""
    app.command("lint")(lint)
