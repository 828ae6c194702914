"""CLI: ``nanodistro factory run``, ``nanodistro freshness``, ``nanodistro rollback`` (registered
by cli/factory.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, err_console, escape, print_json
from nanodistro.cli.factory import WORKSPACE_HELP, load, open_workspace_state

if TYPE_CHECKING:
    from nanodistro.factory.cycle import CycleReport


def _progress(quiet: bool) -> object:
    started = time.monotonic()

    def progress(message: str) -> None:
        if not quiet:
            elapsed = time.monotonic() - started
            err_console.print(
                f"[dim]{elapsed:6.1f}s[/] {escape(message)}", highlight=False, soft_wrap=True
            )

    return progress


def print_cycle(report: CycleReport) -> None:
    """The catalog summary (as ``catalog build`` prints it), then the factory's own lines."""
    from nanodistro.cli.catalog import print_report

    if report.catalog is not None:
        print_report(report.catalog)
    console.print()
    console.print("[bold]Factory[/]")
    channels = ", ".join(f"{c} -> version {n}" for c, n in sorted(report.channels.items()))
    console.print(f"  cycle       {report.cycle}: [bold]{report.status}[/]")
    console.print(
        f"  repository  version {report.repo_version or '-'}; {channels or 'no channels'}"
    )
    for bump in report.bumps:
        console.print(f"  bump        {bump.recipe} {bump.old} -> {bump.new} ({bump.status})")
    for test in report.tests:
        console.print(
            f"  re-test     {test.recipe} against {', '.join(test.against)}: {test.status}"
        )
    if report.gate is not None and not report.gate.passed:
        for reason in report.gate.reasons:
            console.print(f"  [bold red]gate[/]        {escape(reason)}")
        console.print(f"  gate log    {report.gate.log_path}")
    for note in report.notes + report.monitor_errors:
        console.print(f"  [dim]note        {escape(note)}[/]")
    if report.reproducibility is not None:
        rebuilt = ", ".join(
            f"{c['package']} {c['status']}" for c in report.reproducibility.this_cycle
        )
        console.print(
            f"  reproducible {escape(report.reproducibility.line())}"
            + (f" (this cycle: {escape(rebuilt)})" if rebuilt else ""),
            soft_wrap=True,
        )
    vulns = report.vulnerabilities
    if vulns is not None:
        if not vulns.scanned:
            console.print(f"  [dim]vulns       {escape(vulns.note)}[/]")
        else:
            parts = [f"{len(vulns.active)} active in stable"]
            parts += [
                f"{len(getattr(vulns, k))} {k.replace('_', ' ')}"
                for k in ("detected", "fix_available", "pending", "fixed")
                if getattr(vulns, k)
            ]
            console.print(f"  vulns       {escape(', '.join(parts))} (nanodistro advisory list)")
            for line in vulns.fixed:
                console.print(f"    fixed     {escape(line)}")
    console.print(f"  events      {report.events} in the log (nanodistro events)")
    repo = report.catalog.repository if report.catalog else "<repo>"
    console.print()
    console.print("[bold]Use stable[/]")
    console.print(
        f"  apk --root /tmp/root --initdb --keys-dir <keys> --repository {repo}/stable add <pkg>",
        markup=False,
        soft_wrap=True,
    )
    images = report.catalog.images_dir if report.catalog else "<images>"
    console.print(
        f"  skopeo copy oci:{images}/<image>:stable docker://localhost:5000/<image>:stable",
        soft_wrap=True,
    )
    console.print()
    console.print("[bold]Watch and drive it[/]")
    console.print(
        f"  nanodistro serve {report.workspace}   # console + API on http://127.0.0.1:8080/",
        markup=False,
        soft_wrap=True,
    )


