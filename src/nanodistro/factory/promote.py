"""Promotion (staging -> stable) and the stable history rollback walks back.

The repository's ``stable`` channel and each changed image's ``stable`` tag move together,
channel first; a crash between the two leaves image tags behind, which the next cycle sees as a
difference between staging and stable and finishes (every move is idempotent). Events are
recorded after the moves, so the log never claims a promotion that did not happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nanodistro.errors import ConfigError
from nanodistro.factory import events
from nanodistro.factory.crashpoints import crash_point
from nanodistro.factory.workspace import Workspace
from nanodistro.util.progress import Progress


@dataclass
class StableState:
    """What stable was at some point: a repository version and image digests."""

    version: int | None
    images: dict[str, str] = field(default_factory=dict)


def stable_history(state: Any) -> list[tuple[events.Event, StableState]]:
    """Every promotion and rollback of stable, oldest first, with the state it led to."""
    history = []
    for event in events.query(state, subject="channel:stable"):
        if event.type in (events.PROMOTED, events.ROLLED_BACK):
            version = event.payload.get("version")
            images = dict(event.payload.get("images") or {})
            history.append((event, StableState(version, images)))
    return history


def current_stable(workspace: Workspace) -> StableState:
    from nanodistro.image.tags import tag_digest
    from nanodistro.repo.versions import channel_version

    images = {}
    if workspace.image_out_dir.is_dir():
        for layout in sorted(workspace.image_out_dir.iterdir()):
            if (layout / "index.json").is_file():
                digest = tag_digest(layout, "stable")
                if digest:
                    images[layout.name] = digest
    return StableState(channel_version(workspace.packages_dir, "stable"), images)


def _version_files(workspace: Workspace, number: int | None) -> dict[str, str]:
    from nanodistro.repo.versions import read_version

    if number is None:
        return {}
    files: dict[str, str] = {}
    for arch, packages in read_version(workspace.packages_dir, number).packages.items():
        files.update({f"{arch}/{name}": sha for name, sha in packages.items()})
    return files


def push_to_registry(workspace: Workspace, name: str, tag: str, *, say: Progress) -> None:
    """Push an image's ``tag`` (staging or stable) and the immutable ``build-<N>`` tag of the same
    digest to ``[registry] url``, so the registry keeps a name for every digest it was given (the
    moving tag alone would leave old ones reachable only by digest). The control plane pushes;
    image jobs never touch the registry."""
    from nanodistro.image.tags import list_tags, push_tags, tag_digest

    if not workspace.registry:
        return
    layout = workspace.image_out_dir / name
    digest = tag_digest(layout, tag)
    builds = sorted(
        t for t, d in list_tags(layout).items() if d == digest and t.startswith("build-")
    )
    target = f"{workspace.registry.rstrip('/')}/{name}"
    say(f"push {name}:{','.join([tag, *builds])} -> {target}")
    push_tags(layout, tag, target, [tag, *builds])
    if digest:
        # Every pushed image is signed, its provenance and SBOMs attested (idempotent).
        from nanodistro.factory.imagesign import sign_pushed_image

        sign_pushed_image(workspace, layout, target, digest, say=say)


def move_stable(
    workspace: Workspace,
    version: int,
    images: Mapping[str, str],
    *,
    say: Progress,
    push: bool = True,
) -> None:
    """Point the stable channel and the images' stable tags (and the registry's) at a state."""
    from nanodistro.image.tags import set_tag, tag_digest
    from nanodistro.repo.versions import channel_version, set_channel

    repo = workspace.packages_dir
    if channel_version(repo, "stable") != version:
        set_channel(repo, "stable", version)
        say(f"stable -> repository version {version}")
    crash_point("during-promote")
    for name, digest in sorted(images.items()):
        layout = workspace.image_out_dir / name
        if tag_digest(layout, "stable") != digest:
            set_tag(layout, "stable", digest)
            say(f"image {name}: stable -> {digest[:19]}")
        # Signed and attested in its layout too (idempotent), registry or not: `nanodistro
        # verify out/images/<name>:stable` checks the promoted image as it is.
        from nanodistro.factory.imagesign import sign_layout_image

        sign_layout_image(workspace, layout, "stable", say=say)
        if push:
            push_to_registry(workspace, name, "stable", say=say)


def promote(
    workspace: Workspace,
    state: Any,
    *,
    cycle: str,
    version: int,
    images: Mapping[str, str],
    image_packages: Mapping[str, list[str]],
    say: Progress,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Move stable to the staging state (``images``: each image's staging digest) and record
    ``promoted`` for the channel and each image whose stable digest changed."""
    history = stable_history(state)
    previous = history[-1][1] if history else StableState(None)
    before = current_stable(workspace)
    wanted = {**before.images, **images}
    move_stable(workspace, version, wanted, say=say)
    old_files = _version_files(workspace, previous.version)
    new_files = _version_files(workspace, version)
    added = sorted(f for f, sha in new_files.items() if old_files.get(f) != sha)
    payload = {
        "cycle": cycle,
        "version": version,
        "previous": previous.version,
        "packages": added,
        "images": wanted,
        "previous_images": previous.images,
        **(extra or {}),
    }
    events.record(state, events.PROMOTED, "channel:stable", payload)
    for name, digest in sorted(wanted.items()):
        if previous.images.get(name) != digest:
            events.record(
                state,
                events.PROMOTED,
                f"image:{name}",
                {
                    "cycle": cycle,
                    "digest": digest,
                    "previous": previous.images.get(name),
                    "version": version,
                    "packages": list(image_packages.get(name, [])),
                    **(extra or {}),
                },
            )
    return payload


def promote_staging(workspace: Workspace, state: Any, *, by: str, say: Progress) -> dict[str, Any]:
    """Promote what staging holds now (repository version and every image's staging tag) to
    stable by hand, whatever the gates said at the last cycle: the ``promoted`` events carry
    ``manual`` and who asked, so the log shows the override."""
    from nanodistro.factory.records import image_rows
    from nanodistro.image.tags import tag_digest
    from nanodistro.repo.versions import channel_version

    version = channel_version(workspace.packages_dir, "staging")
    if version is None:
        raise ConfigError("nothing is in staging yet: run a factory cycle first")
    images: dict[str, str] = {}
    if workspace.image_out_dir.is_dir():
        for layout in sorted(workspace.image_out_dir.iterdir()):
            digest = tag_digest(layout, "staging") if (layout / "index.json").is_file() else None
            if digest:
                images[layout.name] = digest
    contents = {(r.name, r.digest): list(r.packages) for r in image_rows(state)}
    cycle = "manual-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = promote(
        workspace,
        state,
        cycle=cycle,
        version=version,
        images=images,
        image_packages={n: contents.get((n, d), []) for n, d in images.items()},
        say=say,
        extra={"manual": True, "by": by},
    )
    return payload
