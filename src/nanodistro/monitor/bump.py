"""Moving a recipe to a new upstream version, and retiring patches upstream has absorbed.

As melange's renovator (melange:pkg/renovate/bump/bump.go, security.md §5.3): the version is
written as a string, the epoch reset to 0 (or incremented when the version does not change),
each ``fetch`` step's existing ``expected-sha256``/``expected-sha512`` recomputed from the new
source and each versioned ``git-checkout``'s ``expected-commit`` set from the new tag.

Beyond melange, every ``patch`` step is checked against the new source: a patch that
reverse-applies cleanly is already upstream, so it is removed from the recipe and its file
deleted; a patch that applies neither way fails the bump and leaves the recipe untouched.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.util import load_yaml_guess_indent

from nanodistro.builder.cache import SourceCache
from nanodistro.errors import FetchError, MonitorError, NanodistroError, RecipeError
from nanodistro.formats import version as apk_version
from nanodistro.graph.scan import as_str, package_mapping
from nanodistro.monitor import models as m
from nanodistro.monitor.check import check_targets_async
from nanodistro.monitor.providers import pypi
from nanodistro.monitor.providers.base import Endpoints
from nanodistro.monitor.providers.git import ls_remote
from nanodistro.monitor.recipes import read_recipe_text, target_from_document
from nanodistro.monitor.release_source import exact_release, pinned_uri
from nanodistro.monitor.sources import Download, checkout, download, extract
from nanodistro.recipe.model import load_recipe_text
from nanodistro.recipe.substitute import substitute
from nanodistro.recipe.yamlsource import load_data
from nanodistro.util.atomic import atomic_write_bytes
from nanodistro.util.progress import Progress


@dataclass
class BumpResult:
    """What a bump changed (or, with ``dry_run``, would change)."""

    path: Path
    old_version: str
    new_version: str
    old_epoch: int
    new_epoch: int
    diff: str
    changes: list[str] = field(default_factory=list)
    removed_patches: list[Path] = field(default_factory=list)
    kept_patches: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "old_version": self.old_version,
            "new_version": self.new_version,
            "old_epoch": self.old_epoch,
            "new_epoch": self.new_epoch,
            "changes": self.changes,
            "removed_patches": [str(p) for p in self.removed_patches],
            "kept_patches": self.kept_patches,
            "dry_run": self.dry_run,
            "diff": self.diff,
        }


def _round_trip(text: str) -> YAML:
    # Guess the sequence layout so an untouched recipe dumps byte-identical (true for the
    # whole Wolfi sample); mappings are indented by 2 as melange's `yam` formatter writes them.
    _, sequence_indent, offset = load_yaml_guess_indent(text)
    handler = YAML(typ="rt")
    handler.preserve_quotes = True
    handler.width = 100_000
    handler.indent(mapping=2, sequence=sequence_indent or 2, offset=offset or 0)
    return handler


def _version_scalar(old: Any, new: str) -> Any:
    """The new version in the old one's quoting; quoted whenever plain YAML would not be a string."""
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(new)
    if isinstance(old, DoubleQuotedScalarString) or not isinstance(pyyaml.safe_load(new), str):
        return DoubleQuotedScalarString(new)
    return new


def _steps(
    rt_steps: Any, plain_steps: Any
) -> Iterator[tuple[MutableSequence[Any], int, MutableMapping[str, Any], dict[str, Any]]]:
    """(parent list, index, round-trip step, plain step) depth-first over a pipeline."""
    if not isinstance(rt_steps, list) or not isinstance(plain_steps, list):
        return
    for index, (rt_step, plain_step) in enumerate(zip(rt_steps, plain_steps, strict=False)):
        if isinstance(rt_step, MutableMapping) and isinstance(plain_step, dict):
            yield rt_steps, index, rt_step, plain_step
            yield from _steps(rt_step.get("pipeline"), plain_step.get("pipeline"))


@dataclass
class _PatchStep:
    parent: MutableSequence[Any]
    rt: MutableMapping[str, Any]
    names: list[str]
    strip: int
    fuzz: int
    series: Path | None = None  # the step lists its patches in this file instead


