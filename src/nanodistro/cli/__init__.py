"""The ``nanodistro`` command line.

Each module in this package owns one command or command group and exposes ``register(app)``; this
module only wires them together and turns ``NanodistroError`` into one line on stderr plus a
non-zero exit status (never a traceback).
"""

from __future__ import annotations

import importlib
import sys

from nanodistro import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing (and re) costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import NoReturn

    import typer

# Typer (with Click) is imported by the functions that build or run the app, not here:
# ``nanodistro --version`` answers without it, at the cost of ``python -c pass`` plus this
# package (tests/test_cli_startup.py checks which modules each command line imports).

# Command modules, in the order their commands appear in ``--help``, with the top-level names
# each registers. ``main`` imports only the module a command line needs, so ``nanodistro
# resolve`` does not pay for importing the builder, the image assembler and every model
# (tests/test_cli_basics.py checks this table against what the modules register).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "keys": ("keygen",),
    "repo": ("publish", "index", "repo"),
    "recipe": ("lint",),
    "build": ("build", "test"),
    "rebuild_check": ("rebuild-check",),
    "resolve": ("resolve",),
    "monitor": ("monitor", "bump"),
    "graph": ("graph",),
    "apk": ("apk",),
    "image": ("image",),
    "show": ("show",),
    "catalog": ("catalog",),
    "factory": ("events", "bisect", "factory", "freshness", "rollback"),
    "advisory": ("advisory", "feeds"),
    "scan": ("scan",),
    "vuln": ("vuln",),
    "sbom": ("sbom",),
    "verify": ("verify",),
    "serve": ("serve", "token"),
    "worker_token": ("worker-token",),
    "worker": ("worker",),
}


def _version_callback(value: bool) -> None:
    import typer

    if value:
        typer.echo(f"nanodistro {__version__}")
        raise typer.Exit()


def _root_callback() -> Callable[..., None]:
    import typer

    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ) -> None:
        """Build minimal, reproducible, signed packages and container images from upstream source."""

    return _root


def build_app(modules: Iterable[str] | None = None) -> typer.Typer:
    """The root app with the commands of ``modules`` (default: all of them)."""
    import typer

    from nanodistro.cli import _coerce, _help

    _help.install()  # --help without Python type names (<bool>, <list[Path]>)
    _coerce.install()  # option values converted without importing pydantic
    root = typer.Typer(
        name="nanodistro",
        help="Build minimal, reproducible, signed packages and container images from upstream source.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    root.callback()(_root_callback())
    for name in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(f"nanodistro.cli.{name}").register(root)
    return root


def _modules_for(argv: list[str]) -> list[str] | None:
    """The one module that owns the command named first on the line, or None for all."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command is None and "--version" in argv:
        return []
    for module, names in COMMAND_MODULES.items():
        if command in names:
            return [module]
    return None  # --help, --version, a typo: the full app answers those


def __getattr__(name: str) -> typer.Typer:
    # ``from nanodistro.cli import app`` (tests, embedding) gets the full command tree.
    if name == "app":
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(name)


def _fail(message: str, code: int) -> NoReturn:
    import typer

    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # what the app answers, without importing Typer and Click
        sys.stdout.write(f"nanodistro {__version__}\n")
        sys.exit(0)
    from nanodistro.formats.inflate import command_budget

    # A plain ``resolve`` line runs without Typer and Click (a third of its CPU time, issue 18);
    # anything else, and --help or a usage error of resolve, is the Typer app's.
    fast = None
    if args[:1] == ["resolve"]:
        from nanodistro.cli.resolve import fast_path

        fast = fast_path(args[1:])
    elif args[:2] == ["image", "build"]:  # likewise (cli/image_run.py)
        from nanodistro.cli.image_run import fast_path as image_build_fast_path

        fast = image_build_fast_path(args[2:])
    try:
        # Not standalone: Click's own usage errors reach us too, so they become one line like
        # every other error instead of a boxed usage message.
        # One decompression budget for everything the command inflates (decompression bombs).
        with command_budget():
            if fast is not None:
                fast()
                status = 0
            else:
                status = build_app(_modules_for(args))(
                    args=args, prog_name="nanodistro", standalone_mode=False
                )
    except (Exception, KeyboardInterrupt) as error:
        _exit_for(error)
    if fast is not None and argv is None and args[0] == "resolve":
        _exit_process()
    sys.exit(status if isinstance(status, int) else 0)


def _exit_process() -> None:
    """End the ``nanodistro`` process after a successful fast-path resolve, without the
    interpreter's teardown: freeing the universe and every module object one by one costs
    ~15 ms of a resolve's ~0.25 s (issue 18). Only for the console script (``main()`` without
    arguments): a caller of ``main(argv)`` keeps its process. Nothing is left to clean up (the
    command closed its files and clients); output is flushed first, and if that fails the
    normal exit reports it as it always did."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # e.g. a closed pipe: the normal exit path reports it
        return
    os._exit(0)


def _exit_for(error: BaseException) -> NoReturn:
    """Exit with the one line (and status) for an error the command raised; re-raise others.
    Typer is imported only here on the fast path: a successful run never needs it."""
    import typer

    from nanodistro.errors import NanodistroError

    if isinstance(error, typer.TyperException):  # Click's usage errors (Typer vendors Click)
        if not error.format_message().strip():  # no arguments: Click printed the help already
            sys.exit(error.exit_code)
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        _fail(f"{error.format_message()}{hint}", error.exit_code)
    if isinstance(error, typer.Abort):
        typer.secho("aborted", fg=typer.colors.RED, err=True)
        sys.exit(1)
    if isinstance(error, NanodistroError):
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(error.exit_code)
    if isinstance(error, OSError):
        # Last resort for a file-system failure nobody wrapped (e.g. --out below a regular
        # file): still one line naming the path, never a traceback.
        where = f"{error.filename}: " if error.filename is not None else ""
        typer.secho(f"error: {where}{error.strerror or error}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    if isinstance(error, KeyboardInterrupt):
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        sys.exit(130)
    raise error
