"""Lint rules about sources: fetch and git-checkout steps are verified, pinned, version-following.

``missing-checksum``, ``valid-pipeline-fetch-digest``, ``missing-expected-commit``,
``valid-pipeline-git-checkout-tag-or-branch``, ``valid-pipeline-fetch-uri`` and
``version-not-in-fetch-uri``: what the builder needs to download a source reproducibly and what a
version bump needs to fetch the new one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from nanodistro.errors import NanodistroError
from nanodistro.recipe.lint.model import LintContext, Problem, step_uses
from nanodistro.recipe.model import Recipe
from nanodistro.recipe.substitute import (
    arch_substitutions,
    base_substitutions,
    find_variables,
    substitute,
)


def try_substitute(ctx: LintContext, text: str) -> str | None:
    """``text`` with package/vars substituted, or None if it needs build-time variables."""
    assert ctx.recipe is not None
    try:
        return substitute(text, _base(ctx.recipe))
    except NanodistroError:
        return None


_BASE_CACHE: dict[int, dict[str, str]] = {}


def _base(recipe: Recipe) -> dict[str, str]:
    key = id(recipe)
    cached = _BASE_CACHE.get(key)
    if cached is None:
        try:
            cached = base_substitutions(recipe, arch_substitutions("x86_64"))
        except NanodistroError:
            cached = {}
        _BASE_CACHE.clear()
        _BASE_CACHE[key] = cached
    return cached


def missing_checksum(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in step_uses(ctx, "fetch"):
        if not (with_.get("expected-sha256") or with_.get("expected-sha512")):
            yield (
                (*path, "uses"),
                "fetch without expected-sha256 or expected-sha512: the download cannot be verified",
            )


_HEX_LENGTH = {"expected-sha256": 64, "expected-sha512": 128}


def fetch_digest(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in step_uses(ctx, "fetch"):
        for key, length in _HEX_LENGTH.items():
            if key not in with_:
                continue
            value = try_substitute(ctx, with_[key])
            if value is not None and not re.fullmatch(rf"[0-9a-f]{{{length}}}", value):
                yield (*path, "with", key), f"{key} must be {length} lowercase hex characters"


def missing_expected_commit(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in step_uses(ctx, "git-checkout"):
        commit = with_.get("expected-commit")
        if not commit:
            yield (
                (*path, "uses"),
                "git-checkout without expected-commit: the checkout is not pinned",
            )
            continue
        value = try_substitute(ctx, commit)
        if value is not None and not re.fullmatch(r"[0-9a-f]{40}", value):
            yield (*path, "with", "expected-commit"), "expected-commit must be 40 hex characters"


def git_tag_or_branch(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in step_uses(ctx, "git-checkout"):
        if not (with_.get("tag") or with_.get("branch")):
            yield (*path, "uses"), "git-checkout needs a tag or a branch"


_HOST = re.compile(r"^[a-z0-9][a-z0-9.\-]+\.[a-z]{2,6}$")


def fetch_uri(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in step_uses(ctx, "fetch"):
        uri = with_.get("uri", "")
        if not uri:
            yield (*path, "uses"), "fetch without a uri"
            continue
        value = try_substitute(ctx, uri)
        if value is None:
            continue
        try:
            parts = urlsplit(value)
            host = parts.hostname or ""
        except ValueError:
            yield (*path, "with", "uri"), f"uri {value!r} does not parse"
            continue
        if parts.scheme == "mirror":
            # mirror://NAME/PATH is resolved at fetch time (build/mirrors.py); NAME must be set.
            if not host or not parts.path.strip("/"):
                yield (*path, "with", "uri"), f"uri {value!r} needs mirror://NAME/PATH"
            continue
        if parts.scheme not in ("http", "https", "ftp") or not _HOST.match(host):
            yield (
                (*path, "with", "uri"),
                (f"uri {value!r} needs http(s) (or mirror://NAME/PATH) and a valid host name"),
            )
    # wolfictl checks git-checkout repositories the same way (its extractURI): a look-alike host
    # (IDN homograph, stray characters) is caught before anything is cloned. Local repositories
    # (a path, file://) are the builder's to use and have no host.
    for path, with_ in step_uses(ctx, "git-checkout"):
        value = try_substitute(ctx, with_.get("repository", ""))
        if not value or "://" not in value or value.startswith("file://"):
            continue
        try:
            host = urlsplit(value).hostname or ""
        except ValueError:
            host = ""
        if not _HOST.match(host):
            yield (
                (*path, "with", "repository"),
                f"repository {value!r} needs a valid host name (lowercase ASCII letters, digits, "
                "dots and dashes)",
            )


def _version_vars(recipe: Recipe) -> set[str]:
    """``package.version`` and every var/var-transform derived from it (transitively)."""
    derived = {"package.version", "package.full-version"}
    changed = True
    while changed:
        changed = False
        for key, value in recipe.vars.items():
            name = f"vars.{key}"
            if name not in derived and derived & set(find_variables(value)):
                derived.add(name)
                changed = True
        for transform in recipe.var_transforms:
            name = f"vars.{transform.to}"
            if name not in derived and derived & set(find_variables(transform.from_)):
                derived.add(name)
                changed = True
    return derived


def version_not_in_uri(ctx: LintContext) -> Iterator[Problem]:
    # As wolfictl's fetch-templating: a bump needs at least one source (fetch uri or git tag)
    # that follows the version; further sources may be pinned on purpose (a vendored helper at
    # its own version) unless they spell out the package version literally. Recipes that are not
    # bumped automatically (update disabled or manual) are not checked.
    assert ctx.recipe is not None
    update = ctx.recipe.update
    if update is not None and (not update.enabled or update.manual):
        return
    derived = _version_vars(ctx.recipe)
    sources = [
        ((*path, "with", "uri"), "fetch uri", with_.get("uri", ""))
        for path, with_ in step_uses(ctx, "fetch")
    ] + [
        ((*path, "with", "tag"), "git-checkout tag", with_.get("tag", ""))
        for path, with_ in step_uses(ctx, "git-checkout")
    ]
    sources = [source for source in sources if source[2]]
    if not any(derived & set(find_variables(value)) for _, _, value in sources):
        for key_path, what, _value in sources:
            yield (
                key_path,
                f"{what} does not use ${{{{package.version}}}} (or a var derived from it), nor "
                "does any other source: a version bump would keep fetching the old source",
            )
        return
    version = ctx.recipe.package.version
    for key_path, what, value in sources:
        if version and version in value:
            yield (
                key_path,
                f"{what} spells out the version {version!r}; use ${{{{package.version}}}} (or a "
                "var derived from it) so a bump follows",
            )
