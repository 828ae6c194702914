"""CLI: ``nanodistro build`` and ``nanodistro test`` (melange recipes -> signed APKs)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._build_progress import BuildDisplay
from nanodistro.cli._common import err_console, escape, print_json
from nanodistro.cli._common import source_date_epoch as env_source_date_epoch

if TYPE_CHECKING:
    from nanodistro.builder.config import FailedStep
    from nanodistro.builder.orchestrate import BuildConfig


def _config(
    *,
    recipes: list[Path],
    use_workspace: bool,
    arch: str | None,
    repo: Path | None,
    key: Path | None,
    keyring: list[Path],
    source_cache: Path | None,
    pipeline_dir: list[Path],
    keep_workspace: bool,
    rebuild: bool,
    run_tests: bool,
    source_date_epoch: int | None,
    workspace_dir: Path | None,
    step_timeout: float | None,
    build_timeout: float | None,
    allow_downgrade: bool = False,
    repositories: list[str] | None = None,
    provenance_key: Path | None = None,
) -> BuildConfig:
    from nanodistro.builder.orchestrate import BuildConfig
    from nanodistro.builder.runners import SandboxPolicy, Toolchain
    from nanodistro.factory.workspace import find_workspace, load_workspace
    from nanodistro.formats.purl import DEFAULT_DISTRO
    from nanodistro.trust.keys import load_keyring, load_signing_key
    from nanodistro.util.host import host_arch

    toolchain = Toolchain()
    mirrors: dict[str, str] = {}
    sandbox: dict[str, int | float] = {}
    namespace = DEFAULT_DISTRO  # purl distro outside a workspace (formats/purl.py)
    found = find_workspace(recipes[0]) if use_workspace and recipes else None
    if found is not None:
        # nanodistro.toml fills in what the command line left out
        workspace = load_workspace(found)
        repo = repo or workspace.packages_dir
        key = key or workspace.signing_key()
        provenance_key = provenance_key or workspace.ecdsa_key()
        source_cache = source_cache or workspace.source_cache
        mirrors = dict(workspace.mirrors)
        sandbox = dict(workspace.sandbox)
        namespace = workspace.name  # as the factory builds: the same bytes either way
        root = workspace.toolchain_root
        toolchain = Toolchain(
            host_root=root.parent if root.name == "usr" else root,  # as factory/catalog.py
            provides=toolchain.provides | set(workspace.toolchain_provides),
        )
        if not keyring and workspace.keys_dir.is_dir():
            keyring = [workspace.keys_dir]
    signing_key = load_signing_key(key) if key else None
    provenance_signer = None
    if provenance_key is not None:
        from nanodistro.trust.cosignkey import load_signer

        provenance_signer = load_signer(provenance_key)
    trusted: dict[str, bytes] = dict(load_keyring(keyring)) if keyring else {}
    if signing_key is not None:
        trusted.setdefault(signing_key.keyname, signing_key.public_pem())
    source_date_epoch = env_source_date_epoch(source_date_epoch)
    if step_timeout is None:  # --step-timeout, else [sandbox] step-timeout, else an hour
        step_timeout = float(sandbox.get("step_timeout", DEFAULT_STEP_TIMEOUT))
    policy = SandboxPolicy(**{k: int(v) for k, v in sandbox.items() if k != "step_timeout"})
    return BuildConfig(
        arch=arch or host_arch(),
        repo=repo,
        key=signing_key,
        keyring=trusted or None,
        source_cache=source_cache,
        pipeline_dirs=list(pipeline_dir),
        keep_workspace=keep_workspace,
        keep_failed_logs=False,  # a failed build leaves nothing behind unless --keep-workspace
        rebuild=rebuild,
        run_tests=run_tests,
        source_date_epoch=source_date_epoch,
        workspace_dir=workspace_dir,
        step_timeout=step_timeout,
        build_timeout=build_timeout,
        toolchain=toolchain,
        mirrors=mirrors,
        allow_downgrade=allow_downgrade,
        sandbox=policy,
        extra_repos=list(repositories or []),
        provenance_key=provenance_signer,
        namespace=namespace,
    )


def _debug_shell(display: BuildDisplay, debug: bool) -> Callable[[FailedStep], None] | None:
    """``--debug``: a failing step opens a shell in its sandbox, on a terminal only."""
    if not debug:
        return None
    if not sys.stdin.isatty():
        err_console.print(
            "[yellow]warning:[/] --debug needs a terminal (stdin is not a TTY): "
            "a failing step fails the build as usual",
            highlight=False,
        )
        return None

    def open_shell(failed: FailedStep) -> None:
        with display.paused():
            err_console.print(
                f"[bold yellow]debug:[/] {escape(failed.label)} failed (log: "
                f"{escape(str(failed.log))}); a shell in its sandbox at "
                f"{escape(failed.workdir)}: exit it to end the build",
                highlight=False,
            )
            status = failed.open_shell()
            err_console.print(f"debug shell exited ({status}); the build fails", highlight=False)

    return open_shell


@contextlib.contextmanager
def _interruptible(display: BuildDisplay) -> Iterator[None]:
    """Ctrl-C: one line naming what was interrupted (the workspace line came before it), exit
    status 130, no traceback."""
    try:
        yield
    except KeyboardInterrupt:
        display.close()
        err_console.print(f"[bold red]{escape(display.interruption())}[/]", highlight=False)
        raise typer.Exit(130) from None
    finally:
        display.close()


ARCH = typer.Option(None, "--arch", help="Target architecture (apk name; default: this machine's).")
REPO = typer.Option(None, "--repo", help="Local repository to resolve from and publish to.")
KEY = typer.Option(None, "--key", help="RSA private key to sign packages and the index with.")
KEYRING = typer.Option([], "--keyring", help="Public key file/dir trusted for repo packages.")
PROVENANCE_KEY = typer.Option(
    None,
    "--provenance-key",
    help="ECDSA key (cosign.key) signing each published package's SLSA provenance "
    "(<apk>.intoto.jsonl); default: the workspace's keys/cosign.key.",
)
REPOSITORIES = typer.Option(
    [],
    "--repository",
    "-X",
    help="More repositories (directory or URL) to resolve from; dependencies of published "
    "packages may be provided there (like apk's --repository).",
)
CACHE = typer.Option(
    None, "--source-cache", help="Source cache directory (default ~/.cache/nanodistro/sources)."
)
PIPELINE_DIR = typer.Option(
    [], "--pipeline-dir", help="Extra pipeline directory, searched before the built-ins."
)
KEEP = typer.Option(
    False,
    "--keep-workspace",
    help="Keep the build workspace (logs, sources, sandbox root) and print where it is; "
    "without it the workspace is removed, also when the build fails or is interrupted.",
)
SDE = typer.Option(
    None,
    "--source-date-epoch",
    help="Timestamp for every file (default: $SOURCE_DATE_EPOCH, recipe git commit time, "
    "newest source file time).",
)
WORKDIR = typer.Option(None, "--workspace-dir", help="Where build workspaces are created.")
DEFAULT_STEP_TIMEOUT = 3600.0
STEP_TIMEOUT = typer.Option(
    None,
    "--step-timeout",
    help="Seconds one step may run (default: [sandbox] step-timeout, else 3600).",
)
BUILD_TIMEOUT = typer.Option(None, "--timeout", help="Seconds the whole build may run.")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Stream step output to stderr.")
DEBUG = typer.Option(
    False,
    "--debug",
    help="When a step fails, open a shell in its sandbox (same root, mounts, environment and "
    "working directory) before the build fails; needs a terminal.",
)
JSON = typer.Option(False, "--json", help="Print the results as JSON.")
WORKSPACE = typer.Option(
    True,
    "--workspace/--no-workspace",
    help="Take defaults (repository, key, source cache, mirrors, toolchain) from the "
    "nanodistro.toml above the recipe. SBOM purls name the workspace's distribution "
    "(pkg:apk/<workspace name>/...; 'nanodistro' outside a workspace).",
)


def build(
    recipes: list[Path] = typer.Argument(
        ...,
        help="melange recipe files, or directories: their top-level *.yaml (a workspace "
        "root: its recipes directory), as lint and graph read them.",
    ),
    arch: str | None = ARCH,
    repo: Path | None = REPO,
    key: Path | None = KEY,
    keyring: list[Path] = KEYRING,
    provenance_key: Path | None = PROVENANCE_KEY,
    repository: list[str] = REPOSITORIES,
    source_cache: Path | None = CACHE,
    pipeline_dir: list[Path] = PIPELINE_DIR,
    keep_workspace: bool = KEEP,
    rebuild: bool = typer.Option(False, "--rebuild", help="Build even if already published."),
    no_test: bool = typer.Option(False, "--no-test", help="Do not run the test: pipelines."),
    out: Path = typer.Option(
        Path("packages"), "--out", help="Where packages go when no --repo is given."
    ),
    source_date_epoch: int | None = SDE,
    workspace_dir: Path | None = WORKDIR,
    step_timeout: float | None = STEP_TIMEOUT,
    build_timeout: float | None = BUILD_TIMEOUT,
    verbose: bool = VERBOSE,
    debug: bool = DEBUG,
    json_output: bool = JSON,
    use_workspace: bool = WORKSPACE,
    allow_downgrade: bool = typer.Option(
        False,
        "--allow-downgrade",
        help="Accept a repository index older than the one accepted before (replay check).",
    ),
) -> None:
    """Build recipes into signed APKs in a network-less sandbox, test them and publish them.

    Several recipes are built in dependency order. With --repo (and --key) each result is published to the repository with a freshly signed index, and a recipe whose package is already published from the same recipe is skipped. Without --repo, packages are written to --out/<arch>/. Defaults come from the nanodistro.toml above the recipe, if any.
    """
    from nanodistro.builder.orchestrate import build_recipes, write_packages
    from nanodistro.cli._build_checks import check_repositories, signing_key_hint
    from nanodistro.cli._recipe_args import print_note, recipe_files

    # a directory means its recipes, other YAML skipped with a note (cli/_recipe_args.py)
    recipes = recipe_files(recipes, note=print_note)
    check_repositories(repository)
    config = _config(
        recipes=list(recipes),
        use_workspace=use_workspace,
        arch=arch,
        repo=repo,
        key=key,
        keyring=keyring,
        source_cache=source_cache,
        pipeline_dir=pipeline_dir,
        keep_workspace=keep_workspace,
        rebuild=rebuild,
        run_tests=not no_test,
        source_date_epoch=source_date_epoch,
        workspace_dir=workspace_dir,
        step_timeout=step_timeout,
        build_timeout=build_timeout,
        allow_downgrade=allow_downgrade,
        repositories=repository,
        provenance_key=provenance_key,
    )
    if config.repo is not None and config.key is None:
        raise signing_key_hint(config.repo, recipes[0], use_workspace)
    display = BuildDisplay(err_console)
    config.on_step_failure = _debug_shell(display, debug)
    with _interruptible(display):
        results = build_recipes(
            recipes,
            config,
            progress=display,
            on_log_line=display.log_line if verbose else None,
        )
    for result in results:
        if not config.repo and not result.skipped:
            result.published = write_packages(result, out)
        for warning in result.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if json_output:
        print_json([r.to_json() for r in results])
        return
    for result in results:
        if result.skipped:
            typer.echo(f"skipped {result.name}-{result.version}: {result.skip_reason}")
            continue
        for path in result.published:
            typer.echo(str(path))


def test(
    recipe: Path = typer.Argument(..., help="melange recipe file."),
    package: list[Path] = typer.Option(
        [], "--package", "-p", help=".apk files to test (default: the recipe's from --repo)."
    ),
    arch: str | None = ARCH,
    repo: Path | None = REPO,
    keyring: list[Path] = KEYRING,
    repository: list[str] = REPOSITORIES,
    source_cache: Path | None = CACHE,
    pipeline_dir: list[Path] = PIPELINE_DIR,
    keep_workspace: bool = KEEP,
    workspace_dir: Path | None = WORKDIR,
    step_timeout: float | None = STEP_TIMEOUT,
    verbose: bool = VERBOSE,
    json_output: bool = JSON,
    use_workspace: bool = WORKSPACE,
) -> None:
    """Run a recipe's test: pipelines against built packages in a fresh sandbox."""
    from nanodistro.builder.orchestrate import test_recipe
    from nanodistro.cli._build_checks import check_repositories

    check_repositories(repository)
    config = _config(
        recipes=[recipe],
        use_workspace=use_workspace,
        arch=arch,
        repo=repo,
        key=None,
        keyring=keyring,
        source_cache=source_cache,
        pipeline_dir=pipeline_dir,
        keep_workspace=keep_workspace,
        rebuild=False,
        run_tests=True,
        source_date_epoch=None,
        workspace_dir=workspace_dir,
        step_timeout=step_timeout,
        build_timeout=None,
        repositories=repository,
    )
    display = BuildDisplay(err_console)
    with _interruptible(display):
        result = test_recipe(
            recipe,
            config,
            packages=package,
            progress=display,
            on_log_line=display.log_line if verbose else None,
        )
    if json_output:
        print_json(result.to_json())
        return
    for outcome in result.tests:
        typer.echo(f"{'PASS' if outcome.passed else 'FAIL'} {outcome.package}")
    if not result.tests:
        typer.echo(f"{result.name}: no test pipelines")


def register(app: typer.Typer) -> None:
    """Add ``build`` and ``test`` to the root app."""
    app.command("build")(build)
    app.command("test")(test)
