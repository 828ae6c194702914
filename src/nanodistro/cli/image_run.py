"""``nanodistro image build``'s work, without Typer and Click: the command in cli/image.py and
:func:`fast_path` both run :func:`run_build`.

A plain command line (``image build CONFIG -o OUT`` with the options listed in ``_VALUE_OPTIONS``
and ``_FLAGS``) is parsed by :func:`fast_path` (Typer and Click are ~0.1 s of the command's start,
issue 18: images faster than umoci, whole process). Anything else — ``--help``, ``--push``, an
unknown or misspelled option, a missing value, ``--``, an option value that looks like an
option, a number Click would read differently — goes to the Typer app, so help and usage errors
stay Typer's (tests/image/test_image_fast_path.py runs a table of command lines both ways).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nanodistro.cli._common import err_console, print_json
from nanodistro.cli._common import source_date_epoch as env_source_date_epoch
from nanodistro.errors import ConfigError
from nanodistro.util.progress import Progress

# Rich's console (~40 ms to import) is only needed when the line could come out differently
# from the text: a terminal (the dim style), forced colour, a set width, a line it would wrap
# (its log width, _common._LOG_WIDTH, is 160) or an emoji code (``:name:``) it would replace.
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")
_PLAIN_WIDTH = 160


def _plain_line(message: str) -> bool:
    """True when Rich would print ``message`` to a non-terminal stderr exactly as written."""
    import os
    import re

    return (
        not sys.stderr.isatty()
        and not any(os.environ.get(name) for name in _RICH_ENV)
        and len(message) < _PLAIN_WIDTH
        and message.isascii()
        and message.isprintable()
        and message == message.strip()
        and re.search(r":\S*?:", message) is None
    )


def _progress(enabled: bool) -> Progress | None:
    if not enabled:
        return None

    def report(message: str) -> None:
        if _plain_line(message):
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        else:
            err_console.print(message, style="dim", highlight=False, markup=False)

    return report


def _workspace_defaults(
    config: Path, use_workspace: bool, arch: list[str], repo: list[str], keyring: list[Path]
) -> tuple[list[str], list[str], list[Path]]:
    """What the command line left out, from the workspace the config is in, as ``nanodistro run``
    builds its images (factory/catalog.py): the workspace's repository, keys and archs."""
    from nanodistro.factory.workspace import find_workspace, load_workspace

    found = find_workspace(config) if use_workspace else None
    if found is None:
        return arch, repo, keyring
    workspace = load_workspace(found)
    if not repo and workspace.packages_dir.is_dir():
        repo = [str(workspace.packages_dir)]
    if not keyring and workspace.keys_dir.is_dir():
        keyring = [workspace.keys_dir]  # its *.pub files
    return arch or list(workspace.archs), repo, keyring


def _workspace_name(config: Path, use_workspace: bool) -> str | None:
    """The purl distro of the workspace the config is in (its packages carry it), or None."""
    from nanodistro.factory.workspace import find_workspace, load_workspace

    found = find_workspace(config) if use_workspace else None
    return load_workspace(found).name if found is not None else None


def build_request(
    config: Path,
    *,
    use_workspace: bool,
    arch: list[str],
    repo: list[str],
    keyring: list[Path],
    lockfile: Path | None,
    source_date_epoch: int | None,
    cache_dir: Path | None,
    allow_downgrade: bool,
    tag: str = "latest",
) -> Any:
    """The BuildRequest ``image build`` and ``image publish`` (cli/image_publish.py) make from
    their shared options."""
    from nanodistro.image.build import BuildRequest
    from nanodistro.image.lock import read_lock
    from nanodistro.imageconfig import load_config

    loaded = load_config(config)
    arch, repo, keyring = _workspace_defaults(config, use_workspace, arch, repo, keyring)
    return BuildRequest(
        loaded=loaded,
        archs=list(arch) or None,
        repositories=list(repo),
        keyring_paths=list(keyring),
        lock=read_lock(lockfile) if lockfile else None,
        source_date_epoch=env_source_date_epoch(source_date_epoch),
        cache_dir=cache_dir,
        ref_name=tag,
        allow_downgrade=allow_downgrade,
        distro=_workspace_name(config, use_workspace),
    )


