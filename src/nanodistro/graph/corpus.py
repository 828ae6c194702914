"""Loading a recipe set (and image configs) into the few fields the graph needs, fast.

Each recipe becomes a ``RecipeNode``: its packages (main and subpackages, ranges expanded) with
their runtime dependencies and provides, its build-time packages, and its update group. Parsed
nodes are cached on disk keyed by the SHA-256 of the file's bytes, so a warm load only reads and
hashes files.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError, NanodistroError, RecipeError
from nanodistro.graph.scan import as_str, is_true, load_yaml_without, package_mapping
from nanodistro.recipe.folder import skip_reason
from nanodistro.recipe.substitute import substitute
from nanodistro.recipe.yamlsource import load_data
from nanodistro.util.atomic import atomic_write_bytes

# 2: scalars read by recipe.yamlsource; 3: upstream key carries the release filters;
# 4: {"nodes": digest -> node, "stats": path -> (size, mtime_ns, inode, digest)}
CACHE_FORMAT = 4
_ATOM_NAME = re.compile(r"^([^<>=~!@\s]+)")


@dataclass(frozen=True)
class PackageNode:
    """One output package of a recipe."""

    name: str
    runtime: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    provider_priority: int = 0


@dataclass(frozen=True)
class RecipeNode:
    """The graph's view of one recipe."""

    name: str
    version: str
    epoch: int
    path: str
    packages: tuple[PackageNode, ...]
    build: tuple[str, ...]
    shared: bool = False
    upstream: str | None = None  # "<kind>:<identifier>", recipes with the same one share updates


@dataclass(frozen=True)
class ImageNode:
    """An apko image config as a consumer of packages."""

    name: str
    path: str
    packages: tuple[str, ...]


@dataclass
class Corpus:
    recipes: list[RecipeNode] = field(default_factory=list)
    images: list[ImageNode] = field(default_factory=list)
    errors: list[NanodistroError] = field(default_factory=list)
    cache_hits: int = 0
    # non-recipe YAML beside the recipes (.yam.yaml, dot files, no package:): (path, why)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def atom_name(atom: str) -> str | None:
    """The package name of a dependency atom (``foo>=1``, ``so:libc.so.6``); None for ``!conflicts``."""
    atom = atom.strip()
    if not atom or atom.startswith("!"):
        return None
    match = _ATOM_NAME.match(atom)
    return match.group(1) if match else None


def _names(values: Any, mapping: Mapping[str, str]) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    names = []
    for value in values:
        name = atom_name(substitute(as_str(value), mapping, keep_unknown=True))
        if name:
            names.append(name)
    return tuple(dict.fromkeys(names))


def _provides(values: Any, mapping: Mapping[str, str]) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    out = []
    for value in values:
        text = substitute(as_str(value), mapping, keep_unknown=True).strip()
        name = text.split("=", 1)[0].strip()
        if name:
            out.append(name)
    return tuple(dict.fromkeys(out))


def _package(name: str, spec: Mapping[str, Any], mapping: Mapping[str, str]) -> PackageNode:
    deps: Mapping[str, Any] = (
        spec["dependencies"] if isinstance(spec.get("dependencies"), Mapping) else {}
    )
    try:
        priority = int(as_str(deps.get("provider-priority") or "0"))
    except ValueError:
        priority = 0
    return PackageNode(
        name=name,
        runtime=_names(deps.get("runtime"), mapping),
        provides=_provides(deps.get("provides"), mapping),
        provider_priority=priority,
    )


# Fields that select which of an upstream's releases a recipe follows: python-3.12 and
# python-3.13 both watch github:python/cpython (tag-filter v3.12 / v3.13) but never move together.
_FILTER_FIELDS = (
    "tag-filter",
    "tag-filter-prefix",
    "tag-filter-contains",
    "version-filter-prefix",
    "version-filter-contains",
)


def _upstream_key(update: Any) -> str | None:
    """``<kind>:<identifier>`` plus the release filters: recipes with equal keys see the same
    releases, so a ``shared`` update moves them together."""
    if not isinstance(update, Mapping):
        return None
    for kind in ("release-monitor", "github", "gitlab", "pypi", "npm", "oci"):
        block = update.get(kind)
        if isinstance(block, Mapping) and block.get("identifier") is not None:
            filters = "".join(
                f";{field}={as_str(block[field])}" for field in _FILTER_FIELDS if field in block
            )
            return f"{kind}:{as_str(block['identifier'])}{filters}"
    return None


