"""CLI: ``nanodistro show config|packages IMAGE`` — apko's ``show-config`` and ``show-packages``.

``show config`` prints the image config as a build uses it: includes merged, defaults of the
workspace (repository, keyring, archs) and of the command line filled in, as YAML. ``show
packages`` resolves the config against those repositories (as ``image lock`` does, nothing is
installed) and prints one line per package and architecture in one of apko's formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from nanodistro.cli._common import print_json
from nanodistro.errors import ConfigError

show_app = typer.Typer(
    name="show",
    help="Show an image config as a build sees it, or the packages it resolves to (apko's "
    "show-config / show-packages).",
    no_args_is_help=True,
)

# apko show-packages' pre-defined formats ({name}, {version}, {source}; arch with {arch})
FORMATS: dict[str, str] = {
    "name-version": "{name} {version}",
    "name-version-source": "{name} {version} {source}",
    "name=version": "{name}={version}",
    "name=version-source": "{name}={version} {source}",
    "name-(version)": "{name} ({version})",
    "name-(version)-source": "{name} ({version}) {source}",
    "packagelock": "- {name}={version}",
    "packagelock-source": "- {name}={version} # {source}",
    "name-version-arch": "{name} {version} {arch}",
}

CONFIG = typer.Argument(..., help="apko image config (YAML), e.g. images/NAME.yaml.")
ARCH = typer.Option([], "--arch", help="Only these architectures (repeatable).")
REPO = typer.Option([], "--repo", help="Extra repository (directory or URL), repeatable.")
KEYRING = typer.Option([], "--keyring", help="Extra trusted key directory or file.")
WORKSPACE = typer.Option(
    True,
    "--workspace/--no-workspace",
    help="Take defaults (repository, keyring, archs) from the nanodistro.toml above the config.",
)


def _request(
    config: Path, use_workspace: bool, arch: list[str], repo: list[str], keyring: list[Path]
) -> Any:
    """The BuildRequest ``image build`` would make from the same arguments."""
    from nanodistro.cli.image import _workspace_defaults
    from nanodistro.image.build import BuildRequest
    from nanodistro.imageconfig import load_config

    if not config.is_file():
        raise ConfigError("no such image config file", where=str(config))
    loaded = load_config(config)
    arch, repo, keyring = _workspace_defaults(config, use_workspace, arch, repo, keyring)
    return BuildRequest(
        loaded=loaded, archs=list(arch) or None, repositories=list(repo), keyring_paths=keyring
    )


def effective_config(request: Any) -> dict[str, Any]:
    """The config as the build reads it (apko's keys), with the repositories, keyring and
    architectures it builds with."""
    from nanodistro.image.build import build_repository_entries

    config = request.loaded.config
    doc: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    doc.pop("include", None)  # merged already
    contents = doc.setdefault("contents", {})
    contents["repositories"] = build_repository_entries(request)
    contents.pop("build_repositories", None)  # part of the list above, as the build uses it
    keyring = [*config.contents.keyring, *(str(p) for p in request.keyring_paths)]
    if keyring:
        contents["keyring"] = keyring
    doc["archs"] = [arch.oci for arch in config.target_archs(request.archs)]
    return doc


@show_app.command("config")
def show_config(
    config: Path = CONFIG,
    arch: list[str] = ARCH,
    repo: list[str] = REPO,
    keyring: list[Path] = KEYRING,
    use_workspace: bool = WORKSPACE,
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print the image config after includes and defaults, as YAML (apko show-config)."""
    import yaml

    doc = effective_config(_request(config, use_workspace, arch, repo, keyring))
    if json_out:
        print_json(doc)
        return
    typer.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), nl=False)


@show_app.command("packages")
def show_packages(
    config: Path = CONFIG,
    arch: list[str] = ARCH,
    repo: list[str] = REPO,
    keyring: list[Path] = KEYRING,
    use_workspace: bool = WORKSPACE,
    output_format: str = typer.Option(
        "name-version",
        "--format",
        help=f"One of {', '.join(FORMATS)}, or a template with {{name}}, {{version}}, "
        "{source} and {arch}.",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print [{name, version, arch, source}] as JSON."
    ),
) -> None:
    """Print the packages the config resolves to, per architecture (apko show-packages).

    Resolution is the build's (and `image lock`'s): the config's repositories plus the
    workspace's, every package signature-checked; nothing is installed. With several
    architectures, a `# <arch>` line starts each one's list (except with --json)."""
    from nanodistro.image.build import lock_image

    template = FORMATS.get(output_format, output_format)
    try:
        template.format(name="", version="", source="", arch="")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"bad --format {output_format!r}: {error} (use one of {', '.join(FORMATS)}, or "
            "{name}, {version}, {source}, {arch})"
        ) from None
    lock = lock_image(_request(config, use_workspace, arch, repo, keyring))
    rows = [
        {"name": p.name, "version": p.version, "arch": p.architecture, "source": p.url}
        for p in lock.packages
    ]
    if json_out:
        print_json(rows)
        return
    archs = list(dict.fromkeys(row["arch"] for row in rows))
    for current in archs:
        if len(archs) > 1:
            typer.echo(f"# {current}")
        for row in rows:
            if row["arch"] == current:
                typer.echo(template.format(**row))


def register(app: typer.Typer) -> None:
    """Add the ``show`` group to the root app."""
    app.add_typer(show_app)
