"""CLI: ``nanodistro publish`` and ``nanodistro index`` — the signed local repository."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from nanodistro.cli._common import err_console, print_json
from nanodistro.repo import publish as publish_packages
from nanodistro.repo import reindex
from nanodistro.trust.keys import load_keyring, load_signing_key


def _progress(quiet: bool) -> Callable[[str], None] | None:
    """Progress lines go to stderr, so --json output on stdout stays parseable."""
    if quiet:
        return None
    return lambda message: err_console.print(message, highlight=False, markup=False)


def publish(
    files: list[Path] = typer.Argument(..., help=".apk files to publish."),
    repo: Path = typer.Option(..., "--repo", help="Repository root; packages go to REPO/ARCH/."),
    key: Path = typer.Option(..., "--key", help="Private RSA key that signs the index."),
    keyring: list[Path] = typer.Option(
        [],
        "--keyring",
        help="Public key file or directory; when given, every package must be signed by it "
        "(repeatable).",
    ),
    description: str = typer.Option(
        None, "--description", help="Index DESCRIPTION (default: keep the current one)."
    ),
    noarch_arch: list[str] = typer.Option(
        [],
        "--noarch-arch",
        help="Arch directory that receives noarch packages (repeatable; default: every arch "
        "directory present, else x86_64 and aarch64).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print what was published as JSON."),
) -> None:
    """Publish packages into a repository and re-sign each touched ARCH/APKINDEX.tar.gz.

    Published files are immutable: a different file under an existing NAME-VERSION.apk is
    refused; the identical file is a no-op. Safe to run concurrently (the repository is locked).
    """
    signing_key = load_signing_key(key)
    trusted = load_keyring(keyring) if keyring else None
    result = publish_packages(
        files,
        repo,
        signing_key,
        trusted,
        description=description,
        noarch_archs=noarch_arch or None,
        progress=_progress(json_output),
    )
    if json_output:
        print_json(
            {
                "packages": [
                    {
                        "name": p.name,
                        "version": p.version,
                        "arch": p.arch,
                        "path": str(p.path),
                        "sha256": p.sha256,
                        "checksum": p.checksum,
                        "status": p.status,
                    }
                    for p in result.packages
                ],
                "indexes": {arch: str(path) for arch, path in sorted(result.indexes.items())},
                "keyname": signing_key.keyname,
            }
        )
        return
    for p in result.packages:
        typer.echo(f"{p.status:9s} {p.arch}/{p.path.name}")
    for path in sorted(result.indexes.values()):
        typer.echo(f"signed    {path} ({signing_key.keyname})")


def index(
    arch_dir: Path = typer.Argument(..., help="Arch directory, e.g. repo/x86_64."),
    key: Path = typer.Option(..., "--key", help="Private RSA key that signs the index."),
    description: str = typer.Option(
        None, "--description", help="Index DESCRIPTION (default: keep the current one)."
    ),
    keyring: list[Path] = typer.Option(
        [],
        "--keyring",
        help="Public key file or directory; when given, every package must be signed by it.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the index summary as JSON."),
) -> None:
    """Regenerate and sign ARCH_DIR/APKINDEX.tar.gz from the .apk files in it."""
    signing_key = load_signing_key(key)
    trusted = load_keyring(keyring) if keyring else None
    result = reindex(
        arch_dir,
        signing_key,
        description,
        keyring=trusted,
        progress=_progress(json_output),
    )
    path = arch_dir / "APKINDEX.tar.gz"
    if json_output:
        print_json(
            {
                "index": str(path),
                "description": result.description,
                "keyname": result.verified_by,
                "packages": [
                    {"name": p.name, "version": p.version, "arch": p.arch, "checksum": p.checksum}
                    for p in result.packages
                ],
            }
        )
        return
    typer.echo(f"signed {path}: {len(result.packages)} packages ({result.verified_by})")


def register(app: typer.Typer) -> None:
    """Add ``publish`` and ``index`` to the root app."""
    app.command("publish")(publish)
    app.command("index")(index)