def _series_names(text: str) -> list[str]:
    # as melange's patch pipeline: one patch per line, blank lines and comments skipped
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _series_without(text: str, dropped: set[str]) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() not in dropped)


def _run_patch(tree: Path, patch_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "patch",
            "-d",
            str(tree),
            "-i",
            str(patch_file),
            "-f",
            "-s",
            "--no-backup-if-mismatch",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def classify_patch(tree: Path, patch_file: Path, *, strip: int = 1, fuzz: int = 2) -> str:
    """``"absorbed"`` (reverse-applies cleanly), ``"applies"`` (applied to ``tree`` so later
    patches see it) or raise ``MonitorError`` naming the patch."""
    reverse = _run_patch(tree, patch_file, "-R", "--dry-run", f"-p{strip}", "--fuzz=0")
    if reverse.returncode == 0:
        return "absorbed"
    forward = _run_patch(tree, patch_file, "--dry-run", f"-p{strip}", f"--fuzz={fuzz}")
    if forward.returncode == 0:
        _run_patch(tree, patch_file, f"-p{strip}", f"--fuzz={fuzz}")
        return "applies"
    output = (forward.stdout + forward.stderr).strip().splitlines()
    detail = "; ".join(output[-3:]) if output else f"patch exited {forward.returncode}"
    raise MonitorError(
        f"patch {patch_file.name} neither applies to the new source nor is already in it "
        f"({detail}); refresh or drop it by hand",
        where=str(patch_file),
    )


def _patch_file(recipe: Path, package: str, name: str) -> Path:
    # melange copies the recipe's <package>/ folder into /home/build; wolfi keeps patches there.
    base = Path(name).name if name.startswith("/") else name
    for candidate in (recipe.parent / package / base, recipe.parent / base):
        if candidate.is_file():
            return candidate
    raise RecipeError(
        f"patch file {name!r} not found next to the recipe (looked in {package}/)",
        where=str(recipe),
    )


def _pypi_project(plain: dict[str, Any], path: Path) -> str | None:
    """The PyPI project an ``update: pypi:`` block follows, if any."""
    try:
        update = target_from_document(plain, path).update
    except NanodistroError:
        return None  # an unreadable update: block only matters to the monitor
    return update.pypi.identifier if update is not None and update.pypi is not None else None


def _download_or_explain(uri: str, cache: SourceCache, *, version: str, **options: Any) -> Download:
    """``download``, a 404 said as what it means for a bump: no such file for this version."""
    try:
        return download(uri, cache, **options)
    except FetchError as error:
        if error.message.startswith("HTTP 404"):
            raise MonitorError(
                f"the file for version {version} does not exist upstream (HTTP 404 for the URL "
                "tried); the release may name or place its file differently: fix the fetch uri",
                where=uri,
            ) from None
        raise


def _int_input(value: Any, default: int) -> int:
    try:
        return int(as_str(value)) if value not in (None, "") else default
    except ValueError:
        return default


def latest_version(
    path: Path, *, cache_dir: Path | None = None, endpoints: Endpoints | None = None
) -> str:
    """The version a bump moves to: the monitor's next version for this recipe."""
    target = target_from_document(load_data(path.read_text(encoding="utf-8"), str(path)), path)
    (result,) = asyncio.run(
        check_targets_async([target], cache_dir=cache_dir, endpoints=endpoints, force=True)
    )
    if result.status == m.ERROR or result.status == m.NO_MONITOR:
        raise MonitorError(result.message or "cannot determine the latest version", where=str(path))
    if result.next_version is None:
        raise MonitorError(
            f"already at the latest version {result.latest or target.version}; "
            "give a VERSION to rebuild or move anyway",
            where=str(path),
        )
    return result.next_version


def bump_recipe(
    path: Path,
    version: str | None = None,
    *,
    dry_run: bool = False,
    source_cache: Path | None = None,
    cache_dir: Path | None = None,
    endpoints: Endpoints | None = None,
    progress: Progress | None = None,
    mirrors: Mapping[str, str] | None = None,
) -> BumpResult:
    """Bump the recipe at ``path`` to ``version`` (default: the latest upstream release).

    ``mirrors`` resolves ``mirror://NAME/...`` fetch URIs as the build does (the workspace's
    ``[mirrors]``; the host's apt mirror for ``debian``)."""
    say = progress or (lambda _message: None)
    text = read_recipe_text(path)
    plain = load_data(text, str(path))
    if not isinstance(plain, dict) or not isinstance(plain.get("package"), dict):
        raise RecipeError("expected a mapping with a 'package' section", where=str(path))
    handler = _round_trip(text)
    try:
        document = handler.load(text)
    except YAMLError as error:
        raise RecipeError(f"invalid YAML: {error}", where=str(path)) from None

    package = plain["package"]
    name, old_version = as_str(package.get("name")), as_str(package.get("version"))
    old_epoch = _int_input(package.get("epoch"), 0)
    if version is None:
        say(f"{name}: looking up the latest upstream version")
        version = latest_version(path, cache_dir=cache_dir, endpoints=endpoints)
    if not apk_version.is_valid(version):
        raise MonitorError(f"{version!r} is not a valid APK version", field="package.version")
    new_epoch = 0 if version != old_version else old_epoch + 1
    changes = [
        f"package.version {old_version} -> {version}",
        f"package.epoch {old_epoch} -> {new_epoch}",
    ]
    document["package"]["version"] = _version_scalar(document["package"].get("version"), version)
    document["package"]["epoch"] = new_epoch

    mapping = package_mapping(plain, version=version)
    mapping["package.epoch"] = str(new_epoch)
    mapping["package.full-version"] = f"{version}-r{new_epoch}"
    cache = SourceCache(source_cache)  # the builder's cache, so the next build is offline
    pypi_project = _pypi_project(plain, path)
    # Upstreams that name the release's file (Debian's archive): its path and sha256 win over
    # the version substituted into the recipe's URI.
    exact = (
        exact_release(
            target_from_document(plain, path), version, cache_dir=cache_dir, endpoints=endpoints
        )
        if version != old_version
        else None  # an epoch bump keeps its source
    )

    pinned = [
        p
        for _, _, _, p in _steps(document.get("pipeline"), plain.get("pipeline"))
        if p.get("uses") == "git-checkout"
        and isinstance(p.get("with"), dict)
        and "expected-commit" in p["with"]
    ]
    archive: tuple[Path, int, str] | None = None
    clone: tuple[str, str, str] | None = None
    pinned_commits: dict[tuple[str, str], str] = {}  # (repository, tag) -> new commit
    patch_steps: list[_PatchStep] = []
    for parent, _index, rt_step, step in _steps(document.get("pipeline"), plain.get("pipeline")):
        inputs: dict[str, Any] = step["with"] if isinstance(step.get("with"), dict) else {}
        uses = step.get("uses")
        if uses == "fetch":
            uri = substitute(as_str(inputs.get("uri")), mapping, keep_unknown=True)
            if "${{" in uri:
                raise RecipeError(f"cannot evaluate fetch uri {uri!r}", where=str(path))
            wants = [k for k in ("expected-sha256", "expected-sha512") if k in inputs]
            if not wants and archive is not None:
                continue
            if exact is not None and exact.url and "/pool/" in uri:
                raw_uri = as_str(inputs.get("uri"))
                new_uri = pinned_uri(raw_uri, uri, exact.url, version)
                if new_uri is not None:
                    rt_step["with"]["uri"] = new_uri
                    uri = substitute(new_uri, mapping, keep_unknown=True)
                    changes.append(f"fetch uri {raw_uri} -> {new_uri}")
            listed_sha256 = None
            if pypi_project and pypi.is_pypi_file_url(uri, endpoints or Endpoints.from_env()):
                # the sdist's path holds a content hash: ask PyPI instead of guessing it
                say(f"{name}: asking PyPI for the {version} sdist of {pypi_project}")
                uri, listed_sha256 = pypi.source_file(pypi_project, version, endpoints=endpoints)
                new_uri = pypi.templated_uri(as_str(inputs.get("uri")), uri, version)
                if new_uri != as_str(inputs.get("uri")):
                    rt_step["with"]["uri"] = new_uri
                    changes.append(f"fetch uri {uri} (PyPI's sdist for {version})")
            fetched = _download_or_explain(
                uri,
                cache,
                step=name,
                version=version,
                retries=_int_input(inputs.get("retry-limit"), 5),
                progress=say,
                mirrors=mirrors,
            )
            if listed_sha256 is not None and fetched.sha256 != listed_sha256:
                raise MonitorError(
                    f"the sdist PyPI lists for {version} has sha256 {fetched.sha256}, "
                    f"PyPI says {listed_sha256}",
                    where=uri,
                )
            if exact is not None and exact.checksum and "/pool/" in uri:
                if f"sha256:{fetched.sha256}" != exact.checksum:
                    raise MonitorError(
                        f"downloaded file has sha256 {fetched.sha256}, the archive's index "
                        f"says {exact.checksum.removeprefix('sha256:')}",
                        where=uri,
                    )
                exact = None  # one source file per release
            for key in wants:
                new = fetched.sha256 if key == "expected-sha256" else fetched.sha512
                if as_str(inputs[key]) != new:
                    rt_step["with"][key] = new
                    changes.append(f"fetch {uri}: {key} {new}")
            if archive is None and as_str(inputs.get("extract") or "true") != "false":
                archive = (fetched.path, _int_input(inputs.get("strip-components"), 1), uri)
        elif uses == "git-checkout":
            repository = substitute(as_str(inputs.get("repository")), mapping, keep_unknown=True)
            raw_tag = as_str(inputs.get("tag"))
            tag = substitute(raw_tag, mapping, keep_unknown=True)
            commit = as_str(inputs.get("expected-commit"))
            if clone is None and tag:
                clone = (repository, tag, "")
            versioned = len(pinned) == 1 or "${{" in raw_tag
            if "expected-commit" not in inputs or "${{" in commit or not versioned or not tag:
                continue
            say(f"{name}: resolving tag {tag} of {repository}")
            commits = asyncio.run(
                ls_remote(repository, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}")
            )
            if tag not in commits:
                raise MonitorError(f"tag {tag!r} not found", where=repository)
            pinned_commits[(repository, tag)] = commits[tag]
            if commits[tag] != commit:
                rt_step["with"]["expected-commit"] = commits[tag]
                changes.append(f"git-checkout {repository}@{tag}: expected-commit {commits[tag]}")
        elif uses == "patch" and not step.get("working-directory"):
            series = None
            if inputs.get("patches"):
                names = as_str(inputs["patches"]).split()
            elif inputs.get("series"):
                series = _patch_file(path, name, as_str(inputs["series"]))
                names = _series_names(series.read_text(encoding="utf-8", errors="replace"))
            else:
                continue
            patch_steps.append(
                _PatchStep(
                    parent=parent,
                    rt=rt_step,
                    names=names,
                    strip=_int_input(inputs.get("strip-components"), 1),
                    fuzz=_int_input(inputs.get("fuzz"), 2),
                    series=series,
                )
            )

    removed: list[Path] = []
    kept: list[str] = []
    series_edits: dict[Path, str | None] = {}
    if patch_steps:
        if clone is not None:
            clone = (clone[0], clone[1], pinned_commits.get(clone[:2], ""))
        removed, kept, series_edits = _retire_patches(
            path, name, patch_steps, archive, clone, cache, say
        )
        for patch in removed:
            changes.append(f"patch {patch.name} is in upstream {version}: removed")

    out = io.StringIO()
    handler.dump(document, out)
    new_text = out.getvalue()
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"a/{path.name}",
            tofile=f"b/{path.name}",
        )
    )
    for series, content in series_edits.items():
        old_series = series.read_text(encoding="utf-8", errors="replace")
        diff += "".join(
            difflib.unified_diff(
                old_series.splitlines(keepends=True),
                (content or "").splitlines(keepends=True),
                fromfile=f"a/{series.name}",
                tofile=f"b/{series.name}" if content is not None else "/dev/null",
            )
        )
    for patch in removed:
        diff += f"deleted file {patch}\n"
    _check_still_valid(text, new_text, str(path))
    if not dry_run:
        atomic_write_bytes(path, new_text.encode("utf-8"))
        for series, content in series_edits.items():
            if content is None:
                series.unlink(missing_ok=True)
            else:
                atomic_write_bytes(series, content.encode("utf-8"))
        for patch in removed:
            patch.unlink(missing_ok=True)
    return BumpResult(
        path=path,
        old_version=old_version,
        new_version=version,
        old_epoch=old_epoch,
        new_epoch=new_epoch,
        diff=diff,
        changes=changes,
        removed_patches=removed,
        kept_patches=kept,
        dry_run=dry_run,
    )


