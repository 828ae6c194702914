"""Which upstream repository (and tag or commit) each recipe's packages are built from: the key
for matching OSV ``GIT`` ranges (vuln/match.py). Read from a recipe's ``git-checkout`` step, or a
GitHub archive URL in its ``fetch`` step."""

from __future__ import annotations

import re
from pathlib import Path

from nanodistro.errors import NanodistroError
from nanodistro.vuln.match import GitSource

__all__ = ["git_sources_from_recipes"]

_GITHUB_ARCHIVE = re.compile(
    r"^(?P<repo>https://github\.com/[^/]+/[^/]+)/archive/(?:refs/tags/)?(?P<tag>.+?)"
    r"\.(?:tar\.gz|tgz|tar\.bz2|tar\.xz|zip)$"
)


def git_sources_from_recipes(paths: list[Path], warnings: list[str]) -> dict[str, GitSource]:
    """package name (main and subpackages) -> upstream repository, tag/commit and version, from
    each recipe's ``git-checkout`` step (``repository``, ``tag``/``expected-commit``) or a
    GitHub archive URL in its ``fetch`` step."""
    from nanodistro.recipe.loading import load_recipe
    from nanodistro.recipe.substitute import base_substitutions, substitute

    sources: dict[str, GitSource] = {}
    for path in paths:
        try:
            recipe = load_recipe(path)
            mapping = base_substitutions(recipe)
            source = None
            for top in recipe.pipeline:
                for step in top.walk():
                    values = {
                        k: substitute(v, mapping, recipe.where, f"with.{k}")
                        for k, v in step.with_.items()
                    }
                    if step.uses == "git-checkout" and values.get("repository"):
                        ref = values.get("expected-commit") or values.get("tag", "")
                        source = GitSource(values["repository"], ref, recipe.package.version)
                    elif step.uses == "fetch" and (
                        m := _GITHUB_ARCHIVE.match(values.get("uri", ""))
                    ):
                        source = GitSource(m["repo"], m["tag"], recipe.package.version)
                    if source is not None:
                        break
                if source is not None:
                    break
            if source is None:
                continue
            names = [recipe.package.name]
            for sub in recipe.subpackages:
                if not sub.range_:
                    names.append(substitute(sub.name, mapping, recipe.where, "subpackages.name"))
            for name in names:
                sources[name] = source
        except NanodistroError as error:
            warnings.append(f"{error}; its upstream is not matched against GIT ranges")
    return sources