def run_build(
    config: Path,
    out: Path,
    *,
    arch: list[str],
    lockfile: Path | None,
    repo: list[str],
    keyring: list[Path],
    push: list[str],
    sbom: bool,
    insecure: bool,
    source_date_epoch: int | None,
    tag: str,
    cache_dir: Path | None,
    allow_downgrade: bool,
    json_out: bool,
    quiet: bool,
    use_workspace: bool,
    echo: Callable[[str], Any],
) -> None:
    """``image build``: build, write the layout, push if asked, print the summary with ``echo``."""
    from nanodistro.image.build import build_image, write_result

    request = build_request(
        config,
        use_workspace=use_workspace,
        arch=arch,
        repo=repo,
        keyring=keyring,
        lockfile=lockfile,
        source_date_epoch=source_date_epoch,
        cache_dir=cache_dir,
        allow_downgrade=allow_downgrade,
        tag=tag,
    )
    if push and str(out).endswith(".tar"):
        raise ConfigError("--push needs a layout directory for --out, not an archive")
    result = build_image(request, progress=_progress(not quiet))
    write_result(result, out)
    published = None
    if push:
        from nanodistro.cli.image_publish import push_built

        published = push_built(
            result, out, push, sbom=sbom, insecure=insecure, progress=_progress(not quiet)
        )
    images: list[dict[str, Any]] = [
        {
            "arch": image.arch.apk,
            "platform": str(image.descriptor.platform),
            "digest": image.descriptor.digest,
            "layers": [layer.digest for layer in image.layers],
            "packages": [f"{p.apk.name}-{p.apk.version}" for p in image.root.packages],
        }
        for image in result.images
    ]
    summary = {
        "digest": result.digest,
        "out": str(out),
        "pushed": published["digest"] if published else None,
        "published": published,
        "images": images,
    }
    if json_out:
        print_json(summary)
    else:
        for image in images:
            echo(f"{image['arch']}: {image['digest']} ({len(image['packages'])} packages)")
        echo(f"index: {result.digest} -> {out}")
        if published:
            from nanodistro.cli.image_publish import echo_pushed

            echo_pushed(published)


# The options fast_path understands, by every spelling Click accepts for them alone (a short
# option's value attached, ``-oOUT``, is left to Click), mapped to their parameter.
_VALUE_OPTIONS = {"--out": "out", "-o": "out", "--arch": "arch", "--repo": "repo",
                  "--keyring": "keyring", "--lockfile": "lockfile", "--tag": "tag",
                  "--cache-dir": "cache_dir", "--source-date-epoch": "source_date_epoch"}  # fmt: skip
_MULTIPLE = ("arch", "repo", "keyring")
_FLAGS = {"--json": ("json_out", True), "--quiet": ("quiet", True), "-q": ("quiet", True),
          "--insecure": ("insecure", True), "--allow-downgrade": ("allow_downgrade", True),
          "--sbom": ("sbom", True), "--no-sbom": ("sbom", False),
          "--workspace": ("use_workspace", True), "--no-workspace": ("use_workspace", False)}  # fmt: skip


def _echo(line: str) -> None:
    # click.echo for text without escape sequences (fast_path declines those): the line, a
    # newline, a flush
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fast_path(argv: list[str]) -> Callable[[], None] | None:
    """The run of ``nanodistro image build ARGV`` if ARGV is a plain, complete command line that
    Click would parse the same way; None hands it to the Typer app."""
    from nanodistro.cli._plain_argv import scan

    defaults = {"json_out": False, "quiet": False, "insecure": False, "allow_downgrade": False,
                "sbom": True, "use_workspace": True}  # fmt: skip
    parsed = scan(argv, _VALUE_OPTIONS, _FLAGS, defaults)
    if parsed is None:
        return None  # --help, -h, --push, --, -, -oOUT, a typo: Typer answers
    positional, values, flags = parsed.positional, parsed.values, parsed.flags
    if len(positional) != 1 or not values["out"]:
        return None  # Click's "Missing argument/option" or "unexpected extra argument"
    single = {name: v[-1] if v else None for name, v in values.items()}  # the last one wins
    epoch = single["source_date_epoch"]
    if epoch is not None and not (epoch.isascii() and epoch.isdigit()):
        return None  # Click's int conversion (signs, spaces, underscores, errors) decides
    out, lockfile, cache_dir = single["out"], single["lockfile"], single["cache_dir"]
    assert out is not None

    def run() -> None:
        run_build(
            Path(positional[0]),
            Path(out),
            arch=values["arch"],
            lockfile=Path(lockfile) if lockfile is not None else None,
            repo=values["repo"],
            keyring=[Path(k) for k in values["keyring"]],
            push=[],
            sbom=flags["sbom"],
            insecure=flags["insecure"],
            source_date_epoch=int(epoch) if epoch is not None else None,
            tag=single["tag"] or "latest",
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            allow_downgrade=flags["allow_downgrade"],
            json_out=flags["json_out"],
            quiet=flags["quiet"],
            use_workspace=flags["use_workspace"],
            echo=_echo,
        )

    return run
