"""CLI: ``nanodistro resolve`` — the package closure of a world, in install order."""

from __future__ import annotations

import gc
from pathlib import Path

import typer

from nanodistro.cli._common import err_console, print_json
from nanodistro.errors import NanodistroError
from nanodistro.util.host import host_arch


def resolve_command(
    packages: list[str] = typer.Argument(
        ..., help="World atoms: name, name>=1.2, so:libc.so.6, !name, name@tag."
    ),
    repo: list[str] = typer.Option(
        ..., "--repo", "-r", help="Repository URL or directory ('@tag URL' to tag it); repeatable."
    ),
    keyring: list[Path] = typer.Option(
        ..., "--keyring", "-k", help="Directory of trusted *.pub keys, or a key file; repeatable."
    ),
    arch: str = typer.Option(host_arch(), "--arch", help="Architecture of the indexes to use."),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Allow plain http to non-loopback hosts (signatures still checked).",
    ),
    allow_downgrade: bool = typer.Option(
        False,
        "--allow-downgrade",
        help="Accept an index older than the one accepted before from the same repository "
        "(refused by default: a mirror may replay an old signed index).",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print name/version/repository/checksum as JSON."
    ),
) -> None:
    """Resolve PACKAGES against signed repositories and print the closure in install order.

    Output matches `apk add --simulate`: "(1/N) Installing name (version)". With --json, a
    failure prints {"error", "where", "line", "field"} on stdout too (and exits 1).

    Every index must be signed by a key in the keyring, and no older than the one accepted
    before from the same repository (state: $NANODISTRO_INDEX_STATE, default
    ~/.cache/nanodistro/index-state.json). A repository written legacy:URL may hold packages
    without a datahash. Parsed indexes are cached by digest in ~/.cache/nanodistro/index
    (signatures are still checked on every read; NANODISTRO_INDEX_CACHE=off disables it).
    """
    # The command creates a few hundred thousand objects (the index, the solver's states, the
    # modules it imports), none of them cyclic garbage: every collection their allocation
    # triggers would scan them all again, and once more at exit (a third of the command's CPU
    # time, issue 18). Collection pauses while it runs; what is still alive afterwards is
    # frozen (gc.freeze: never scanned again) before collection resumes.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _resolve(packages, repo, keyring, arch, insecure, allow_downgrade, json_output)
    except NanodistroError as error:
        if json_output:  # a script reading stdout gets a document either way
            print_json(
                {"error": error.message, "where": error.where, "line": error.line,
                 "field": error.field}
            )  # fmt: skip
        raise  # and the one error: line on stderr, non-zero exit
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _resolve(
    packages: list[str],
    repo: list[str],
    keyring: list[Path],
    arch: str,
    insecure: bool,
    allow_downgrade: bool,
    json_output: bool,
) -> None:
    # Imported here so other commands do not pay for httpx and the solver at start-up.
    from nanodistro.resolve import RepositoryClient, parse_repository, solve
    from nanodistro.resolve.index_cache import IndexCache
    from nanodistro.trust.keys import load_keyring

    repositories = [parse_repository(spec, where="--repo") for spec in repo]
    keys = load_keyring(keyring)
    progress = (
        None
        if json_output
        else (lambda message: err_console.print(message, highlight=False, markup=False))
    )
    with RepositoryClient(
        keys,
        insecure=insecure,
        progress=progress,
        allow_downgrade=allow_downgrade,
        index_cache=IndexCache.from_environment(),
    ) as client:
        universe = client.load_universe(repositories, arch)
    resolution = solve(universe, packages)
    if json_output:
        print_json(
            [
                {
                    "name": p.name,
                    "version": p.version,
                    "arch": p.candidate.info.arch or arch,
                    "repository": p.repository.url,
                    "tag": p.tag,
                    "checksum": p.checksum,
                    "url": f"{p.repository.url}/{arch}/{p.candidate.info.filename}",
                }
                for p in resolution.packages
            ]
        )
        return
    for line in resolution.simulate_lines():
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``resolve`` to the root app."""
    app.command("resolve")(resolve_command)
