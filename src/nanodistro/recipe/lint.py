"""``nanodistro lint``: recipe rules as data (name, severity, description, check).

Rules cover what nanodistro's invariants need (hermetic, verified sources; a release monitor; valid
versions and licences) plus the wolfictl lint rules that apply to any melange recipe
(wolfi-dev/wolfictl pkg/lint/rules.go, reference/security.md §7.1). Checks receive a
:class:`LintContext` and yield ``(key path, message)``; the path gives the reported line.

A recipe that does not load is reported as rule ``load-error``; rules that only need the raw YAML
(``valid-update-schedule``, ``contains-epoch``, ``check-when-version-changes``) still run on it.
"""

from __future__ import annotations

import difflib
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from license_expression import get_spdx_licensing
from pydantic import ValidationError

from nanodistro.errors import NanodistroError, RecipeError
from nanodistro.recipe.expand import builds_for_arch, expand_subpackages, subpackage_names
from nanodistro.recipe.model import (
    Copyright,
    PipelineStep,
    Recipe,
    RecipeLoadError,
    recipe_from_document,
)
from nanodistro.recipe.pipelines import BUILTIN_PIPELINES_DIR, known_pipeline_names, recipe_uses
from nanodistro.recipe.substitute import (
    arch_substitutions,
    base_substitutions,
    find_variables,
    substitute,
)
from nanodistro.recipe.yamlsource import KeyPath, YamlDocument, format_path, parse_yaml

__all__ = [
    "RULES",
    "Finding",
    "LintContext",
    "LintResult",
    "Rule",
    "Severity",
    "lint_path",
    "lint_text",
]

Severity = Literal["error", "warning", "info"]
# Where a problem is: a key path (reported at its line), a line number, or None (whole file).
Problem = tuple[KeyPath | int | None, str]


@dataclass(frozen=True)
class Finding:
    """One lint result; ``line`` is 1-based (None when the file has no such place)."""

    file: str
    line: int | None
    rule: str
    severity: Severity
    message: str

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line else self.file
        return f"{location}: {self.severity}: {self.message} [{self.rule}]"


@dataclass
class LintContext:
    """What a rule may look at. ``recipe`` is None when the file did not load."""

    doc: YamlDocument
    recipe: Recipe | None
    pipeline_names: set[str]
    path: Path | None = None
    previous_text: Callable[[], str | None] = lambda: None
    pipeline_dirs: Sequence[Path] = ()

    def line_in_text(self, path: KeyPath, needle: str) -> int | None:
        """Line of the first source line at or after ``path`` containing ``needle`` (a line of
        a ``runs: |`` block), else the line of ``path``."""
        start = self.doc.line_of(path)
        if start is None:
            return None
        lines = self.doc.text.splitlines()
        for number in range(start, min(len(lines), start + 2000) + 1):
            if needle in lines[number - 1]:
                return number
        return start

    @property
    def raw(self) -> dict[str, Any]:
        """The raw YAML mapping (strings as written)."""
        return self.doc.data if isinstance(self.doc.data, dict) else {}


@dataclass(frozen=True)
class Rule:
    """A lint rule. ``needs_model``: skipped when the recipe does not load."""

    name: str
    severity: Severity
    description: str
    check: Callable[[LintContext], Iterable[Problem]]
    needs_model: bool = True


# --- helpers -----------------------------------------------------------------------------------


def _steps(ctx: LintContext, *, tests: bool = True) -> Iterator[tuple[KeyPath, Any]]:
    assert ctx.recipe is not None
    for path, step in ctx.recipe.all_steps():
        if not tests and "test" in path:
            continue
        yield path, step


def _uses(ctx: LintContext, name: str) -> Iterator[tuple[KeyPath, dict[str, str]]]:
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        if use.uses == name:
            yield use.path, use.with_


def _try_substitute(ctx: LintContext, text: str) -> str | None:
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


# --- rules: sources ----------------------------------------------------------------------------