def run_command(
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit."),
    interval: str = typer.Option("10m", "--interval", help="Time between cycles (10m, 1h...)."),
    no_monitor: bool = typer.Option(
        False,
        "--no-monitor",
        help="Skip checking upstreams (and so bumping): build and promote what the recipes say.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print each cycle's report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="Builds, tests, images and smoke tests run at once "
        "(default: [executor] concurrency in nanodistro.toml, else the CPU count).",
    ),
) -> None:
    """Run the factory: monitor -> bump -> build + tests -> publish -> staging -> dependents ->
    images -> smoke tests -> gates -> promote to stable. Exits non-zero (with --once) when a
    gate blocked or something failed."""
    from nanodistro.factory.events import parse_duration
    from nanodistro.factory.loop import run_loop

    every = parse_duration(interval, "--interval")
    loaded = load(workspace)
    state = open_workspace_state(loaded)
    assert state is not None

    def show(report: CycleReport) -> None:
        if json_out:
            print_json(report.to_json())
        else:
            print_cycle(report)

    with state:
        report = run_loop(
            loaded,
            state,
            once=once,
            interval=every,
            progress=_progress(quiet),  # type: ignore[arg-type]
            monitor_upstreams=not no_monitor,
            on_cycle=show,
            concurrency=jobs,
        )
    if not report.ok:
        raise typer.Exit(1)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def freshness_command(
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Per package and image: upstream release -> staging -> stable -> stable image, from the
    event log, with p50/p95 lead times over the catalog."""
    from nanodistro.factory.freshness import FreshnessReport, freshness

    state = open_workspace_state(load(workspace), create=False)
    report = FreshnessReport([], [])
    if state is not None:
        with state:
            report = freshness(state)
    if json_out:
        print_json(report.to_json())
        return
    from rich.table import Table  # Rich: only when a table is printed

    table = Table(title="Freshness (lead time from the upstream release)", title_justify="left")
    for column in ("package", "version", "released", "-> staging", "-> stable", "-> image"):
        table.add_column(column)
    for item in report.packages:
        released = item.released.strftime("%Y-%m-%d %H:%M") if item.released else "-"
        if item.release_source == "first-seen":
            released += " (seen)"
        table.add_row(
            item.package,
            item.version,
            released,
            _seconds(item.lead(item.published)),
            _seconds(item.lead(item.promoted)),
            _seconds(item.lead(item.image_promoted)),
        )
    console.print(table)
    images = Table(title="Image promotions", title_justify="left")
    for column in ("image", "digest", "promoted", "new packages", "lead"):
        images.add_column(column)
    for image in report.images:
        data = image.to_json()
        images.add_row(
            image.image,
            image.digest.removeprefix("sha256:")[:12],
            image.promoted.strftime("%Y-%m-%d %H:%M:%S"),
            str(len(image.packages)),
            _seconds(data["release_to_image_promoted"]),
        )
    console.print(images)
    if report.vulnerabilities:
        vulns = Table(title="Vulnerabilities (lead time from detection)", title_justify="left")
        for column in ("vulnerability", "recipe", "detected", "fixed in", "-> stable", "-> image"):
            vulns.add_column(column)
        for vuln in report.vulnerabilities:
            vulns.add_row(
                vuln.vulnerability,
                vuln.recipe,
                vuln.detected.strftime("%Y-%m-%d %H:%M"),
                vuln.fixed_version or "-",
                _seconds(vuln.lead(vuln.fixed)),
                _seconds(vuln.lead(vuln.image_promoted)),
            )
        console.print(vulns)
    for name, stat in report.stats().items():
        console.print(
            f"  {name.replace('_', ' ')}: p50 {_seconds(stat['p50'])}, p95 {_seconds(stat['p95'])}"
            f" over {int(stat['count'] or 0)}"
        )


def rollback_command(
    channel: str = typer.Argument(..., help="The channel to move back: stable."),
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    to: int | None = typer.Option(
        None, "--to", help="The repository version to go back to (default: the previous one)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Move stable back — the repository channel and every image's stable tag — to the
    previously promoted state (or the one promoted with repository version --to)."""
    from nanodistro.factory.rollback import rollback

    loaded = load(workspace)
    state = open_workspace_state(loaded)
    assert state is not None
    with state:
        result = rollback(loaded, state, channel=channel, to=to, progress=_progress(quiet))  # type: ignore[arg-type]
    if json_out:
        print_json(result.to_json())
        return
    console.print(
        f"{channel}: repository version {result.before.version} -> {result.after.version}"
    )
    for name, digest in sorted(result.images_moved.items()):
        console.print(f"  image {name}: stable -> {digest}")


def register_loop_commands(factory_app: typer.Typer, app: typer.Typer) -> None:
    """``factory run`` (once: the group is module-level, the root app is built per call)."""
    if not any(c.name == "run" for c in factory_app.registered_commands):
        factory_app.command("run")(run_command)
    app.command("freshness")(freshness_command)
    app.command("rollback")(rollback_command)
