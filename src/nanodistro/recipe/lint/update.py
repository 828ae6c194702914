"""Lint rules about release monitoring: the ``update:`` block exists, is valid and names the source.

``missing-update-block``, ``update-disabled-reason``, ``valid-update-schedule``,
``git-checkout-must-use-github-updates`` and ``update-identifier-must-match-git-repository``:
what the monitor needs to find upstream releases of the recipe's real source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from nanodistro.recipe.lint.model import LintContext, Problem, step_uses


def missing_update(ctx: LintContext) -> Iterator[Problem]:
    if "update" not in ctx.raw:
        yield ("package",), "no update: block; nanodistro cannot monitor upstream releases"


def update_disabled_reason(ctx: LintContext) -> Iterator[Problem]:
    update = ctx.raw.get("update")
    disabled = isinstance(update, dict) and str(update.get("enabled", "")).lower() == "false"
    if disabled and isinstance(update, dict) and not update.get("exclude-reason"):
        yield ("update", "enabled"), "update disabled without exclude-reason"


def update_schedule(ctx: LintContext) -> Iterator[Problem]:
    update = ctx.raw.get("update")
    schedule = update.get("schedule") if isinstance(update, dict) else None
    if isinstance(schedule, dict):
        period = schedule.get("period")
        if period not in ("daily", "weekly", "monthly"):
            yield (
                ("update", "schedule", "period"),
                f"schedule period {period!r} must be daily, weekly or monthly",
            )


def _github_repo(url: str) -> str | None:
    match = re.match(r"^(?:https?://|git@)github\.com[/:]([^/]+/[^/]+?)(?:\.git)?/?$", url)
    return match.group(1).lower() if match else None


def git_checkout_github_updates(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    update = ctx.recipe.update
    if update is None or not update.enabled or update.github or update.git:
        return
    if update.release_monitor or update.manual:
        return
    for _path, with_ in step_uses(ctx, "git-checkout"):
        if _github_repo(with_.get("repository", "")):
            yield (
                ("update",),
                "the source is a GitHub git-checkout but update: has no github: or git: monitor",
            )
            return


def update_identifier_matches(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    update = ctx.recipe.update
    if update is None or update.github is None:
        return
    found = [
        _github_repo(with_.get("repository", "")) for _, with_ in step_uses(ctx, "git-checkout")
    ]
    repos = [r for r in found if r]
    if repos and update.github.identifier.lower().removesuffix(".git") not in repos:
        yield (
            ("update", "github", "identifier"),
            f"update.github.identifier {update.github.identifier!r} is not the git-checkout "
            f"repository ({', '.join(repos)})",
        )
