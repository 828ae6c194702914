"""CLI: ``nanodistro resolve`` — the package closure of a world, in install order.

A plain command line (``resolve ATOMS... --repo R --keyring K [--arch A] [--insecure]
[--allow-downgrade] [--json]``) is parsed by :func:`fast_path` without Typer and Click, whose
import is a third of the command's CPU time (issue 18: resolve within 3x of apk-tools, whole
process). Anything else — ``--help``, an unknown or misspelled option, a missing value, ``--``,
an option value that looks like an option — goes to the Typer app, so help and usage errors
stay exactly Typer's (tests/test_resolve_fast_path.py runs a table of command lines both ways).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nanodistro.errors import NanodistroError

if TYPE_CHECKING:
    import typer

HELP = """Resolve PACKAGES against signed repositories and print the closure in install order.

    Output matches `apk add --simulate`: "(1/N) Installing name (version)". With --json, a
    failure prints {"error", "where", "line", "field"} on stdout too (and exits 1).

    Every index must be signed by a key in the keyring, and no older than the one accepted
    before from the same repository (state: $NANODISTRO_INDEX_STATE, default
    ~/.cache/nanodistro/index-state.json). A repository written legacy:URL may hold packages
    without a datahash. Parsed indexes are cached by digest in ~/.cache/nanodistro/index
    (signatures are still checked on every read; NANODISTRO_INDEX_CACHE=off disables it).
    """

# The options fast_path understands, by every spelling Click accepts for them alone (a short
# option's value attached, ``-rURL``, is left to Click), mapped to their parameter.
_VALUE_OPTIONS = {"--repo": "repo", "-r": "repo", "--keyring": "keyring", "-k": "keyring",
                  "--arch": "arch"}  # fmt: skip
_FLAGS = {"--insecure": ("insecure", True), "--allow-downgrade": ("allow_downgrade", True),
          "--json": ("json_output", True)}  # fmt: skip


def fast_path(argv: list[str]) -> Callable[[], None] | None:
    """The run of ``nanodistro resolve ARGV`` if ARGV is a plain, complete command line that
    Click would parse the same way; None hands it to the Typer app."""
    from nanodistro.cli._plain_argv import scan

    defaults = dict.fromkeys([flag for flag, _setting in _FLAGS.values()], False)
    parsed = scan(argv, _VALUE_OPTIONS, _FLAGS, defaults)
    if parsed is None:
        return None  # --help, -h, --, -, -rURL, a typo: Typer answers
    packages, values, flags = parsed.positional, parsed.values, parsed.flags
    if not packages or not values["repo"] or not values["keyring"]:
        return None  # Click's "Missing argument/option" message
    arch = values["arch"][-1] if values["arch"] else None  # the last one wins, as in Click

    def run() -> None:
        if arch is None:
            from nanodistro.util.host import host_arch

            chosen = host_arch()
        else:
            chosen = arch
        resolve(
            packages,
            values["repo"],
            [Path(k) for k in values["keyring"]],
            chosen,
            insecure=flags["insecure"],
            allow_downgrade=flags["allow_downgrade"],
            json_output=flags["json_output"],
        )

    return run


def resolve(
    packages: list[str],
    repo: list[str],
    keyring: list[Path],
    arch: str,
    *,
    insecure: bool,
    allow_downgrade: bool,
    json_output: bool,
) -> None:
    """The command's work, for both the Typer command and the fast path."""
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
            from nanodistro.cli._common import print_json

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
    # Imported here so other commands do not pay for httpx and the solver at start-up (and a
    # plain run, not for json and Rich: cli._common when printing JSON or progress).
    import sys

    from nanodistro.resolve import RepositoryClient, parse_repository, solve
    from nanodistro.resolve.index_cache import IndexCache
    from nanodistro.trust.keys import load_keyring

    repositories = [parse_repository(spec, where="--repo") for spec in repo]
    keys = load_keyring(keyring)

    def progress(message: str) -> None:  # fetching a remote index; Rich made on first use
        from nanodistro.cli._common import err_console

        err_console.print(message, highlight=False, markup=False)

    with RepositoryClient(
        keys,
        insecure=insecure,
        progress=None if json_output else progress,
        allow_downgrade=allow_downgrade,
        index_cache=IndexCache.from_environment(),
    ) as client:
        universe = client.load_universe(repositories, arch)
    resolution = solve(universe, packages)
    if json_output:
        from nanodistro.cli._common import print_json  # json, for this output only

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
    # What typer.echo does per line (no styling to strip), written at once.
    sys.stdout.write("".join(f"{line}\n" for line in resolution.simulate_lines()))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add ``resolve`` to the root app."""
    import typer

    from nanodistro.util.host import host_arch

    def resolve_command(
        packages: list[str] = typer.Argument(
            ..., help="World atoms: name, name>=1.2, so:libc.so.6, !name, name@tag."
        ),
        repo: list[str] = typer.Option(
            ...,
            "--repo",
            "-r",
            help="Repository URL or directory ('@tag URL' to tag it); repeatable.",
        ),
        keyring: list[Path] = typer.Option(
            ...,
            "--keyring",
            "-k",
            help="Directory of trusted *.pub keys, or a key file; repeatable.",
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
        resolve(
            packages,
            repo,
            keyring,
            arch,
            insecure=insecure,
            allow_downgrade=allow_downgrade,
            json_output=json_output,
        )

    resolve_command.__doc__ = HELP
    app.command("resolve")(resolve_command)
