"""Lint rules about package metadata: version, licences, epoch, subpackages, tests, environments.

``invalid-version``, ``invalid-license`` (and ``license_problem``, shared with other SPDX checks),
``valid-copyright-header``, ``contains-epoch``, ``check-when-version-changes``,
``duplicate-subpackage-name``, ``unused-var-transform``, ``valid-package-or-subpackage-test``
and the build-environment rules (``no-repeated-deps``, no hard-coded Wolfi repository or keyring,
no tagged repositories).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from license_expression import get_spdx_licensing

from nanodistro.errors import RecipeError
from nanodistro.recipe.expand import builds_for_arch, subpackage_names
from nanodistro.recipe.lint.model import LintContext, Problem
from nanodistro.recipe.model import Copyright
from nanodistro.recipe.yamlsource import KeyPath

_APKO_VERSION = re.compile(
    r"^([0-9]+)((\.[0-9]+)*)([a-z]?)((_alpha|_beta|_pre|_rc)([0-9]*))?"
    r"((_cvs|_svn|_git|_hg|_p)([0-9]*))?$"
)


def invalid_version(ctx: LintContext) -> Iterator[Problem]:
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


def invalid_license(ctx: LintContext) -> Iterator[Problem]:
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


def copyright_header(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    if not ctx.recipe.package.copyright:
        yield ("package",), "package has no copyright/license entry"
    for index, entry in enumerate(ctx.recipe.package.copyright):
        if not entry.license.strip():  # wolfictl: "license is missing"
            yield ("package", "copyright", index), "copyright entry without a license"
            return


def contains_epoch(ctx: LintContext) -> Iterator[Problem]:
    package = ctx.raw.get("package")
    # as wolfictl: the key must be written; "epoch:" left empty is written (melange reads 0)
    if isinstance(package, dict) and "epoch" not in package:
        yield ("package",), "package.epoch is missing (write epoch: 0 explicitly)"


_CHECK_WHEN = re.compile(r"#\s*CHECK-WHEN-VERSION-CHANGES:\s*(\S+)")


def _raw_build_runs(ctx: LintContext) -> Iterator[tuple[KeyPath, str]]:
    """``runs:`` of the raw build steps, main pipeline and subpackage pipelines (nested
    included), as wolfictl reads them; tests are not looked at."""

    def visit(prefix: KeyPath, steps: Any) -> Iterator[tuple[KeyPath, str]]:
        if not isinstance(steps, list):
            return
        for index, step in enumerate(steps):
            if isinstance(step, dict):
                if isinstance(step.get("runs"), str):
                    yield (*prefix, index, "runs"), step["runs"]
                yield from visit((*prefix, index, "pipeline"), step.get("pipeline"))

    yield from visit(("pipeline",), ctx.raw.get("pipeline"))
    subpackages = ctx.raw.get("subpackages")
    for index, sub in enumerate(subpackages if isinstance(subpackages, list) else []):
        if isinstance(sub, dict):
            yield from visit(("subpackages", index, "pipeline"), sub.get("pipeline"))


def check_when_version_changes(ctx: LintContext) -> Iterator[Problem]:
    # wolfictl reads the marker in build steps' runs: (a comment line of the script); a YAML
    # comment elsewhere is gone once melange parses the file, so it is not a marker there
    package = ctx.raw.get("package")
    version = package.get("version") if isinstance(package, dict) else None
    if not isinstance(version, str):
        return
    for path, runs in _raw_build_runs(ctx):
        for match in _CHECK_WHEN.finditer(runs):
            if match.group(1) != version:
                yield (
                    ctx.line_in_text(path, match.group(0)),
                    f"CHECK-WHEN-VERSION-CHANGES says {match.group(1)} but the version is "
                    f"{version}: review the marked lines, then update the marker",
                )


def duplicate_subpackages(ctx: LintContext) -> Iterator[Problem]:
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


def repeated_deps(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    seen: set[str] = set()
    for index, name in enumerate(ctx.recipe.environment.contents.packages):
        if name in seen:
            yield ("environment", "contents", "packages", index), f"{name!r} is listed twice"
        seen.add(name)


def unused_var_transform(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    text = ctx.doc.text
    for index, transform in enumerate(ctx.recipe.var_transforms):
        if not re.search(r"\$\{\{\s*vars\." + re.escape(transform.to) + r"\s*\}\}", text):
            yield ("var-transforms", index, "to"), f"vars.{transform.to} is never used"


def package_test(ctx: LintContext) -> Iterator[Problem]:
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
    # wolfictl checks config.Environment only: a test environment may name the published
    # repository and keyring on purpose (it installs the built package next to released ones).
    assert ctx.recipe is not None
    yield ("environment",), ctx.recipe.environment


_REPOSITORY_KEYS = ("repositories", "build_repositories", "runtime_repositories")


def forbidden_repository(ctx: LintContext) -> Iterator[Problem]:
    for prefix, env in _environments(ctx):
        for key in _REPOSITORY_KEYS:
            for index, repo in enumerate(getattr(env.contents, key)):
                if repo.rstrip("/") == _FORBIDDEN_REPOSITORY:
                    yield (
                        (*prefix, "contents", key, index),
                        f"{repo} must not be hard-coded; nanodistro resolves from configured repos",
                    )


def forbidden_keyring(ctx: LintContext) -> Iterator[Problem]:
    for prefix, env in _environments(ctx):
        for index, key in enumerate(env.contents.keyring):
            if key == _FORBIDDEN_KEYRING:
                yield (*prefix, "contents", "keyring", index), f"{key} must not be hard-coded"


def tagged_repository(ctx: LintContext) -> Iterator[Problem]:
    for prefix, env in _environments(ctx):
        for key in _REPOSITORY_KEYS:
            for index, repo in enumerate(getattr(env.contents, key)):
                if repo.startswith("@"):
                    yield (
                        (*prefix, "contents", key, index),
                        f"tagged repository {repo!r} in a build environment",
                    )
