"""``${{…}}`` substitution (melange ``pkg/config/vars.go``, ``pkg/build/pipeline.go``).

A substitution mapping uses bare variable names as keys (``"package.version"``,
``"vars.mangled-version"``, ``"targets.destdir"``, ``"inputs.uri"``); :func:`substitute` replaces
``${{ name }}`` (spaces allowed) and rejects unknown names. :func:`build_substitutions` builds the
mapping melange uses for one architecture and one package context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nanodistro.errors import RecipeError
from nanodistro.recipe.model import Recipe

__all__ = [
    "ARCHITECTURES",
    "OUTDIR",
    "SRCDIR",
    "ArchInfo",
    "RangeItem",
    "apply_go_template",
    "arch_info",
    "arch_substitutions",
    "base_substitutions",
    "build_substitutions",
    "find_variables",
    "go_regex_replace",
    "substitute",
]

SRCDIR = "/home/build"
OUTDIR = "/home/build/melange-out"

_VARIABLE = re.compile(r"\$\{\{[ \t\r\n]*([A-Za-z0-9._-]+)[ \t\r\n]*\}\}")


@dataclass(frozen=True)
class ArchInfo:
    """How one apk architecture is named by Go and by GNU/Rust target triplets."""

    apk: str
    goarch: str
    gnu_cpu: str  # apko ToTriplet: <gnu_cpu>-linux-<flavor>
    rust_cpu: str  # apko ToRustTriplet: <rust_cpu>-linux-<flavor>

    def gnu_triplet(self, flavor: str = "gnu") -> str:
        """``x86_64-pc-linux-gnu`` (apko ``Architecture.ToTriplet``)."""
        return f"{self.gnu_cpu}-linux-{flavor}"

    def rust_triplet(self, flavor: str = "gnu") -> str:
        """``x86_64-unknown-linux-gnu`` (apko ``Architecture.ToRustTriplet``)."""
        return f"{self.rust_cpu}-linux-{flavor}"


# as apko pkg/build/types/architecture.go (ToAPK, String, ToTriplet, ToRustTriplet)
ARCHITECTURES: dict[str, ArchInfo] = {
    info.apk: info
    for info in (
        ArchInfo("x86_64", "amd64", "x86_64-pc", "x86_64-unknown"),
        ArchInfo("aarch64", "arm64", "aarch64-unknown", "aarch64-unknown"),
        ArchInfo("x86", "386", "i486-pc", "i686-unknown"),
        ArchInfo("armv7", "arm/v7", "armv7-unknown", "armv7-unknown"),
        ArchInfo("armhf", "arm/v6", "armv6-unknown", "armv6-unknown"),
        ArchInfo("ppc64le", "ppc64le", "powerpc64le-unknown", "powerpc64le-unknown"),
        ArchInfo("s390x", "s390x", "s390x-ibm", "s390x-unknown"),
        ArchInfo("riscv64", "riscv64", "riscv64-unknown", "riscv64-unknown"),
    )
}
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "386": "x86", "i386": "x86"}


def arch_info(arch: str, where: str = "<recipe>") -> ArchInfo:
    """Look up an architecture by apk (``x86_64``) or Go (``amd64``) name."""
    info = ARCHITECTURES.get(_ARCH_ALIASES.get(arch, arch))
    if info is None:
        raise RecipeError(
            f"unknown architecture {arch!r} (expected one of {', '.join(ARCHITECTURES)})",
            where=where,
        )
    return info


def find_variables(text: str) -> list[str]:
    """Names of every ``${{…}}`` reference in ``text``, in order."""
    return _VARIABLE.findall(text)


def substitute(
    text: str,
    mapping: Mapping[str, str],
    where: str = "<recipe>",
    field: str | None = None,
    *,
    line: int | None = None,
    keep_unknown: bool = False,
) -> str:
    """Replace every ``${{name}}`` with ``mapping[name]``; an unknown name is a RecipeError
    naming ``where``, ``line`` and ``field``, or with ``keep_unknown`` stays as written (for
    readers that only look at some fields, like the graph and the monitor)."""
    if "${{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        try:
            return mapping[name]
        except KeyError:
            if keep_unknown:
                return match.group(0)
            raise RecipeError(
                f"unknown variable ${{{{{name}}}}}{_suggest(name, mapping)}",
                where=where,
                line=line,
                field=field,
            ) from None

    return _VARIABLE.sub(replace, text)


def _suggest(name: str, mapping: Mapping[str, str]) -> str:
    prefix = name.split(".", 1)[0] + "."
    known = sorted(k for k in mapping if k.startswith(prefix))
    if not known:
        return ""
    shown = ", ".join(known[:8]) + (", …" if len(known) > 8 else "")
    return f" (known {prefix}* variables: {shown})"


# --- Go regexp replacement templates ---------------------------------------------------------

_TEMPLATE_NAME = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)|(\$))")


def apply_go_template(template: str, match: re.Match[str]) -> str:
    """Expand a Go ``Regexp.Expand`` template (``$1``, ``${1}``, ``$name``, ``$$``) for a match.

    As Go: ``$name`` takes the longest run of letters/digits/underscores (``$1x`` means ``${1x}``),
    an unknown or unmatched group expands to nothing, a lone ``$`` is copied.
    """

    def group(token: re.Match[str]) -> str:
        if token.group(3):
            return "$"
        name = token.group(1) or token.group(2)
        try:
            value = match.group(int(name)) if name.isdigit() else match.group(name)
        except IndexError:  # no such group: Go expands it to nothing
            return ""
        return value or ""

    return _TEMPLATE_NAME.sub(group, template)


def go_regex_replace(pattern: str, template: str, text: str, where: str, field: str) -> str:
    """Go ``regexp.ReplaceAllString(text, template)`` (RE2 classes are ASCII-only, as in Go)."""
    try:
        compiled = re.compile(pattern, re.ASCII)
    except re.error as error:
        raise RecipeError(
            f"regular expression {pattern!r} does not compile: {error}", where=where, field=field
        ) from None
    return compiled.sub(lambda match: apply_go_template(template, match), text)


# --- substitution mappings --------------------------------------------------------------------


@dataclass(frozen=True)
class RangeItem:
    """One ``data`` item a ranged subpackage is expanded for."""

    key: str
    value: str


def base_substitutions(
    recipe: Recipe,
    context: Mapping[str, str] | None = None,
    var_overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``package.*``, ``vars.*`` and var-transform results (plus ``context``, e.g. arch values).

    ``vars`` may use ``package.*``, ``context`` and earlier vars; ``var_overrides`` (vars of
    enabled build options) replace recipe vars before var-transforms run, which run in order and
    may use everything defined before them (MEL:pkg/config/vars.go, pkg/build/pipeline.go).
    """
    package = recipe.package
    where = recipe.where
    mapping = {
        "package.name": package.name,
        "package.version": package.version,
        "package.epoch": str(package.epoch),
        "package.full-version": package.full_version,
        "package.description": package.description,
        "package.srcdir": SRCDIR,
        "targets.outdir": OUTDIR,
    }
    mapping.update(context or {})
    values = {**recipe.vars, **(var_overrides or {})}
    for key, value in values.items():
        mapping[f"vars.{key}"] = substitute(value, mapping, where, f"vars.{key}")
    for index, transform in enumerate(recipe.var_transforms):
        field = f"var-transforms[{index}]"
        source = substitute(transform.from_, mapping, where, f"{field}.from")
        mapping[f"vars.{transform.to}"] = go_regex_replace(
            transform.match, transform.replace, source, where, f"{field}.match"
        )
    return mapping


