"""The factory's reproducibility sampling: each cycle rebuilds a few recipes independently
(builder/reproducibility.py) and records, per package version, whether the rebuild was
byte-identical to what was published.

The record is the event log: one ``reproducibility-checked`` event per package, subject
``package:<name>``, payload ``{version, arch, recipe, status, file, published_sha256,
rebuilt_sha256, differences, message, cycle}``. A check is a dated observation, not a property
set once — the same version may be checked again later (another toolchain, another host) and
the newest observation is the current verdict — which is what an append-only log holds; a table
of its own would hold the same rows again.

Which recipes: ``[reproducibility] sample`` per cycle (0 = off), chosen deterministically from
the recipes the cycle built: those never checked first, then the least recently checked, by
name. A cycle that built fewer takes catalog recipes whose current version was never checked,
by name — so an idle factory (or repeated ``make run``) works through the whole catalog, one
sample at a time, and then stops rebuilding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.workspace import Workspace
from nanodistro.util.progress import Progress, prefixed

# Differences kept per event (the CLI rebuild-check shows them all): enough to name the cause.
_RECORDED_DIFFERENCES = 50
_MESSAGE_LIMIT = 2000


@dataclass
class ReproducibilityStatus:
    """The catalog's reproducibility as the event log says: over the catalog's current package
    versions, how many were checked and how many of those were identical (newest check wins)."""

    catalog: int = 0
    checked: int = 0
    identical: int = 0
    differing: list[str] = field(default_factory=list)  # name-version of the others
    this_cycle: list[dict[str, str]] = field(default_factory=list)  # package, version, status

    def line(self) -> str:
        """``7/7 packages checked identical (7 of 9 in the catalog checked)``."""
        text = f"{self.identical}/{self.checked} packages checked identical"
        if self.checked < self.catalog:
            text += f" ({self.checked} of {self.catalog} in the catalog checked)"
        if self.differing:
            text += f"; not: {', '.join(self.differing)}"
        return text


def _history(state: Any) -> list[events.Event]:
    return events.query(state, types=[events.REPRODUCIBILITY_CHECKED])


def choose_sample(
    state: Any,
    built: Sequence[str],
    current: dict[str, str],
    sample: int,
    cost: Mapping[str, float] | None = None,
) -> list[str]:
    """``sample`` recipe names to check: of ``built`` (this cycle's), never checked first, then
    the least recently checked, the cheapest first (``cost``: recipe -> seconds its build took;
    a sample of one then costs a cycle seconds, not the biggest build again), then by name; then
    recipes of ``current`` (recipe -> version) whose version was never checked, by name."""
    cost = cost or {}
    if sample <= 0:
        return []
    last: dict[str, datetime] = {}
    checked_versions: set[tuple[str, str]] = set()
    for event in _history(state):
        recipe = str(event.payload.get("recipe", ""))
        last[recipe] = event.time
        checked_versions.add((recipe, str(event.payload.get("version", ""))))
    ordered = sorted(
        set(built), key=lambda r: (r in last, last.get(r), cost.get(r, float("inf")), r)
    )
    unchecked = sorted(r for r, v in current.items() if (r, v) not in checked_versions)
    chosen: list[str] = []
    for recipe in [*ordered, *unchecked]:
        if recipe not in chosen:
            chosen.append(recipe)
    return chosen[:sample]


def check_sample(
    workspace: Workspace,
    state: Any,
    config: Any,
    *,
    built: Sequence[str],
    cycle: str,
    say: Progress,
    cost: Mapping[str, float] | None = None,
) -> list[dict[str, str]]:
    """Rebuild this cycle's sample for ``config.arch`` (a builder ``BuildConfig`` as the builds
    used), record one event per package; returns what was checked (package, version, status)."""
    from nanodistro.builder.reproducibility import rebuild_check
    from nanodistro.recipe.model import load_recipe

    paths: dict[str, Path] = {}
    current: dict[str, str] = {}
    for path in workspace.recipe_files():
        try:
            recipe = load_recipe(path)
        except NanodistroError:
            continue  # reported by the build step already
        paths[recipe.package.name] = path
        current[recipe.package.name] = recipe.package.full_version
    chosen = choose_sample(
        state, [b for b in built if b in paths], current, workspace.reproducibility_sample, cost
    )
    if not chosen:
        return []
    say(f"reproducibility: rebuilding {', '.join(chosen)} independently")
    try:
        checks = rebuild_check(
            [paths[name] for name in chosen], config, progress=prefixed(say, "rebuild-check")
        )
    except NanodistroError as error:  # no repository or keyring: said, not fatal
        say(f"reproducibility: not checked: {error}")
        return []
    done: list[dict[str, str]] = []
    for check in checks:
        for package in check.packages:
            payload = {
                "version": package.version,
                "arch": package.arch,
                "recipe": package.recipe,
                "status": package.status,
                "file": package.file,
                "published_sha256": package.published_sha256,
                "rebuilt_sha256": package.rebuilt_sha256,
                "differences": [str(d) for d in package.differences[:_RECORDED_DIFFERENCES]],
                "message": package.message[:_MESSAGE_LIMIT],
                "notes": check.notes,
                "cycle": cycle,
            }
            events.record(state, events.REPRODUCIBILITY_CHECKED, f"package:{package.name}", payload)
            done.append(
                {"package": package.name, "version": package.version, "status": package.status}
            )
            say(f"reproducibility: {package.name}-{package.version} {package.status}")
    return done


def catalog_status(
    state: Any, packages: Iterable[tuple[str, str, str]], this_cycle: Sequence[dict[str, str]] = ()
) -> ReproducibilityStatus:
    """The status over ``packages`` (name, version, arch), from every check recorded so far."""
    newest: dict[tuple[str, str, str], str] = {}
    for event in _history(state):
        name = event.subject.removeprefix("package:")
        key = (name, str(event.payload.get("version")), str(event.payload.get("arch")))
        newest[key] = str(event.payload.get("status"))
    status = ReproducibilityStatus(this_cycle=list(this_cycle))
    for name, version, arch in sorted(set(packages)):
        status.catalog += 1
        verdict = newest.get((name, version, arch))
        if verdict is None or verdict == "missing":
            continue
        status.checked += 1
        if verdict == "identical":
            status.identical += 1
        else:
            status.differing.append(f"{name}-{version} {verdict}")
    return status
