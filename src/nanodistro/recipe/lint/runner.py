"""The lint runner: the rule table and linting one recipe text or file into a ``LintResult``.

A recipe that does not load is reported as rule ``load-error`` (never waived); ``#nolint``
directives (``nolint``) waive rules for the file or one key. Rules that only need the raw YAML
(``needs_model=False``: ``valid-update-schedule``, ``contains-epoch``,
``check-when-version-changes``…) still run on it. Findings are sorted by line, then rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from nanodistro.errors import NanodistroError
from nanodistro.recipe.lint.history import epoch_not_reset, git_previous_text
from nanodistro.recipe.lint.metadata import (
    check_when_version_changes,
    contains_epoch,
    copyright_header,
    duplicate_subpackages,
    forbidden_keyring,
    forbidden_repository,
    invalid_license,
    invalid_version,
    package_test,
    repeated_deps,
    tagged_repository,
    unused_var_transform,
)
from nanodistro.recipe.lint.model import Finding, LintContext, LintResult, Rule, error_text
from nanodistro.recipe.lint.network import network_in_runs
from nanodistro.recipe.lint.nolint import parse_nolint
from nanodistro.recipe.lint.pipelines import (
    bad_template_var,
    missing_required_input,
    sccache,
    undefined_variables,
    unknown_pipeline,
    unknown_pipeline_input,
)
from nanodistro.recipe.lint.sources import (
    fetch_digest,
    fetch_uri,
    git_tag_or_branch,
    missing_checksum,
    missing_expected_commit,
    version_not_in_uri,
)
from nanodistro.recipe.lint.update import (
    git_checkout_github_updates,
    missing_update,
    update_disabled_reason,
    update_identifier_matches,
    update_schedule,
)
from nanodistro.recipe.model import Recipe, RecipeLoadError, recipe_from_document
from nanodistro.recipe.pipelines import known_pipeline_names
from nanodistro.recipe.yamlsource import parse_yaml

RULES: tuple[Rule, ...] = (
    Rule("missing-checksum", "error", "fetch needs expected-sha256 or expected-sha512", missing_checksum),
    Rule("valid-pipeline-fetch-digest", "error", "fetch digests are 64/128 lowercase hex", fetch_digest),
    Rule("missing-expected-commit", "error", "git-checkout needs a 40-hex expected-commit", missing_expected_commit),
    Rule("valid-pipeline-git-checkout-tag-or-branch", "error", "git-checkout needs a tag or branch", git_tag_or_branch),
    Rule("valid-pipeline-fetch-uri", "error", "fetch uri is http(s) with a valid host, or mirror://NAME/PATH; git-checkout hosts are valid", fetch_uri),
    Rule("version-not-in-fetch-uri", "warning", "a source (fetch uri / git tag) uses ${{package.version}} or a var derived from it; none spells it out", version_not_in_uri),
    Rule("network-in-runs", "error", "build steps must not use the network (curl, wget, git clone, pip install without --no-index, npm install, go get)", network_in_runs),
    Rule("bad-template-var", "error", "the literal $pkgdir, $pkgver, $pkgname or $srcdir (abuild's) in a build step", bad_template_var),
    Rule("sccache-enabled", "error", "uses: sccache/enable is not hermetic", sccache),
    Rule("unknown-pipeline", "error", "uses: names a built-in pipeline or one in --pipeline-dir", unknown_pipeline),
    Rule("unknown-pipeline-input", "error", "with: gives only inputs the pipeline declares (melange refuses others)", unknown_pipeline_input),
    Rule("missing-required-input", "error", "with: sets every required input that has no default", missing_required_input),
    Rule("undefined-variable", "error", "every ${{…}} in a step is a known variable", undefined_variables),
    Rule("invalid-version", "error", "package.version is valid per apko's version regex", invalid_version),
    Rule("invalid-license", "error", "copyright licenses are valid SPDX expressions (or custom/PROPRIETARY)", invalid_license),
    Rule("valid-copyright-header", "info", "the package declares at least one license, each entry has one", copyright_header),
    Rule("contains-epoch", "error", "package.epoch is written explicitly", contains_epoch, needs_model=False),
    Rule("epoch-not-reset", "error", "a version change resets epoch to 0 (compared with git history)", epoch_not_reset),
    Rule("check-when-version-changes", "error", "CHECK-WHEN-VERSION-CHANGES markers in build steps match the version", check_when_version_changes, needs_model=False),
    Rule("duplicate-subpackage-name", "error", "expanded subpackage names are unique", duplicate_subpackages),
    Rule("no-repeated-deps", "error", "environment packages are listed once", repeated_deps),
    Rule("forbidden-repository-used", "error", "no hard-coded Wolfi repository in the build environment", forbidden_repository),
    Rule("forbidden-keyring-used", "error", "no hard-coded Wolfi keyring in the build environment", forbidden_keyring),
    Rule("tagged-repository-in-environment-repos", "error", "no @tagged repositories in the build environment", tagged_repository),
    Rule("missing-update-block", "error", "an update: block tells the monitor where releases come from", missing_update, needs_model=False),
    Rule("update-disabled-reason", "warning", "update.enabled: false needs exclude-reason", update_disabled_reason, needs_model=False),
    Rule("valid-update-schedule", "error", "update.schedule.period is daily, weekly or monthly", update_schedule, needs_model=False),
    Rule("git-checkout-must-use-github-updates", "error", "GitHub sources are monitored with update.github or update.git", git_checkout_github_updates),
    Rule("update-identifier-must-match-git-repository", "error", "update.github.identifier is the git-checkout repository", update_identifier_matches),
    Rule("unused-var-transform", "warning", "every var-transform result is used", unused_var_transform),
    Rule("valid-package-or-subpackage-test", "info", "the package or a subpackage has a test pipeline", package_test),
)  # fmt: skip

RULES_BY_NAME = {rule.name: rule for rule in RULES}


def lint_text(
    text: str,
    where: str,
    *,
    pipeline_dirs: Sequence[Path] = (),
    disabled: Iterable[str] = (),
    path: Path | None = None,
    previous_text: Callable[[], str | None] | None = None,
    pipeline_names: set[str] | None = None,
) -> LintResult:
    """Lint recipe ``text`` (``where`` names it in findings)."""
    disabled_set = set(disabled)
    unknown = disabled_set - set(RULES_BY_NAME)
    if unknown:
        raise NanodistroError(
            f"unknown lint rule(s): {', '.join(sorted(unknown))} "
            f"(see `nanodistro lint --list-rules`)"
        )
    result = LintResult(file=where)
    try:
        doc = parse_yaml(text, where)
    except NanodistroError as error:
        result.loaded = False
        result.findings.append(Finding(where, error.line, "load-error", "error", error_text(error)))
        return result
    recipe: Recipe | None = None
    try:
        recipe = recipe_from_document(doc)
    except RecipeLoadError as error:
        result.loaded = False
        for line, key, message in error.problems:
            text_ = f"{key}: {message}" if key else message
            result.findings.append(Finding(where, line, "load-error", "error", text_))
    names = pipeline_names if pipeline_names is not None else known_pipeline_names(pipeline_dirs)
    ctx = LintContext(
        doc=doc,
        recipe=recipe,
        pipeline_names=names,
        path=path,
        previous_text=previous_text or (lambda: None),
        pipeline_dirs=tuple(pipeline_dirs),
    )
    nolint = parse_nolint(text)
    for rule in RULES:
        if rule.name in disabled_set or (rule.needs_model and recipe is None):
            continue
        if rule.name in nolint.file_rules:
            continue  # wolfictl: a file-level #nolint skips the rule for the file
        try:
            problems = list(rule.check(ctx))
        except NanodistroError as error:
            problems = [(None, error_text(error))]
        for key_path, message in problems:
            line = doc.line_of(key_path) if isinstance(key_path, tuple) else key_path
            if nolint.waives(rule.name, line):
                continue
            result.findings.append(Finding(where, line, rule.name, rule.severity, message))
    # each finding once: expanded subpackages (range:) and rules sharing a check would otherwise
    # repeat the same line and message
    unique = {(f.line, f.rule, f.message): f for f in result.findings}
    result.findings = sorted(unique.values(), key=lambda f: (f.line or 0, f.rule))
    return result


def lint_path(
    path: Path,
    *,
    pipeline_dirs: Sequence[Path] = (),
    disabled: Iterable[str] = (),
    use_git: bool = True,
    pipeline_names: set[str] | None = None,
) -> LintResult:
    """Lint one recipe file (``epoch-not-reset`` compares with git history when available)."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error.strerror
        result = LintResult(file=where, loaded=False)
        result.findings.append(
            Finding(where, None, "load-error", "error", f"cannot read: {reason}")
        )
        return result
    return lint_text(
        text,
        where,
        pipeline_dirs=pipeline_dirs,
        disabled=disabled,
        path=path,
        previous_text=(lambda: git_previous_text(path)) if use_git else None,
        pipeline_names=pipeline_names,
    )


def describe_rules() -> list[dict[str, str]]:
    """The rule table for ``--list-rules``."""
    return [
        {"rule": rule.name, "severity": rule.severity, "description": rule.description}
        for rule in RULES
    ]
