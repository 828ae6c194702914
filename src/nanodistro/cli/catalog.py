"""CLI: ``nanodistro catalog build`` — a whole workspace into a repository, images, smoke tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, err_console, escape, print_json, workspace_file

if TYPE_CHECKING:
    from nanodistro.factory.catalog import CatalogReport

catalog_app = typer.Typer(
    name="catalog",
    help="Build a workspace's whole catalog: packages, images and their smoke tests.",
    no_args_is_help=True,
)


def _size(value: int) -> str:
    amount = float(value)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024 or unit == "MiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


_STATUS_STYLE = {
    "built": "green",
    "unchanged": "dim green",
    "passed": "green",
    "failed": "bold red",
    "error": "bold red",
    "skipped": "yellow",
    "none": "dim",
}


def _status(text: str) -> str:
    return f"[{_STATUS_STYLE.get(text, '')}]{text}[/]"


def print_report(report: CatalogReport) -> None:
    """The human summary: packages, images, and where everything is."""
    from rich.table import Table  # Rich: only when a table is printed

    recipes = Table(title="Recipes", title_justify="left")
    for column in ("recipe", "version", "arch", "result", "seconds"):
        recipes.add_column(column, justify="right" if column == "seconds" else "left")
    for recipe in report.recipes:
        recipes.add_row(
            recipe.name, recipe.version, recipe.arch, _status(recipe.status), f"{recipe.seconds:g}"
        )
    console.print(recipes)

    packages = Table(title=f"Packages ({_relative(report.repository)})", title_justify="left")
    for column in ("package", "version", "arch", "size", "installed", "license"):
        packages.add_column(column, justify="right" if column in ("size", "installed") else "left")
    for package in report.packages:
        packages.add_row(
            package.name,
            package.version,
            package.arch,
            _size(package.size),
            _size(package.installed_size),
            escape(package.license),
        )
    console.print(packages)

    images = Table(title=f"Images ({_relative(report.images_dir)})", title_justify="left")
    columns = ("image", "result", "digest", "size", "unpacked", "packages", "smoke test", "Debian¹")
    for column in columns:
        images.add_column(
            column, justify="right" if column in ("size", "unpacked", "Debian¹") else "left"
        )
    for image in report.images:
        smoke = _status(image.smoke.status)
        if image.smoke.runtime:
            smoke += f" ({image.smoke.runtime})"
        images.add_row(
            image.name,
            _status(image.status),
            image.digest.removeprefix("sha256:")[:12] or "-",
            _size(image.size) if image.size else "-",
            _size(image.unpacked_size) if image.unpacked_size else "-",
            str(len(image.packages)) if image.packages else "-",
            smoke,
            f"{_size(image.debian.installed_size)} ({image.debian.closure})"
            if image.debian
            else "-",
        )
    console.print(images)
    if any(image.debian for image in report.images):
        console.print(
            "¹ the same programs on a Debian base: installed size (and package count) of the "
            "minbase system plus the image's dev.nanodistro.compare.debian packages and their "
            "dependencies, from this machine's apt metadata",
            style="dim",
        )

    for recipe in report.recipes:
        if recipe.status == "failed":
            console.print(f"[bold red]recipe {recipe.name} failed:[/] {escape(recipe.error)}")
    for image in report.images:
        if image.error:
            console.print(f"[bold red]image {image.name} {image.status}:[/] {escape(image.error)}")
        elif image.smoke.status in ("failed", "error"):
            console.print(
                f"[bold red]smoke test of {image.name} {image.smoke.status}:[/] expected "
                f"{image.smoke.expected!r}, got {image.smoke.output!r}; {escape(image.smoke.detail)}"
            )

    repo = _relative(report.repository)
    keys = _relative(report.keys_dir)
    usable = [i for i in report.images if i.layout and i.status in ("built", "unchanged")]
    # the example the README uses, when there is one
    first = next((i for i in usable if i.name == "lua"), usable[0] if usable else None)
    layout = _relative(first.layout) if first else f"{_relative(report.images_dir)}/<image>"
    sboms = f"{layout}/sboms/"
    console.print()
    console.print("[bold]Where everything is[/]")
    console.print(f"  repository  {repo}/<arch>/APKINDEX.tar.gz (signed)", soft_wrap=True)
    console.print(
        f"  keys        {keys}/ (public: {os.path.basename(report.public_key)})", soft_wrap=True
    )
    console.print(
        f"  images      {_relative(report.images_dir)}/<image>/ (OCI layouts, tag latest)"
    )
    console.print(
        f"  SBOMs       {sboms} (SPDX 2.3 and CycloneDX 1.6 per image and arch)", soft_wrap=True
    )
    console.print(
        f"  provenance  {repo}/<arch>/<apk>.intoto.jsonl (SLSA, signed with {keys}/cosign.key; "
        "the factory also signs and attests each image it promotes: nanodistro verify)",
        soft_wrap=True,
    )
    console.print()
    console.print("[bold]Use them[/]")
    wanted = next((p.name for p in report.packages if p.name == "lua5.4"), None)
    wanted = wanted or (report.packages[-1].name if report.packages else "<package>")
    # absolute: apk-tools opens --keys-dir relative to --root (src/database.c, openat(root_fd))
    abs_keys, abs_repo = os.path.abspath(report.keys_dir), os.path.abspath(report.repository)
    console.print(
        f"  apk --root /tmp/root --initdb --keys-dir {abs_keys} --repository {abs_repo} "
        f"add {wanted}",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"  umoci unpack --image {layout}:latest bundle && runc run -b bundle demo", soft_wrap=True
    )
    console.print(
        f"  skopeo copy oci:{layout}:latest docker://localhost:5000/demo:latest", soft_wrap=True
    )
    verdict = "[green]all good[/]" if report.ok else "[bold red]something failed (see above)[/]"
    console.print(f"\n{verdict} in {report.seconds:g} s")


@catalog_app.command("build")
def build_command(
    workspace: Path | None = typer.Argument(
        None,
        help="Workspace directory or nanodistro.toml (default: the nearest one, else ./examples).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Build every recipe into the signed repository, every image, and run the smoke tests.

    Keys are generated on the first run. Recipes whose package is already published from the
    same recipe, and images whose config and resolved packages are unchanged, are not rebuilt.
    Exits non-zero if a recipe, an image or a smoke test failed.
    """
    from nanodistro.factory.catalog import run_catalog
    from nanodistro.factory.workspace import load_workspace

    loaded = load_workspace(workspace_file(workspace))
    started = time.monotonic()

    def progress(message: str) -> None:
        if not quiet:
            elapsed = time.monotonic() - started
            err_console.print(
                f"[dim]{elapsed:6.1f}s[/] {escape(message)}", highlight=False, soft_wrap=True
            )

    report = run_catalog(loaded, progress=progress)
    if json_out:
        print_json(report.to_json())
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``catalog`` group to the root app."""
    app.add_typer(catalog_app, name="catalog")