def recipe_node(document: Any, path: str) -> RecipeNode:
    """Build the node from a parsed recipe (``recipe.yamlsource.load_data`` output)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("package"), Mapping):
        raise RecipeError("expected a mapping with a 'package' section", where=path)
    package = document["package"]
    name = as_str(package.get("name"))
    if not name:
        raise RecipeError("package.name is required", where=path, field="package.name")
    mapping = package_mapping(document)
    packages = [_package(name, package, mapping)]

    data: dict[str, Mapping[str, Any]] = {}
    for entry in document.get("data") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("items"), Mapping):
            data[as_str(entry.get("name"))] = entry["items"]
    for index, sub in enumerate(document.get("subpackages") or []):
        if not isinstance(sub, Mapping):
            continue
        range_name = sub.get("range")
        if range_name:
            items = data.get(as_str(range_name))
            if items is None:
                raise RecipeError(
                    f"range {range_name!r} is not defined under data:",
                    where=path,
                    field=f"subpackages[{index}].range",
                )
            contexts = [
                {**mapping, "range.key": as_str(k), "range.value": as_str(v)}
                for k, v in sorted(items.items(), key=lambda kv: as_str(kv[0]))
            ]
        else:
            contexts = [mapping]
        for context in contexts:
            sub_name = substitute(as_str(sub.get("name")), context, keep_unknown=True)
            if sub_name:
                context = {**context, "subpkg.name": sub_name, "context.name": sub_name}
                packages.append(_package(sub_name, sub, context))

    environment = document.get("environment")
    contents = environment.get("contents") if isinstance(environment, Mapping) else None
    build = _names(contents.get("packages") if isinstance(contents, Mapping) else None, mapping)
    update = document.get("update")
    try:
        epoch = int(as_str(package.get("epoch") or "0"))
    except ValueError:
        epoch = 0
    return RecipeNode(
        name=name,
        version=as_str(package.get("version")),
        epoch=epoch,
        path=path,
        packages=tuple(packages),
        build=build,
        shared=bool(isinstance(update, Mapping) and is_true(update.get("shared"))),
        upstream=_upstream_key(update),
    )


def image_node(document: Any, path: str) -> ImageNode:
    if not isinstance(document, Mapping):
        raise ConfigError("expected an apko image config (a mapping)", where=path)
    contents = document.get("contents")
    packages = contents.get("packages") if isinstance(contents, Mapping) else None
    names = _names(packages, {})
    return ImageNode(name=Path(path).stem, path=path, packages=names)


# --- loading with a content-hash cache ---------------------------------------------------------


# Top-level sections the graph never reads (most of a recipe's text).
_UNUSED_SECTIONS = (b"pipeline", b"test", b"options", b"capabilities")


def _parse_one(item: tuple[str, bytes]) -> RecipeNode | NanodistroError:
    path, data = item
    try:
        return recipe_node(load_yaml_without(data, path, _UNUSED_SECTIONS), path)
    except NanodistroError as error:
        return error


def _parse_chunk(items: list[tuple[str, bytes]]) -> list[RecipeNode | NanodistroError]:
    # Parsing builds many short-lived containers and no cycles; the cyclic GC only costs time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return [_parse_one(item) for item in items]
    finally:
        if enabled:
            gc.enable()


def _cache_file(cache_dir: Path) -> Path:
    return cache_dir / f"graph-scan-v{CACHE_FORMAT}.pickle"


_Stat = tuple[int, int, int, str]  # size, mtime_ns, inode, sha256 of the bytes


def _load_cache(cache_dir: Path | None) -> tuple[dict[str, RecipeNode], dict[str, _Stat]]:
    if cache_dir is None:
        return {}, {}
    try:
        with _cache_file(cache_dir).open("rb") as handle:
            data = pickle.load(handle)  # our own cache file, written below
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return {}, {}
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        return {}, {}
    stats = data.get("stats")
    return data["nodes"], stats if isinstance(stats, dict) else {}


def recipe_files(directory: Path) -> list[Path]:
    """Wolfi's layout: recipes are the top-level ``*.yaml`` files of the directory."""
    if not directory.is_dir():
        raise RecipeError("not a directory of recipes", where=str(directory))
    # scandir's entry types come with the listing: no stat per file (3,400 of them)
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".yaml") and e.is_file())
    return [directory / name for name in names]


