"""Lint rules about release monitoring: the ``update:`` block exists, is valid and names the source.

``missing-update-block``, ``update-disabled-reason``, ``valid-update-schedule``,
``git-checkout-must-use-github-updates`` and ``update-identifier-must-match-git-repository``:
what the monitor needs to find upstream releases of the recipe's real source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from nanodistro.recipe.lint.model import LintContext, Problem, step_uses
from nanodistro.recipe.lint.sources import try_substitute


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


def _checkout_repositories(ctx: LintContext) -> list[str]:
    """The GitHub ``owner/name`` of every git-checkout, after substituting ``${{package.*}}`` and
    ``${{vars.*}}`` (melange substitutes them before wolfictl compares)."""
    found = []
    for _path, with_ in step_uses(ctx, "git-checkout"):
        raw = with_.get("repository", "")
        repo = _github_repo(try_substitute(ctx, raw) or raw)
        if repo:
            found.append(repo)
    return found


def git_checkout_github_updates(ctx: LintContext) -> Iterator[Problem]:
    # wolfictl: an enabled update: block for a GitHub git-checkout names a github: or git:
    # monitor (they report the tag's commit for expected-commit); release-monitor does not.
    assert ctx.recipe is not None
    update = ctx.recipe.update
    if update is None or not update.enabled or update.github or update.git:
        return
    if _checkout_repositories(ctx):
        yield (
            ("update",),
            "the source is a GitHub git-checkout but update: has no github: or git: monitor "
            "(needed to find the tag's expected-commit)",
        )


def update_identifier_matches(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    update = ctx.recipe.update
    if update is None or update.github is None:
        return
    repos = _checkout_repositories(ctx)
    raw = update.github.identifier
    identifier = (try_substitute(ctx, raw) or raw).lower().removesuffix(".git")
    if repos and identifier not in repos:
        yield (
            ("update", "github", "identifier"),
            f"update.github.identifier {identifier!r} is not the git-checkout "
            f"repository ({', '.join(repos)})",
        )
