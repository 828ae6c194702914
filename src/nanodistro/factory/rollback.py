"""``nanodistro rollback stable [--to VERSION]``: move stable back, packages and images together.

Without ``--to``, stable goes back to the promoted state before the current one; with it, to the
state that was promoted with repository version VERSION. The repository channel and every
image's ``stable`` tag (and the registry's, when configured) move, and ``rolled-back`` is
recorded. The gates then refuse to promote the same staging state again (gates.py
``rolled_back_policy``) until something changes, so the next cycle does not undo the rollback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import ConfigError
from nanodistro.factory import events
from nanodistro.factory.promote import StableState, current_stable, move_stable, stable_history
from nanodistro.factory.workspace import Workspace
from nanodistro.util.progress import Progress


@dataclass
class RollbackResult:
    channel: str
    before: StableState
    after: StableState
    images_moved: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "from": {"version": self.before.version, "images": self.before.images},
            "to": {"version": self.after.version, "images": self.after.images},
            "images_moved": self.images_moved,
        }


def _target(state: Any, current: StableState, to: int | None) -> StableState:
    promoted = [s for e, s in stable_history(state) if e.type == events.PROMOTED]
    if not promoted:
        raise ConfigError("stable was never promoted by the factory: nothing to roll back to")
    if to is not None:
        for candidate in reversed(promoted):
            if candidate.version == to:
                return candidate
        known = sorted({s.version for s in promoted if s.version is not None})
        raise ConfigError(
            f"repository version {to} was never promoted to stable "
            f"(promoted: {', '.join(map(str, known))})",
            field="--to",
        )
    # the promotion that made the current state, then the one before it that differs
    index = max(
        (i for i, s in enumerate(promoted) if s.version == current.version), default=len(promoted)
    )
    for candidate in reversed(promoted[:index]):
        if candidate.version != current.version or candidate.images != current.images:
            return candidate
    raise ConfigError(
        f"no promoted state before the current stable (repository version {current.version})"
    )


def rollback(
    workspace: Workspace,
    state: Any,
    *,
    channel: str = "stable",
    to: int | None = None,
    progress: Progress | None = None,
) -> RollbackResult:
    if channel != "stable":
        raise ConfigError(
            f"only the stable channel is rolled back (staging follows the next cycle), got {channel!r}",
            field="CHANNEL",
        )
    say = progress or (lambda _m: None)
    before = current_stable(workspace)
    target = _target(state, before, to)
    if target.version is None:
        raise ConfigError("the promoted state names no repository version")
    images = {n: d for n, d in target.images.items() if (workspace.image_out_dir / n).is_dir()}
    move_stable(workspace, target.version, images, say=say)
    after = current_stable(workspace)
    moved = {n: d for n, d in images.items() if before.images.get(n) != d}
    events.record(
        state,
        events.ROLLED_BACK,
        f"channel:{channel}",
        {
            "from": before.version,
            "from_images": before.images,
            "version": target.version,
            "images": after.images,
        },
    )
    for name, digest in sorted(moved.items()):
        events.record(
            state,
            events.ROLLED_BACK,
            f"image:{name}",
            {"from": before.images.get(name), "digest": digest, "version": target.version},
        )
    return RollbackResult(channel, before, after, moved)