def load_recipes(
    paths: Sequence[Path], *, cache_dir: Path | None = None, workers: int | None = None
) -> Corpus:
    """Parse recipes (in parallel when there are many), reusing cached nodes by content hash.
    Other YAML of a recipe folder is listed in ``skipped``, not parsed (recipe/folder.py)."""
    cache, stats = _load_cache(cache_dir)
    fresh_stats: dict[str, _Stat] = {}
    corpus = Corpus()
    pending: list[tuple[str, bytes]] = []
    digests: dict[str, str] = {}
    found: dict[str, RecipeNode] = {}
    for path in paths:
        name = str(path)
        known = stats.get(name)
        if known is not None:
            try:
                st = os.stat(name)
            except OSError:
                st = None
            # size, mtime and inode as recorded: the recorded digest is still the file's
            if st is not None and known[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                node = cache.get(known[3])
                if node is not None and node.path == name:
                    digests[name] = known[3]
                    fresh_stats[name] = known
                    found[name] = node
                    corpus.cache_hits += 1
                    continue
        try:
            with open(name, "rb") as handle:
                st = os.fstat(handle.fileno())
                data = handle.read()
        except OSError as error:
            corpus.errors.append(RecipeError(f"cannot read: {error}", where=str(path)))
            continue
        reason = skip_reason(path, data)
        if reason is not None:
            corpus.skipped.append((str(path), reason))
            continue
        digest = hashlib.sha256(data).hexdigest()
        digests[name] = digest
        fresh_stats[name] = (st.st_size, st.st_mtime_ns, st.st_ino, digest)
        node = cache.get(digest)
        if node is not None and node.path == str(path):
            found[str(path)] = node
            corpus.cache_hits += 1
        else:
            pending.append((str(path), data))

    # Serial by default: parsing 3,400 recipes takes about a second, less than a process
    # pool costs to start and to send the nodes back (bench/bench_graph.py).
    workers = workers if workers is not None else 1
    if len(pending) >= 200 and workers > 1:
        size = max(1, len(pending) // (workers * 4))
        chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parsed = [r for chunk in pool.map(_parse_chunk, chunks) for r in chunk]
    else:
        parsed = _parse_chunk(pending)
    for (name, _), result in zip(pending, parsed, strict=True):
        if isinstance(result, NanodistroError):
            corpus.errors.append(result)
        else:
            found[name] = result
    corpus.recipes = [found[str(p)] for p in paths if str(p) in found]

    kept_stats = {n: fresh_stats[n] for n in found}
    if cache_dir is not None and (pending or kept_stats != stats):
        fresh = {digests[n.path]: n for n in corpus.recipes}
        document = {"nodes": fresh, "stats": kept_stats}
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs speed
            atomic_write_bytes(_cache_file(cache_dir), pickle.dumps(document, protocol=5))
    return corpus


def load_images(paths: Iterable[Path]) -> tuple[list[ImageNode], list[NanodistroError]]:
    images: list[ImageNode] = []
    errors: list[NanodistroError] = []
    for path in paths:
        try:
            images.append(image_node(load_data(path.read_bytes(), str(path)), str(path)))
        except NanodistroError as error:
            errors.append(error)
        except OSError as error:
            errors.append(ConfigError(f"cannot read: {error}", where=str(path)))
    return images, errors


def load_corpus(
    recipes_dir: Path,
    *,
    images_dir: Path | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> Corpus:
    """Recipes of ``recipes_dir`` and, if given, the image configs of ``images_dir``."""
    corpus = load_recipes(recipe_files(recipes_dir), cache_dir=cache_dir, workers=workers)
    if images_dir is not None:
        if not images_dir.is_dir():
            raise ConfigError("not a directory of image configs", where=str(images_dir))
        images, errors = load_images(sorted(images_dir.glob("*.yaml")))
        corpus.images, corpus.errors = images, corpus.errors + errors
    return corpus