def arch_substitutions(arch: str, flavor: str = "gnu", where: str = "<recipe>") -> dict[str, str]:
    """``host.triplet.*``, ``cross.triplet.*``, ``build.arch`` and ``build.goarch`` for ``arch``."""
    info = arch_info(arch, where)
    return {
        "host.triplet.gnu": info.gnu_triplet(flavor),
        "host.triplet.rust": info.rust_triplet(flavor),
        "cross.triplet.gnu.glibc": info.gnu_triplet("gnu"),
        "cross.triplet.gnu.musl": info.gnu_triplet("musl"),
        "cross.triplet.rust.glibc": info.rust_triplet("gnu"),
        "cross.triplet.rust.musl": info.rust_triplet("musl"),
        "build.arch": info.apk,
        "build.goarch": info.goarch,
    }


def build_substitutions(
    recipe: Recipe,
    arch: str,
    subpackage: str | None = None,
    range_item: RangeItem | None = None,
    *,
    build_options: Iterable[str] = (),
    package_names: Iterable[str] = (),
    flavor: str = "gnu",
) -> dict[str, str]:
    """The mapping melange uses for ``arch`` in the main package or in ``subpackage`` (its final,
    already expanded name). ``package_names`` are the expanded subpackage names for
    ``${{targets.package.<name>}}`` (see :func:`nanodistro.recipe.expand.expand_subpackages`).
    """
    enabled = set(build_options)
    unknown = enabled - set(recipe.options)
    if unknown:
        raise RecipeError(
            f"unknown build option(s) {', '.join(sorted(unknown))} "
            f"(recipe defines: {', '.join(sorted(recipe.options)) or 'none'})",
            where=recipe.where,
        )
    name = recipe.package.name
    destdir = f"{OUTDIR}/{name}"
    context = {
        "targets.destdir": destdir,
        "targets.contextdir": destdir,
        "context.name": name,
        **arch_substitutions(arch, flavor, recipe.where),
    }
    overrides: dict[str, str] = {}
    for option in sorted(enabled):
        overrides.update(recipe.options[option].vars)
    mapping = base_substitutions(recipe, context, overrides)
    for package_name in (name, *package_names):
        mapping[f"targets.package.{package_name}"] = f"{OUTDIR}/{package_name}"
    for option in recipe.options:
        mapping[f"options.{option}.enabled"] = "true" if option in enabled else "false"
    if subpackage is not None:
        subdir = f"{OUTDIR}/{subpackage}"
        mapping.update(
            {
                "subpkg.name": subpackage,
                "context.name": subpackage,
                "targets.subpkgdir": subdir,
                "targets.contextdir": subdir,
                f"targets.package.{subpackage}": subdir,
            }
        )
    if range_item is not None:
        mapping["range.key"] = range_item.key
        mapping["range.value"] = range_item.value
    return mapping
