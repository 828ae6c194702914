"""Rebuild published packages independently and compare the bytes (the reproducibility report).

For each recipe, the published packages are the ones the repository's verified index lists under
the recipe's package names at the recipe's version. The recipe is then built again sharing
nothing with the first build: a fresh temporary workspace, no "already published" skip, its
packages kept in memory (written to ``out_dir`` only when they differ, for inspection), another
umask (0077) and time zone (UTC+14:30) in this process, a later wall clock, and sources
re-verified against their pins from the source cache — or, with ``refetch``, downloaded again
into an empty cache. Tests are not run (they cannot change the bytes). What the published package
recorded about its build is reused, as a rebuilder reads a ``.buildinfo``: SOURCE_DATE_EPOCH
(``builddate``), the recipe's git commit, and the locked build environment (``.melange.yaml``,
so a dependency updated since does not count as irreproducibility). A recipe whose bytes no
longer hash to the recorded ``recipe_sha256`` gets a note: its rebuild cannot match.

Each package ends up ``identical`` (same bytes; without a signing key, same control and data
members), ``differs`` (with the differing tar entries named, builder/apkdiff.py), ``missing``
(the index does not list it) or ``failed`` (the rebuild, or reading the published file, failed).

The umask and ``TZ`` are process-wide: the caller must not run other builds in this process at
the same time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nanodistro.builder.apkdiff import EntryDifference, compare_apks
from nanodistro.builder.compile import compile_recipe
from nanodistro.builder.config import BuildConfig
from nanodistro.builder.package import MELANGE_CONTROL
from nanodistro.builder.recipeinfo import recipe_hash, recorded_recipe_hash
from nanodistro.errors import ConfigError, NanodistroError
from nanodistro.formats.apk import read_apk
from nanodistro.formats.apkindex import ApkIndex
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.recipe.model import load_recipe
from nanodistro.repo.repository import load_index
from nanodistro.util.progress import Progress

__all__ = [
    "IDENTICAL",
    "REBUILD_TZ",
    "REBUILD_UMASK",
    "PackageCheck",
    "RecipeCheck",
    "rebuild_check",
    "summarize",
]

IDENTICAL, DIFFERS, MISSING, FAILED = "identical", "differs", "missing", "failed"
STATUSES = (IDENTICAL, DIFFERS, MISSING, FAILED)
REBUILD_UMASK = 0o077  # builds usually run under 0022
# A POSIX TZ rule (no tzdata needed): 14.5 hours east of UTC, far from any zone a build ran in.
REBUILD_TZ = "NDR-14:30"


@dataclass
class PackageCheck:
    """The verdict for one package of a recipe."""

    name: str
    version: str
    arch: str
    recipe: str
    status: str  # identical | differs | missing | failed
    file: str = ""  # the published file name
    published_sha256: str = ""
    rebuilt_sha256: str = ""
    compared: str = "file"  # "file", or "control+data" when rebuilt without the signing key
    differences: list[EntryDifference] = field(default_factory=list)
    message: str = ""
    rebuilt_path: str = ""  # where the differing rebuild was written (out_dir)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "arch": self.arch,
            "recipe": self.recipe,
            "status": self.status,
            "file": self.file,
            "published_sha256": self.published_sha256,
            "rebuilt_sha256": self.rebuilt_sha256,
            "compared": self.compared,
            "differences": [d.to_json() for d in self.differences],
            "message": self.message,
            "rebuilt_path": self.rebuilt_path,
        }


@dataclass
class RecipeCheck:
    """One recipe rebuilt (or not: nothing published, or it does not load)."""

    recipe: Path
    name: str
    version: str
    arch: str
    packages: list[PackageCheck] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # why a difference is expected

    @property
    def reproducible(self) -> bool:
        return bool(self.packages) and all(p.status == IDENTICAL for p in self.packages)

    def to_json(self) -> dict[str, object]:
        return {
            "recipe": str(self.recipe),
            "name": self.name,
            "version": self.version,
            "arch": self.arch,
            "seconds": self.seconds,
            "notes": self.notes,
            "packages": [p.to_json() for p in self.packages],
        }


@dataclass(frozen=True)
class Summary:
    """Counts over packages: ``identical`` of ``total``, and how many per status."""

    total: int
    counts: dict[str, int]

    @property
    def identical(self) -> int:
        return self.counts.get(IDENTICAL, 0)

    @property
    def percent(self) -> float:
        return 100.0 * self.identical / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return not (self.counts.get(DIFFERS) or self.counts.get(FAILED))

    def line(self) -> str:
        """``N of M packages reproducible (P%)``, with the other statuses when there are any."""
        text = f"{self.identical} of {self.total} packages reproducible ({self.percent:.0f}%)"
        others = [f"{self.counts[s]} {s}" for s in STATUSES[1:] if self.counts.get(s)]
        return text + (f": {', '.join(others)}" if others else "")


def summarize(checks: Sequence[RecipeCheck]) -> Summary:
    counts: dict[str, int] = {}
    for check in checks:
        for package in check.packages:
            counts[package.status] = counts.get(package.status, 0) + 1
    return Summary(sum(counts.values()), counts)


@contextlib.contextmanager
def another_environment(umask: int = REBUILD_UMASK, tz: str = REBUILD_TZ) -> Iterator[None]:
    """Run the body under another umask and ``TZ`` (process-wide; restored afterwards)."""
    old_umask = os.umask(umask)
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        os.umask(old_umask)
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()


def rebuild_check(
    recipes: Sequence[Path],
    config: BuildConfig,
    *,
    refetch: bool = False,
    out_dir: Path | None = None,
    umask: int = REBUILD_UMASK,
    tz: str = REBUILD_TZ,
    progress: Progress | None = None,
) -> list[RecipeCheck]:
    """Rebuild each recipe independently and compare with what ``config.repo`` published (see
    the module docstring). ``config`` is the build configuration the packages were built with
    (repository, keys, toolchain, namespace); a recipe that fails is reported, never raised."""
    say = progress or (lambda _m: None)
    if config.repo is None:
        raise ConfigError("rebuild-check needs the repository the packages were published to")
    if not config.keyring and config.key is None:
        raise ConfigError(
            "rebuild-check needs the repository's public key to verify its index (a keyring)"
        )
    keyring = dict(config.keyring or {})
    if config.key is not None:
        keyring.setdefault(config.key.keyname, config.key.public_pem())
    index = load_index(config.repo / config.arch, keyring)
    checks = []
    for path in recipes:
        started = time.monotonic()
        check = _check_recipe(
            Path(path), config, index, refetch=refetch, out_dir=out_dir, env=(umask, tz), say=say
        )
        check.seconds = round(time.monotonic() - started, 1)
        checks.append(check)
    return checks


def _check_recipe(
    path: Path,
    config: BuildConfig,
    index: ApkIndex | None,
    *,
    refetch: bool,
    out_dir: Path | None,
    env: tuple[int, str],
    say: Progress,
) -> RecipeCheck:
    from nanodistro.builder.orchestrate import build_recipe

    assert config.repo is not None
    arch = config.arch
    try:
        recipe = load_recipe(path)
        compiled = compile_recipe(
            recipe, arch, pipeline_dirs=config.pipeline_dirs, build_options=config.build_options
        )
    except NanodistroError as error:
        name = path.name.removesuffix(".yaml")
        check = RecipeCheck(path, name, "", arch)
        check.packages.append(PackageCheck(name, "", arch, name, FAILED, message=str(error)))
        return check
    name, version = recipe.package.name, recipe.package.full_version
    names = [p.name for p in compiled.packages]
    check = RecipeCheck(path, name, version, arch)
    listed: dict[str, PackageInfo] = {
        info.name: info
        for info in (index.packages if index else [])
        if info.name in names and info.version == version
    }

    def verdict(package: str, status: str, **values: Any) -> None:
        info = listed.get(package)
        file = info.filename if info else ""
        check.packages.append(PackageCheck(package, version, arch, name, status, file, **values))

    def missing() -> None:  # the recipe's packages the index does not list, after the others
        for package in names:
            if package not in listed:
                verdict(package, MISSING, message=f"not in {config.repo}/{arch}/APKINDEX.tar.gz")

    if not listed:
        missing()
        say(f"{name}-{version}: not published, nothing to compare")
        return check
    published: dict[str, bytes] = {}
    for package, info in listed.items():
        file = config.repo / arch / info.filename
        try:
            data = file.read_bytes()
            identity = read_apk(data, where=str(file)).info.checksum
        except (OSError, NanodistroError) as error:
            verdict(package, FAILED, message=f"{file}: cannot read the published package: {error}")
            continue
        if identity != info.checksum:
            verdict(
                package,
                FAILED,
                message=f"{file}: does not match the index (identity {identity}, index "
                f"{info.checksum})",
            )
            continue
        published[package] = data
    recorded = recorded_inputs(published.values())
    current = recipe_hash(path, recipe)
    if recorded.recipe_sha256 and recorded.recipe_sha256 != current:
        check.notes.append(
            f"the recipe changed since it was published (sha256 {current[:12]}, published from "
            f"{recorded.recipe_sha256[:12]}) without a new version: the rebuild cannot match"
        )
    say(
        f"rebuild {name}-{version} ({len(published)} published package(s); SOURCE_DATE_EPOCH "
        f"{recorded.source_date_epoch}, environment pinned to {len(recorded.environment)} "
        "package(s), as recorded)"
    )
    with tempfile.TemporaryDirectory(prefix=f"nanodistro-rebuild-{name}-") as tmp:
        fresh_cache = Path(tmp) / "sources"
        rebuild_config = dataclasses.replace(
            config,
            rebuild=True,  # no "already published" skip
            run_tests=False,
            keep_workspace=False,
            workspace_dir=Path(tmp) / "builds",
            source_cache=fresh_cache if refetch else config.source_cache,
            source_date_epoch=(
                recorded.source_date_epoch
                if recorded.source_date_epoch is not None
                else config.source_date_epoch
            ),
        )
        try:
            with another_environment(*env):
                result = build_recipe(
                    path,
                    rebuild_config,
                    progress=say,
                    environment_pins=recorded.environment,
                    commit=recorded.commit or None,
                )
        except NanodistroError as error:
            for package in names:
                if package in published:
                    verdict(package, FAILED, message=f"rebuild failed: {error}")
            missing()
            return check
    rebuilt = {p.info.name: p.data for p in result.packages}
    signature = config.key is not None
    for package in names:
        if package not in published:
            continue
        old = published[package]
        old_sha = hashlib.sha256(old).hexdigest()
        new = rebuilt.get(package)
        if new is None:
            verdict(
                package,
                DIFFERS,
                published_sha256=old_sha,
                message="published, but the rebuild did not produce it",
            )
            continue
        values: dict[str, Any] = {
            "published_sha256": old_sha,
            "rebuilt_sha256": hashlib.sha256(new).hexdigest(),
            "compared": "file" if signature else "control+data",
        }
        differences = compare_apks(old, new, where=package, signature=signature)
        if not differences:
            verdict(package, IDENTICAL, **values)
            continue
        if out_dir is not None:
            target = out_dir / arch / listed[package].filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(new)
            values["rebuilt_path"] = str(target)
        verdict(package, DIFFERS, differences=differences, **values)
    missing()
    return check


@dataclass
class Recorded:
    """The inputs a published package recorded beyond the recipe, which a rebuild reuses (as a
    rebuilder reads a ``.buildinfo``): SOURCE_DATE_EPOCH (``builddate``), the git commit the
    recipe was taken from, the locked build environment (``.melange.yaml``), and the recipe
    hash (``.nanodistro.json``), which tells whether the recipe changed since."""

    source_date_epoch: int | None = None
    commit: str = ""
    environment: list[str] = field(default_factory=list)
    recipe_sha256: str = ""


def recorded_inputs(packages: Iterable[bytes]) -> Recorded:
    """What the first readable package of ``packages`` recorded (a recipe's packages share it)."""
    for data in packages:
        try:
            pkg = read_apk(data, where="published")
        except NanodistroError:
            continue
        recorded = Recorded(
            source_date_epoch=pkg.info.builddate,
            commit=pkg.info.commit,
            recipe_sha256=recorded_recipe_hash(pkg.extra_control),
        )
        raw = pkg.extra_control.get(MELANGE_CONTROL)
        try:
            config = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            config = None
        contents = (
            (config.get("environment") or {}).get("contents") if isinstance(config, dict) else None
        )
        items = contents.get("packages") if isinstance(contents, dict) else None
        if isinstance(items, list):
            recorded.environment = sorted(
                str(item) for item in items if isinstance(item, str) and "=" in item
            )
        return recorded
    return Recorded()
