"""CLI: ``nanodistro image publish CONFIG REF...`` (``apko publish``) and the pushing half of
``image build --push``.

Registered onto the ``image`` group by cli/image.py. One build, then either every reference
pushed with one upload of the blobs per repository and the SPDX SBOMs attached as ``cosign attach
sbom`` does (image/publish.py), or with ``--local`` the image loaded into docker or podman
(image/local_store.py). Credentials: ``~/.docker/config.json`` (``auths``, ``credHelpers``,
``credsStore``), as ``docker login`` leaves them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from nanodistro.cli._common import print_json
from nanodistro.cli.image import (
    ALLOW_DOWNGRADE,
    ARCH,
    CACHE_DIR,
    KEYRING,
    LOCKFILE,
    REPO,
    SOURCE_DATE_EPOCH,
    WORKSPACE,
)
from nanodistro.errors import ConfigError
from nanodistro.util.progress import Progress

if TYPE_CHECKING:
    from nanodistro.image.build import BuildResult

SBOM_OPTION_HELP = "Attach the SPDX SBOMs to the pushed image (tag sha256-<hex>.sbom, as cosign)."


def push_built(
    result: BuildResult,
    out: Path,
    references: list[str],
    *,
    sbom: bool,
    insecure: bool,
    progress: Progress | None,
) -> dict[str, Any]:
    """Push the layout ``out`` (just written from ``result``) to ``references``; JSON-able
    summary: digest, references, attached SBOMs."""
    from nanodistro.image.publish import publish_layout, sbom_attachments

    if str(out).endswith(".tar"):
        raise ConfigError("--push needs a layout directory for --out, not an archive")
    published = publish_layout(
        out,
        references,
        sboms=sbom_attachments(result) if sbom else None,
        insecure=insecure,
        progress=progress,
    )
    return {
        "digest": published.digest,
        "references": published.references,
        "sboms": [
            {
                "repository": s.repository,
                "subject": s.subject,
                "tag": s.tag,
                "manifest": s.manifest_digest,
            }
            for s in published.sboms
        ],
    }


def echo_pushed(pushed: dict[str, Any]) -> None:
    for reference in pushed["references"]:
        typer.echo(f"pushed: {reference}@{pushed['digest']}")
    for attached in pushed["sboms"]:
        typer.echo(f"sbom: {attached['repository']}:{attached['tag']}")


def publish_command(
    config: Path = typer.Argument(..., help="apko image config (YAML)."),
    references: list[str] = typer.Argument(
        ...,
        help="Registry references to tag, e.g. 127.0.0.1:5000/app:1.2 127.0.0.1:5000/app:latest.",
        metavar="REF",
        show_default=False,
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Also keep the OCI layout in DIR (default: a temporary one)."
    ),
    local: bool = typer.Option(
        False,
        "--local",
        help="Load the image into the local docker daemon (or podman) instead of pushing.",
    ),
    sbom: bool = typer.Option(True, "--sbom/--no-sbom", help=SBOM_OPTION_HELP),
    arch: list[str] = ARCH,
    lockfile: Path | None = LOCKFILE,
    repo: list[str] = REPO,
    keyring: list[Path] = KEYRING,
    insecure: bool = typer.Option(False, "--insecure", help="Allow plain HTTP to the registry."),
    source_date_epoch: int | None = SOURCE_DATE_EPOCH,
    cache_dir: Path | None = CACHE_DIR,
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    use_workspace: bool = WORKSPACE,
) -> None:
    """Build an image and publish it under every REF, as `apko publish CONFIG TAG...`: one
    upload, every tag, SBOMs attached; or load it into docker/podman with --local."""
    from nanodistro.cli.image import _progress, build_request
    from nanodistro.image.build import build_image, write_result
    from nanodistro.image.local_store import load_local
    from nanodistro.registry import parse_reference

    for reference in references:
        parse_reference(reference)  # a typo fails before the build, not after it
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
    )
    progress = _progress(not quiet)
    if local:
        from nanodistro.image.local_store import find_local_store, local_tags

        local_tags(references)  # a digest reference cannot name a local image
        store = find_local_store()  # say "none found" before spending a build on it
        result = build_image(request, progress=progress)
        if out is not None:
            write_result(result, out)
        loaded = load_local(result, references, store=store)
        summary: dict[str, Any] = {
            "digest": result.digest,
            "local": {
                "store": loaded.store,
                "arch": loaded.arch,
                "image_id": loaded.image_id,
                "tags": loaded.tags,
            },
        }
        if json_out:
            print_json(summary)
            return
        for tag in loaded.tags:
            typer.echo(f"loaded into {loaded.store}: {tag} ({loaded.arch}, {loaded.image_id})")
        return
    result = build_image(request, progress=progress)
    with tempfile.TemporaryDirectory(prefix="nanodistro-publish-") as scratch:
        layout = out if out is not None else Path(scratch) / "layout"
        write_result(result, layout)
        pushed = push_built(
            result, layout, list(references), sbom=sbom, insecure=insecure, progress=progress
        )
    if json_out:
        print_json({**pushed, "out": str(out) if out else None})
        return
    echo_pushed(pushed)


def register(image_app: typer.Typer) -> None:
    image_app.command("publish")(publish_command)
