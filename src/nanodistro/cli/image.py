"""CLI: ``nanodistro image build | lock | diff | push`` (apko-compatible image assembly);
``image sign | attest`` live in cli/image_sign.py, ``image publish`` in cli/image_publish.py."""

from __future__ import annotations

from pathlib import Path

import typer

from nanodistro.cli._common import print_json

# build_request, _progress and _workspace_defaults are also imported from here by
# cli/image_publish.py, show.py and factory.py.
from nanodistro.cli.image_run import (  # noqa: F401
    _progress,
    _workspace_defaults,
    build_request,
    run_build,
)

image_app = typer.Typer(
    name="image",
    help="Assemble OCI images from apko configs; lock, diff and push them.",
    no_args_is_help=True,
)


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
    run_build(
        config,
        out,
        arch=arch,
        lockfile=lockfile,
        repo=repo,
        keyring=keyring,
        push=push,
        sbom=sbom,
        insecure=insecure,
        source_date_epoch=source_date_epoch,
        tag=tag,
        cache_dir=cache_dir,
        allow_downgrade=allow_downgrade,
        json_out=json_out,
        quiet=quiet,
        use_workspace=use_workspace,
        echo=typer.echo,
    )


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