def _missing_checksum(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in _uses(ctx, "fetch"):
        if not (with_.get("expected-sha256") or with_.get("expected-sha512")):
            yield (
                (*path, "uses"),
                "fetch without expected-sha256 or expected-sha512: the download cannot be verified",
            )


_HEX_LENGTH = {"expected-sha256": 64, "expected-sha512": 128}


def _fetch_digest(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in _uses(ctx, "fetch"):
        for key, length in _HEX_LENGTH.items():
            if key not in with_:
                continue
            value = _try_substitute(ctx, with_[key])
            if value is not None and not re.fullmatch(rf"[0-9a-f]{{{length}}}", value):
                yield (*path, "with", key), f"{key} must be {length} lowercase hex characters"


def _missing_expected_commit(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in _uses(ctx, "git-checkout"):
        commit = with_.get("expected-commit")
        if not commit:
            yield (
                (*path, "uses"),
                "git-checkout without expected-commit: the checkout is not pinned",
            )
            continue
        value = _try_substitute(ctx, commit)
        if value is not None and not re.fullmatch(r"[0-9a-f]{40}", value):
            yield (*path, "with", "expected-commit"), "expected-commit must be 40 hex characters"


def _git_tag_or_branch(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in _uses(ctx, "git-checkout"):
        if not (with_.get("tag") or with_.get("branch")):
            yield (*path, "uses"), "git-checkout needs a tag or a branch"


_HOST = re.compile(r"^[a-z0-9][a-z0-9.\-]+\.[a-z]{2,6}$")


def _fetch_uri(ctx: LintContext) -> Iterator[Problem]:
    for path, with_ in _uses(ctx, "fetch"):
        uri = with_.get("uri", "")
        if not uri:
            yield (*path, "uses"), "fetch without a uri"
            continue
        value = _try_substitute(ctx, uri)
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


def _version_not_in_uri(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    derived = _version_vars(ctx.recipe)
    for path, with_ in _uses(ctx, "fetch"):
        uri = with_.get("uri", "")
        if uri and not derived & set(find_variables(uri)):
            yield (
                (*path, "with", "uri"),
                "fetch uri does not use ${{package.version}} (or a var derived from it); "
                "a version bump would keep fetching the old source",
            )
    for path, with_ in _uses(ctx, "git-checkout"):
        tag = with_.get("tag", "")
        if tag and not derived & set(find_variables(tag)):
            yield (
                (*path, "with", "tag"),
                "git-checkout tag does not use ${{package.version}} (or a var derived from it)",
            )


# --- rules: build hermeticity ------------------------------------------------------------------

_NETWORK = [
    (re.compile(r"(^|[\s;&|(`])(curl|wget)\s"), "downloads with {1}"),
    (re.compile(r"(^|[\s;&|(`])git\s+(clone|fetch|pull|submodule\s+update)\b"), "runs git {1}"),
    (re.compile(r"(^|[\s;&|(`])go\s+(get|mod\s+download)\b"), "runs go {1}"),
    (re.compile(r"(^|[\s;&|(`])(npm|yarn|pnpm)\s+(install|ci|add)\b"), "runs {1} {2}"),
    (re.compile(r"(^|[\s;&|(`])cargo\s+fetch\b"), "runs cargo fetch"),
]
_PIP_INSTALL = re.compile(r"(^|[\s;&|(`])(pip3?|python3?(\.\d+)?\s+-m\s+pip|uv\s+pip)\s+install\b")


def _shell_commands(script: str) -> Iterator[tuple[str, str]]:
    """``(first physical line, whole command)`` per command line, joining ``\\`` continuations
    and skipping comment lines."""
    pending: list[str] = []
    for raw_line in script.splitlines():
        line = raw_line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        yield pending[0], " ".join(pending)
        pending = []
    if pending:
        yield pending[0], " ".join(pending)


def _network_in_runs(ctx: LintContext) -> Iterator[Problem]:
    for path, step in _steps(ctx, tests=False):
        for first, command in _shell_commands(step.runs):
            for pattern, template in _NETWORK:
                match = pattern.search(command)
                if match:
                    what = template.format(*match.groups())
                    yield (
                        ctx.line_in_text((*path, "runs"), first),
                        f"build step {what}: builds have no network ({command!r})",
                    )
                    break
            else:
                if _PIP_INSTALL.search(command) and "--no-index" not in command:
                    yield (
                        ctx.line_in_text((*path, "runs"), first),
                        f"build step runs pip install without --no-index: builds have no network "
                        f"({command!r})",
                    )


_BAD_TEMPLATE = re.compile(r"\$\{?(pkgdir|pkgver|pkgname|srcdir)\b")


def _bad_template_var(ctx: LintContext) -> Iterator[Problem]:
    for path, step in _steps(ctx):
        match = _BAD_TEMPLATE.search(step.runs)
        if match:
            yield (
                ctx.line_in_text((*path, "runs"), match.group(0)),
                f"${match.group(1)} is an abuild variable; use ${{{{targets.destdir}}}}, "
                "${{package.version}}, ${{package.name}} or the working directory",
            )


def _sccache(ctx: LintContext) -> Iterator[Problem]:
    for path, _with in _uses(ctx, "sccache/enable"):
        yield (*path, "uses"), "sccache/enable makes builds depend on a remote cache"


# --- rules: metadata ---------------------------------------------------------------------------

_APKO_VERSION = re.compile(
    r"^([0-9]+)((\.[0-9]+)*)([a-z]?)((_alpha|_beta|_pre|_rc)([0-9]*))?"
    r"((_cvs|_svn|_git|_hg|_p)([0-9]*))?$"
)


def _invalid_version(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    version = ctx.recipe.package.version
    if not _APKO_VERSION.match(version):
        yield (
            ("package", "version"),
            f"version {version!r} is not a valid apk version (apko regex, no -r suffix; "
            "e.g. 1.2.3, 1.2.3a, 1.2_rc1, 1.2_p3)",
        )


@cache
def _licensing() -> Any:
    return get_spdx_licensing()


_LICENSE_REF = re.compile(r"^(DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+$")
_NON_SPDX_OK = {"custom", "PROPRIETARY"}  # as wolfictl valid-spdx-license


def license_problem(expression: str) -> str | None:
    """Why ``expression`` is not a valid SPDX licence expression, or None."""
    if expression in _NON_SPDX_OK:
        return None
    # The SPDX licence list does not know user-defined LicenseRef-* ids; they are valid SPDX, so
    # check the expression's structure with a known id in their place.
    checked = " ".join(
        "MIT" if _LICENSE_REF.match(token) else token
        for token in re.split(r"(\s+|[()])", expression)
        if token and not token.isspace()
    )
    try:
        info = _licensing().validate(checked, strict=True)
    except Exception:  # license_expression raises several types on malformed input
        return f"{expression!r} is not a well-formed SPDX expression"
    if info.errors:
        symbols = ", ".join(str(s) for s in info.invalid_symbols) or "?"
        return f"{expression!r} is not a valid SPDX expression (unknown: {symbols})"
    return None


def _invalid_license(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    entries: list[tuple[KeyPath, list[Copyright]]] = [
        (("package", "copyright"), ctx.recipe.package.copyright)
    ]
    entries += [
        (("subpackages", i, "copyright"), sub.copyright)
        for i, sub in enumerate(ctx.recipe.subpackages)
    ]
    for prefix, copyrights in entries:
        for index, entry in enumerate(copyrights):
            problem = license_problem(entry.license.strip())
            if problem:
                yield (*prefix, index, "license"), problem


def _copyright_header(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    if not ctx.recipe.package.copyright:
        yield ("package",), "package has no copyright/license entry"


def _contains_epoch(ctx: LintContext) -> Iterator[Problem]:
    package = ctx.raw.get("package")
    if isinstance(package, dict) and package.get("epoch") in (None, ""):
        yield ("package",), "package.epoch is missing (write epoch: 0 explicitly)"


_CHECK_WHEN = re.compile(r"#\s*CHECK-WHEN-VERSION-CHANGES:\s*(\S+)")


def _check_when_version_changes(ctx: LintContext) -> Iterator[Problem]:
    package = ctx.raw.get("package")
    version = package.get("version") if isinstance(package, dict) else None
    if not isinstance(version, str):
        return
    for number, line in enumerate(ctx.doc.text.splitlines(), start=1):
        match = _CHECK_WHEN.search(line)
        if match and match.group(1) != version:
            yield (
                number,
                f"CHECK-WHEN-VERSION-CHANGES says {match.group(1)} but the version is {version}: "
                "review the marked lines, then update the marker",
            )


def _duplicate_subpackages(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    for arch in ("x86_64", "aarch64"):
        if not builds_for_arch(ctx.recipe, arch):
            continue
        try:
            subpackage_names(ctx.recipe, arch)
        except RecipeError as error:
            if "duplicate" in error.message:
                path: KeyPath = ("subpackages",)
                if error.field:
                    index = re.search(r"\[(\d+)\]", error.field)
                    path = ("subpackages", int(index.group(1)), "name") if index else path
                yield path, error.message
                return


def _repeated_deps(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    seen: set[str] = set()
    for index, name in enumerate(ctx.recipe.environment.contents.packages):
        if name in seen:
            yield ("environment", "contents", "packages", index), f"{name!r} is listed twice"
        seen.add(name)


def _undefined_variables(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    recipe = ctx.recipe
    try:
        base = base_substitutions(recipe, arch_substitutions("x86_64"))
    except RecipeError as error:
        yield None, error.message
        return
    # Names valid somewhere in a build; inputs.* depend on the named pipeline.
    allowed_prefixes = ("inputs.", "targets.package.", "options.", "range.", "subpkg.")
    fixed = {
        "targets.destdir",
        "targets.contextdir",
        "targets.subpkgdir",
        "context.name",
        "host.triplet.gnu",
        "host.triplet.rust",
        "cross.triplet.gnu.glibc",
        "cross.triplet.gnu.musl",
        "cross.triplet.rust.glibc",
        "cross.triplet.rust.musl",
        "build.arch",
        "build.goarch",
    }
    option_vars = {f"vars.{k}" for option in recipe.options.values() for k in option.vars}

    def unknown(text: str) -> list[str]:
        return [
            name
            for name in find_variables(text)
            if name not in base
            and name not in fixed
            and name not in option_vars
            and not name.startswith(allowed_prefixes)
        ]

    reported: set[str] = set()
    for arch in ("x86_64", "aarch64"):
        if not builds_for_arch(recipe, arch):
            continue
        try:
            expand_subpackages(recipe, arch)
        except RecipeError as error:
            message = _strip(error)
            if "duplicate subpackage" not in message and message not in reported:
                reported.add(message)
                yield error.line, message
    for path, step in recipe.all_steps():
        fields = [
            ("runs", step.runs),
            ("if", step.if_),
            ("working-directory", step.working_directory),
        ]
        fields += [(f"with.{k}", v) for k, v in step.with_.items()]
        for key, text in fields:
            for name in unknown(text):
                yield (*path, *key.split(".", 1)), f"unknown variable ${{{{{name}}}}}"


def _unused_var_transform(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    text = ctx.doc.text
    for index, transform in enumerate(ctx.recipe.var_transforms):
        if not re.search(r"\$\{\{\s*vars\." + re.escape(transform.to) + r"\s*\}\}", text):
            yield ("var-transforms", index, "to"), f"vars.{transform.to} is never used"


def _package_test(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    recipe = ctx.recipe
    if recipe.test and recipe.test.pipeline:
        return
    if any(sub.test and sub.test.pipeline for sub in recipe.subpackages):
        return
    yield ("package",), "no test pipeline for the package or any subpackage"


# --- rules: environment ------------------------------------------------------------------------

_FORBIDDEN_REPOSITORY = "https://packages.wolfi.dev/os"
_FORBIDDEN_KEYRING = "https://packages.wolfi.dev/os/wolfi-signing.rsa.pub"


def _environments(ctx: LintContext) -> Iterator[tuple[KeyPath, Any]]:
    assert ctx.recipe is not None
    yield ("environment",), ctx.recipe.environment
    if ctx.recipe.test:
        yield ("test", "environment"), ctx.recipe.test.environment
    for index, sub in enumerate(ctx.recipe.subpackages):
        if sub.test:
            yield ("subpackages", index, "test", "environment"), sub.test.environment


def _forbidden_repository(ctx: LintContext) -> Iterator[Problem]:
    for prefix, env in _environments(ctx):
        for key in ("repositories", "build_repositories"):
            for index, repo in enumerate(getattr(env.contents, key)):
                if repo.rstrip("/") == _FORBIDDEN_REPOSITORY:
                    yield (
                        (*prefix, "contents", key, index),
                        f"{repo} must not be hard-coded; nanodistro resolves from configured repos",
                    )


def _forbidden_keyring(ctx: LintContext) -> Iterator[Problem]:
    for prefix, env in _environments(ctx):
        for index, key in enumerate(env.contents.keyring):
            if key == _FORBIDDEN_KEYRING:
                yield (*prefix, "contents", "keyring", index), f"{key} must not be hard-coded"


def _tagged_repository(ctx: LintContext) -> Iterator[Problem]:
    for prefix, env in _environments(ctx):
        for index, repo in enumerate(env.contents.repositories):
            if repo.startswith("@"):
                yield (
                    (*prefix, "contents", "repositories", index),
                    f"tagged repository {repo!r} in a build environment",
                )


def _unknown_pipeline(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        if use.uses not in ctx.pipeline_names:
            close = difflib.get_close_matches(use.uses, sorted(ctx.pipeline_names), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            yield (
                (*use.path, "uses"),
                f"unknown pipeline {use.uses!r} ({hint}not built in; pass --pipeline-dir for "
                "local ones)",
            )


@cache
def _definition_at(path: Path, mtime: float) -> PipelineStep | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return PipelineStep.model_validate(data) if isinstance(data, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError):
        return None  # a broken definition is the builder's error to report, with its file


def _definition(ctx: LintContext, name: str) -> PipelineStep | None:
    """The definition ``uses: name`` runs: --pipeline-dir first, then the built-ins."""
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    for directory in [*ctx.pipeline_dirs, BUILTIN_PIPELINES_DIR]:
        file = directory / f"{name}.yaml"
        if file.is_file():
            return _definition_at(file, file.stat().st_mtime)
    return None


def _unknown_pipeline_input(ctx: LintContext) -> Iterator[Problem]:
    # melange compilePipeline: "undefined input %q to pipeline %q" (pkg/build/compile.go)
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        definition = _definition(ctx, use.uses)
        if definition is None:
            continue  # unknown-pipeline reports it
        declared = ", ".join(sorted(definition.inputs)) or "none"
        for key in use.with_:
            if key not in definition.inputs:
                yield (
                    (*use.path, "with", key),
                    f"pipeline {use.uses!r} has no input {key!r} (declared: {declared})",
                )


def _missing_required_input(ctx: LintContext) -> Iterator[Problem]:
    # melange validateWith: "required input %q for pipeline is missing" (pkg/build/pipeline.go)
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        definition = _definition(ctx, use.uses)
        if definition is None:
            continue
        for key, spec in definition.inputs.items():
            if spec.required and not spec.default and not use.with_.get(key):
                where = (*use.path, "with") if use.with_ else (*use.path, "uses")
                yield where, f"pipeline {use.uses!r} needs input {key!r} (required, no default)"


# --- rules: update -----------------------------------------------------------------------------


def _missing_update(ctx: LintContext) -> Iterator[Problem]:
    if "update" not in ctx.raw:
        yield ("package",), "no update: block; nanodistro cannot monitor upstream releases"


def _update_disabled_reason(ctx: LintContext) -> Iterator[Problem]:
    update = ctx.raw.get("update")
    disabled = isinstance(update, dict) and str(update.get("enabled", "")).lower() == "false"
    if disabled and isinstance(update, dict) and not update.get("exclude-reason"):
        yield ("update", "enabled"), "update disabled without exclude-reason"


def _update_schedule(ctx: LintContext) -> Iterator[Problem]:
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


def _git_checkout_github_updates(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    update = ctx.recipe.update
    if update is None or not update.enabled or update.github or update.git:
        return
    if update.release_monitor or update.manual:
        return
    for _path, with_ in _uses(ctx, "git-checkout"):
        if _github_repo(with_.get("repository", "")):
            yield (
                ("update",),
                "the source is a GitHub git-checkout but update: has no github: or git: monitor",
            )
            return


def _update_identifier_matches(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    update = ctx.recipe.update
    if update is None or update.github is None:
        return
    found = [_github_repo(with_.get("repository", "")) for _, with_ in _uses(ctx, "git-checkout")]
    repos = [r for r in found if r]
    if repos and update.github.identifier.lower().removesuffix(".git") not in repos:
        yield (
            ("update", "github", "identifier"),
            f"update.github.identifier {update.github.identifier!r} is not the git-checkout "
            f"repository ({', '.join(repos)})",
        )


# --- rules: history ----------------------------------------------------------------------------


def _epoch_not_reset(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    previous = ctx.previous_text()
    if previous is None:
        return
    try:
        old = parse_yaml(previous, "previous")
    except NanodistroError:
        return
    old_package = old.data.get("package") if isinstance(old.data, dict) else None
    old_version = old_package.get("version") if isinstance(old_package, dict) else None
    package = ctx.recipe.package
    if isinstance(old_version, str) and old_version != package.version and package.epoch != 0:
        yield (
            ("package", "epoch"),
            f"version changed from {old_version} to {package.version} but epoch is "
            f"{package.epoch}; a new version starts at epoch 0",
        )


def git_previous_text(path: Path) -> str | None:
    """The recipe as of the last commit that changed it relative to the working tree.

    If the working file differs from ``HEAD`` the base is ``HEAD`` (a bump being prepared),
    otherwise the parent of the last commit that changed the file (a committed bump). None
    outside git or for a new file.
    """
    directory = path.resolve().parent

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout if result.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None:
        return None
    relative = path.resolve().relative_to(Path(top.strip()).resolve()).as_posix()
    head = git("show", f"HEAD:{relative}")
    if head is None:
        return None
    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if current != head:
        return head
    last = git("log", "-1", "--format=%H", "--", relative)
    if not last or not last.strip():
        return None
    return git("show", f"{last.strip()}~1:{relative}")


# --- the table ---------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule("missing-checksum", "error", "fetch needs expected-sha256 or expected-sha512", _missing_checksum),
    Rule("valid-pipeline-fetch-digest", "error", "fetch digests are 64/128 lowercase hex", _fetch_digest),
    Rule("missing-expected-commit", "error", "git-checkout needs a 40-hex expected-commit", _missing_expected_commit),
    Rule("valid-pipeline-git-checkout-tag-or-branch", "error", "git-checkout needs a tag or branch", _git_tag_or_branch),
    Rule("valid-pipeline-fetch-uri", "error", "fetch uri is http(s) with a valid host, or mirror://NAME/PATH", _fetch_uri),
    Rule("version-not-in-fetch-uri", "warning", "fetch uri / git tag should use ${{package.version}} (or a var derived from it)", _version_not_in_uri),
    Rule("network-in-runs", "error", "build steps must not use the network (curl, wget, git clone, pip install without --no-index, npm install, go get)", _network_in_runs),
    Rule("bad-template-var", "error", "abuild variables ($pkgdir, $pkgver, $pkgname, $srcdir) in runs", _bad_template_var),
    Rule("sccache-enabled", "error", "uses: sccache/enable is not hermetic", _sccache),
    Rule("unknown-pipeline", "error", "uses: names a built-in pipeline or one in --pipeline-dir", _unknown_pipeline),
    Rule("unknown-pipeline-input", "error", "with: gives only inputs the pipeline declares (melange refuses others)", _unknown_pipeline_input),
    Rule("missing-required-input", "error", "with: sets every required input that has no default", _missing_required_input),
    Rule("undefined-variable", "error", "every ${{…}} in a step is a known variable", _undefined_variables),
    Rule("invalid-version", "error", "package.version is valid per apko's version regex", _invalid_version),
    Rule("invalid-license", "error", "copyright licenses are valid SPDX expressions (or custom/PROPRIETARY)", _invalid_license),
    Rule("valid-copyright-header", "info", "the package declares at least one license", _copyright_header),
    Rule("contains-epoch", "error", "package.epoch is written explicitly", _contains_epoch, needs_model=False),
    Rule("epoch-not-reset", "error", "a version change resets epoch to 0 (compared with git history)", _epoch_not_reset),
    Rule("check-when-version-changes", "error", "CHECK-WHEN-VERSION-CHANGES markers match the version", _check_when_version_changes, needs_model=False),
    Rule("duplicate-subpackage-name", "error", "expanded subpackage names are unique", _duplicate_subpackages),
    Rule("no-repeated-deps", "error", "environment packages are listed once", _repeated_deps),
    Rule("forbidden-repository-used", "error", "no hard-coded Wolfi repository in environments", _forbidden_repository),
    Rule("forbidden-keyring-used", "error", "no hard-coded Wolfi keyring in environments", _forbidden_keyring),
    Rule("tagged-repository-in-environment-repos", "error", "no @tagged repositories in environments", _tagged_repository),
    Rule("missing-update-block", "error", "an update: block tells the monitor where releases come from", _missing_update, needs_model=False),
    Rule("update-disabled-reason", "warning", "update.enabled: false needs exclude-reason", _update_disabled_reason, needs_model=False),
    Rule("valid-update-schedule", "error", "update.schedule.period is daily, weekly or monthly", _update_schedule, needs_model=False),
    Rule("git-checkout-must-use-github-updates", "error", "GitHub sources are monitored with update.github or update.git", _git_checkout_github_updates),
    Rule("update-identifier-must-match-git-repository", "error", "update.github.identifier is the git-checkout repository", _update_identifier_matches),
    Rule("unused-var-transform", "warning", "every var-transform result is used", _unused_var_transform),
    Rule("valid-package-or-subpackage-test", "info", "the package or a subpackage has a test pipeline", _package_test),
)  # fmt: skip

RULES_BY_NAME = {rule.name: rule for rule in RULES}


# --- running -----------------------------------------------------------------------------------


@dataclass
class LintResult:
    """Findings of one file; ``loaded`` is False when the recipe itself is invalid."""

    file: str
    findings: list[Finding] = field(default_factory=list)
    loaded: bool = True

    @property
    def errors(self) -> list[Finding]:
        """Findings of severity error (load errors included)."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def clean(self) -> bool:
        """Loaded and without errors (warnings and infos allowed)."""
        return self.loaded and not self.errors


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
        result.findings.append(Finding(where, error.line, "load-error", "error", _strip(error)))
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
    for rule in RULES:
        if rule.name in disabled_set or (rule.needs_model and recipe is None):
            continue
        try:
            problems = list(rule.check(ctx))
        except NanodistroError as error:
            problems = [(None, _strip(error))]
        for key_path, message in problems:
            line = doc.line_of(key_path) if isinstance(key_path, tuple) else key_path
            result.findings.append(Finding(where, line, rule.name, rule.severity, message))
    result.findings.sort(key=lambda f: (f.line or 0, f.rule))
    return result


def _strip(error: NanodistroError) -> str:
    return f"{error.field}: {error.message}" if error.field else error.message


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


__all__ += [
    "RULES_BY_NAME",
    "describe_rules",
    "format_path",
    "git_previous_text",
    "license_problem",
]
