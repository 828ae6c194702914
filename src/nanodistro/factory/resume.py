"""Finishing what a killed cycle left half done, before the next cycle starts its own work.

Two steps of a cycle are not one atomic move and are not redone by anything else:

- **A bump** rewrites a recipe, then commits it and records ``recipe-bumped``. Killed between
  the two, the recipe already names the new version, so the monitor sees nothing to bump and the
  build would run from an uncommitted recipe (another ``package.commit``, no bump commit, no
  event). So a bump writes a journal entry (``.nanodistro/bumps/<recipe>.json``) *before* it
  edits the file and removes it after the event; an entry found at the start of a cycle whose
  recipe no longer holds the old version is finished (commit + event), any other is dropped.
- **A publish** writes the package files, then the signed index. Killed in between, the files
  are in ``<repo>/<arch>/`` but no index lists them, and the builder takes a file with the same
  recipe hash for "already published". Such files were admitted, tested and passed the
  consistency gate before anything was written, so the interrupted publish is finished: they are
  published again (same bytes: their names are unchanged, the index gains them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.gitcommit import bump_message, commit_paths
from nanodistro.factory.workspace import Workspace
from nanodistro.util.atomic import atomic_write_text
from nanodistro.util.progress import Progress


@dataclass
class PendingBump:
    recipe: str
    path: str
    old: str  # full version before the bump (version-rEPOCH)
    reason: str = ""  # an epoch bump's cause ("" for an upstream release)


def _journal(workspace: Workspace) -> Path:
    return workspace.root / ".nanodistro" / "bumps"


def begin_bump(workspace: Workspace, pending: PendingBump) -> Path:
    """Write the journal entry of a bump about to rewrite its recipe."""
    entry = _journal(workspace) / f"{pending.recipe}.json"
    atomic_write_text(entry, json.dumps(asdict(pending), sort_keys=True))
    return entry


def end_bump(entry: Path) -> None:
    entry.unlink(missing_ok=True)


def finish_bumps(workspace: Workspace, state: Any, *, git: bool, say: Progress) -> list[str]:
    """Commit and record the bumps a killed cycle rewrote but did not finish; their names."""
    from nanodistro.recipe.model import load_recipe

    finished: list[str] = []
    folder = _journal(workspace)
    for entry in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            pending = PendingBump(**json.loads(entry.read_text()))
            path = Path(pending.path)
            new = load_recipe(path).package.full_version
        except (OSError, ValueError, TypeError, NanodistroError) as error:
            say(f"dropping the unreadable bump journal entry {entry.name}: {error}")
            end_bump(entry)
            continue
        if new == pending.old:  # killed before the rewrite: the next monitor redoes it
            end_bump(entry)
            continue
        commit = ""
        if git:
            message = bump_message(pending.recipe, pending.old, new, reason=pending.reason)
            touched = [path, *([path.parent / pending.recipe] if not pending.reason else [])]
            touched = [p for p in touched if p.exists()]
            commit = commit_paths(workspace.root, touched, message) or ""
        payload = {"old": pending.old, "new": new, "commit": commit, "retired_patches": []}
        if pending.reason:
            payload["reason"] = pending.reason
        events.record(state, events.RECIPE_BUMPED, f"recipe:{pending.recipe}", payload)
        say(f"finished the interrupted bump {pending.recipe}: {pending.old} -> {new}")
        end_bump(entry)
        finished.append(pending.recipe)
    return finished


def finish_publishes(config: Any, say: Progress) -> list[str]:
    """Publish the package files of ``config.arch`` that no index lists (a publish killed
    between its files and its index); their names."""
    from nanodistro.builder import environment as env_mod
    from nanodistro.builder.publishing import upstream_of
    from nanodistro.repo.repository import load_index, publish

    arch_dir = Path(config.repo) / config.arch
    if not arch_dir.is_dir():
        return []
    index = load_index(arch_dir, dict(config.keyring))
    listed = {p.filename for p in index.packages} if index else set()
    unlisted = sorted(f for f in arch_dir.glob("*.apk") if f.name not in listed)
    if not unlisted:
        return []
    say(f"finishing an interrupted publish: {', '.join(f.name for f in unlisted)}")
    publish(
        unlisted,
        config.repo,
        config.key,
        dict(config.keyring),
        progress=say,
        upstream=upstream_of(config),
        host_provides=env_mod.ToolchainIndex(config.toolchain).satisfies,
    )
    return [f.name for f in unlisted]