def _retire_patches(
    recipe: Path,
    package: str,
    steps: list[_PatchStep],
    archive: tuple[Path, int, str] | None,
    clone: tuple[str, str, str] | None,
    cache: SourceCache,
    say: Progress,
) -> tuple[list[Path], list[str], dict[Path, str | None]]:
    """Check every patch against the new source; edit the round-trip steps in place.

    Returns the patch files to delete, the patches kept, and new series file contents
    (None: delete the series file, its step is gone).
    """
    removed: list[Path] = []
    kept: list[str] = []
    series_edits: dict[Path, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="nanodistro-bump-") as scratch:
        tree = Path(scratch) / "src"
        if archive is not None:
            extract(archive[0], tree, strip_components=archive[1], where=archive[2])
        elif clone is not None:
            repository, tag, commit = clone
            checkout(
                repository, tag, tree, cache, step=package, expected_commit=commit, progress=say
            )
        else:
            raise MonitorError(
                "the recipe has patches but no fetch or git-checkout source to check them against",
                where=str(recipe),
            )
        for step in steps:
            remaining = []
            for name in step.names:
                patch_file = _patch_file(recipe, package, name)
                say(f"{package}: checking {patch_file.name}")
                if classify_patch(tree, patch_file, strip=step.strip, fuzz=step.fuzz) == "absorbed":
                    removed.append(patch_file)
                else:
                    remaining.append(name)
                    kept.append(name)
            if remaining == step.names:
                continue
            if not remaining:
                step.parent.remove(step.rt)
                if step.series is not None:
                    series_edits[step.series] = None
                continue
            if step.series is not None:
                dropped = set(step.names) - set(remaining)
                text = step.series.read_text(encoding="utf-8", errors="replace")
                series_edits[step.series] = _series_without(text, dropped)
                continue
            old = step.rt["with"]["patches"]
            if isinstance(old, LiteralScalarString):
                step.rt["with"]["patches"] = LiteralScalarString("\n".join(remaining) + "\n")
            else:
                step.rt["with"]["patches"] = " ".join(remaining)
    still_used = {Path(n).name for n in kept}
    return [p for p in removed if p.name not in still_used], kept, series_edits


def _check_still_valid(old_text: str, new_text: str, where: str) -> None:
    """The bumped recipe must load wherever the original did (never write a broken recipe)."""
    try:
        load_recipe_text(old_text, where)
    except NanodistroError:
        return  # the model already rejects the original; the bump cannot make that worse
    try:
        load_recipe_text(new_text, where)
    except NanodistroError as error:
        raise MonitorError(f"the bumped recipe would not load: {error}", where=where) from None


def bump_many(paths: list[Path], **options: Any) -> list[BumpResult | NanodistroError]:
    """Bump several recipes; a failure is returned in place of its result."""
    results: list[BumpResult | NanodistroError] = []
    for path in paths:
        try:
            results.append(bump_recipe(path, **options))
        except NanodistroError as error:
            results.append(error)
    return results
