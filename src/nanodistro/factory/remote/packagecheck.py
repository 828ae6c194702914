"""A worker's packages must carry the metadata their recipe gives them: only the files are the
worker's word.

build.py checks each package's name, version, arch, origin and recipe hash. Every other field a
local build writes comes from the recipe (description, url, license, commit, replaces,
priorities, triggers, install scripts) or from SCA over the package's own files (automatic
``so:``/``cmd:``/``pc:`` provides and depends). Both are derived here again, on the control
plane, from the recipe and the files returned (``builder.package.describe_package``, the
function a local build emits with), and must come out as the package says. Without this a
worker could publish a ``hello`` that provides ``so:libc.musl-x86_64.so.1`` or ``cmd:sh``
(resolvers would pick it for other packages' dependencies), replaces another package's files,
or runs a ``post-install`` script as root on every machine that installs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro.errors import TrustError

if TYPE_CHECKING:
    from nanodistro.builder.compile import CompiledBuild
    from nanodistro.formats.apk import ApkPackage
    from nanodistro.recipe.model import Recipe

# every .PKGINFO field but those write_apk computes (sizes, hashes) and builddate (the
# package's SOURCE_DATE_EPOCH, which only dates it)
CHECKED_FIELDS = (
    "description",
    "url",
    "license",
    "origin",
    "commit",
    "maintainer",
    "packager",
    "depends",
    "provides",
    "install_if",
    "replaces",
    "triggers",
    "provider_priority",
    "replaces_priority",
    "extra",
)


def check_metadata(
    recipe: Recipe,
    build: CompiledBuild,
    packages: Mapping[str, ApkPackage],
    *,
    path: Path,
    arch: str,
    where: str,
) -> None:
    """``TrustError`` naming the package and fields unless every package in ``packages`` (by
    name, one per package ``build`` makes) has the metadata and scripts its recipe and files
    give it."""
    from nanodistro.builder.orchestrate import package_spec
    from nanodistro.builder.package import describe_package
    from nanodistro.builder.recipeinfo import git_commit_id

    default_commit = git_commit_id(path)
    entries = {name: package.entries for name, package in packages.items()}
    for number in range(len(build.packages)):
        spec = package_spec(recipe, build, number, arch=arch, default_commit=default_commit)
        package = packages[spec.name]
        expected, _sca, scripts = describe_package(
            spec,
            package.entries,
            siblings={n: e for n, e in entries.items() if n != spec.name},
            source_date_epoch=package.info.builddate or 0,
        )
        problems = [
            f"{field} {_show(getattr(package.info, field))}, the recipe and files give "
            f"{_show(getattr(expected, field))}"
            for field in CHECKED_FIELDS
            if getattr(package.info, field) != getattr(expected, field)
        ]
        wanted = {f".{name.lstrip('.')}": text for name, text in scripts.items()}
        if package.scripts != wanted:
            problems.append(
                f"install scripts {_show(sorted(package.scripts))}, the recipe has "
                f"{_show(sorted(wanted))}"
                + ("" if sorted(package.scripts) != sorted(wanted) else " (other contents)")
            )
        if problems:
            raise TrustError("refused: " + "; ".join(problems), where=f"{where}: {spec.filename}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
