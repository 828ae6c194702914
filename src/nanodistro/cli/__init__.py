"""The ``nanodistro`` command line.

Each module in this package owns one command or command group and exposes ``register(app)``; this
module only wires them together and turns ``NanodistroError`` into one line on stderr plus a
non-zero exit status (never a traceback).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from nanodistro import __version__
from nanodistro.errors import NanodistroError

# Command modules, in the order their commands appear in ``--help``.
_COMMAND_MODULES = (
    "keys",  # keygen
    "apk",  # apk pack | info | verify
    "repo",  # publish, index
    "recipe",  # lint
    "build",  # build, test
    "resolve",  # resolve
    "image",  # image build | lock | push | diff
    "monitor",  # monitor, bump
    "graph",  # graph
    "catalog",  # catalog build
)

app = typer.Typer(
    name="nanodistro",
    help="Build minimal, reproducible, signed packages and container images from upstream source.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"nanodistro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Build minimal, reproducible, signed packages and container images from upstream source."""


def _register_all() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"nanodistro.cli.{name}")
        module.register(app)


_register_all()


def _fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        # Not standalone: Click's own usage errors reach us too, so they become one line like
        # every other error instead of a boxed usage message.
        status = app(args=argv, prog_name="nanodistro", standalone_mode=False)
    except typer.TyperException as error:  # Click's usage errors (Typer vendors Click)
        if not error.format_message().strip():  # no arguments: Click printed the help already
            sys.exit(error.exit_code)
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        _fail(f"{error.format_message()}{hint}", error.exit_code)
    except typer.Abort:
        typer.secho("aborted", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except NanodistroError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(error.exit_code)
    except OSError as error:
        # Last resort for a file-system failure nobody wrapped (e.g. --out below a regular
        # file): still one line naming the path, never a traceback.
        where = f"{error.filename}: " if error.filename is not None else ""
        typer.secho(f"error: {where}{error.strerror or error}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
