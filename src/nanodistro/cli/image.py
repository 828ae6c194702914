"""CLI: ``nanodistro image build | lock | diff | push`` (apko-compatible image assembly);
``image sign | attest`` live in cli/image_sign.py, ``image publish`` in cli/image_publish.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from nanodistro.cli._common import err_console, print_json
from nanodistro.cli._common import source_date_epoch as env_source_date_epoch
from nanodistro.errors import ConfigError
from nanodistro.util.progress import Progress

image_app = typer.Typer(
    name="image",
    help="Assemble OCI images from apko configs; lock, diff and push them.",
    no_args_is_help=True,
)


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


WORKSPACE = typer.Option(
    True,
    "--workspace/--no-workspace",
    help="Take defaults (repository, keyring, archs) from the nanodistro.toml above the config.",
)

# Options ``image build`` and ``image publish`` (cli/image_publish.py) share, one definition each.
ARCH = typer.Option([], "--arch", help="Build only these architectures (repeatable).")
LOCKFILE = typer.Option(None, "--lockfile", help="Install exactly the packages of this lock file.")
REPO = typer.Option([], "--repo", help="Extra repository (directory or URL), repeatable.")
KEYRING = typer.Option([], "--keyring", help="Extra trusted key directory or file.")
SOURCE_DATE_EPOCH = typer.Option(
    None,
    "--source-date-epoch",
    help="Timestamp for synthesized files and image dates (default: $SOURCE_DATE_EPOCH, else package build dates).",
)
CACHE_DIR = typer.Option(None, "--cache-dir", help="Keep fetched packages here.")
ALLOW_DOWNGRADE = typer.Option(
    False,
    "--allow-downgrade",
    help="Accept a repository index older than the one accepted before (replay check).",
)


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


@image_app.command("build")
def build_command(
    config: Path = typer.Argument(..., help="apko image config (YAML)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output OCI layout DIR, or FILE.tar for an oci-archive."
    ),
    arch: list[str] = ARCH,
    lockfile: Path | None = LOCKFILE,
    repo: list[str] = REPO,
    keyring: list[Path] = KEYRING,
    push: list[str] = typer.Option(
        [],
        "--push",
        help="Also push the image to this registry reference (repeatable: one upload, every tag).",
    ),
    sbom: bool = typer.Option(
        True,
        "--sbom/--no-sbom",
        help="With --push, attach the SPDX SBOMs (tag sha256-<hex>.sbom, as cosign).",
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Use plain HTTP for --push."),
    source_date_epoch: int | None = SOURCE_DATE_EPOCH,
    tag: str = typer.Option(
        "latest", "--tag", help="ref.name annotation in the layout's index.json."
    ),
    cache_dir: Path | None = CACHE_DIR,
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    use_workspace: bool = WORKSPACE,
) -> None:
    """Build an image from an apko config: resolve, install, layer, write an OCI layout."""
    from nanodistro.cli.image_publish import echo_pushed, push_built
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
            typer.echo(f"{image['arch']}: {image['digest']} ({len(image['packages'])} packages)")
        typer.echo(f"index: {result.digest} -> {out}")
        if published:
            echo_pushed(published)


@image_app.command("lock")
def lock_command(
    config: Path = typer.Argument(..., help="apko image config (YAML)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Lock file to write (default: <config stem>.lock.json beside the config).",
    ),
    arch: list[str] = typer.Option([], "--arch", help="Lock only these architectures."),
    repo: list[str] = typer.Option([], "--repo", help="Extra repository (directory or URL)."),
    keyring: list[Path] = typer.Option(
        [], "--keyring", help="Extra trusted key directory or file."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the lock to stdout as well."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    use_workspace: bool = WORKSPACE,
) -> None:
    """Resolve the config and write an apko-style lock file (name, version, url, checksums).

    Inside a workspace, the repository, keys and archs the command line leaves out come from its
    nanodistro.toml, as for `image build`."""
    from nanodistro.image.build import BuildRequest, lock_image
    from nanodistro.imageconfig import load_config
    from nanodistro.util.atomic import atomic_write_bytes

    arch, repo, keyring = _workspace_defaults(config, use_workspace, arch, repo, keyring)
    loaded = load_config(config)
    request = BuildRequest(
        loaded=loaded,
        archs=list(arch) or None,
        repositories=list(repo),
        keyring_paths=list(keyring),
    )
    lock = lock_image(request, progress=_progress(not quiet))
    target = out or config.with_name(
        config.name.removesuffix(".yaml").removesuffix(".yml") + ".lock.json"
    )
    atomic_write_bytes(target, lock.to_bytes())
    if json_out:
        print_json(lock.to_dict())
    else:
        typer.echo(f"{len(lock.packages)} packages locked -> {target}")


@image_app.command("diff")
def diff_command(
    a: str = typer.Argument(
        ..., help="Old image: OCI layout dir, oci-archive tar, lock file or registry reference."
    ),
    b: str = typer.Argument(..., help="New image, same kinds."),
    arch: str | None = typer.Option(None, "--arch", help="Compare only this architecture."),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP for registry references."),
    json_out: bool = typer.Option(False, "--json", help="Print the diff as JSON."),
) -> None:
    """Packages added, removed, upgraded, downgraded between two images, and the size change."""
    from nanodistro.image.diff import diff_images, load_image_packages

    old = load_image_packages(a, insecure=insecure)
    new = load_image_packages(b, insecure=insecure)
    result = diff_images(old, new, arch=arch)
    if json_out:
        print_json(result)
        return
    for arch_name, change in result["archs"].items():
        typer.echo(f"[{arch_name}]")
        for item in change["added"]:
            typer.echo(f"  + {item['name']} {item['version']}")
        for item in change["removed"]:
            typer.echo(f"  - {item['name']} {item['version']}")
        for item in change["upgraded"]:
            typer.echo(f"  ↑ {item['name']} {item['old']} -> {item['new']}")
        for item in change["downgraded"]:
            typer.echo(f"  ↓ {item['name']} {item['old']} -> {item['new']}")
        if change.get("size_change") is not None:
            typer.echo(
                f"  size: {change['old_size']} -> {change['new_size']} ({change['size_change']:+d} bytes)"
            )
        if not any(change[k] for k in ("added", "removed", "upgraded", "downgraded")):
            typer.echo("  no package changes")


@image_app.command("push")
def push_command(
    layout: Path = typer.Argument(..., help="OCI layout directory to push."),
    reference: str = typer.Argument(..., help="Registry reference, e.g. 127.0.0.1:5000/app:tag."),
    insecure: bool = typer.Option(False, "--insecure", help="Use plain HTTP."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Push an OCI layout (its index and every blob) to a registry."""
    from nanodistro.registry import push_layout

    digest = push_layout(layout, reference, insecure=insecure)
    if json_out:
        print_json({"reference": reference, "digest": digest})
    else:
        typer.echo(f"{reference}@{digest}")


def register(app: typer.Typer) -> None:
    """Add the ``image`` group to the root app."""
    from nanodistro.cli import image_publish, image_sign

    image_sign.register(image_app)  # image sign | attest
    image_publish.register(image_app)  # image publish
    app.add_typer(image_app, name="image")
