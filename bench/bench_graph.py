"""Benchmark: load + graph + order a recipe corpus, cold and with the warm parse cache.

    .venv/bin/python bench/bench_graph.py [CORPUS_DIR] [--synthetic N] [--workers W]

Cold = every recipe parsed (libyaml, numbers kept as strings, only the graph's fields kept);
warm = files read and hashed, parsed nodes taken from the on-disk cache. The baseline parses the
same files with ruamel.yaml round-trip (what a naive loader would use) and builds the same graph.
With ``--synthetic N`` a corpus of N recipes is generated from CORPUS_DIR (copies with every
package name renamed per copy, so edges stay inside each copy) and measured too. Of the N,
``--toolchain T`` (400) are a generated bootstrap toolchain in the shape Wolfi's has: one
strongly connected group (``build-base`` and T-1 recipes each build-depending on it and on 8
others of the group), which every sample recipe's ``build-base`` now points into, so the
bootstrap cuts (graph/bootstrap.py) are measured on a group as large as Wolfi's (399).
Budget for the public Wolfi corpus (3,401 recipes): < 10 s cold, < 1 s warm on 2 cores.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

from nanodistro.graph.corpus import Corpus, load_corpus, recipe_files, recipe_node
from nanodistro.graph.graph import build_graph

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared/fixtures/wolfi-os-sample"
WOLFI_SIZE = 3401


def ours(directory: Path, cache: Path | None, workers: int | None) -> tuple[float, int, int]:
    start = time.perf_counter()
    corpus = load_corpus(directory, cache_dir=cache, workers=workers)
    graph = build_graph(corpus, cache_dir=cache)  # the bootstrap cuts are cached too
    order = graph.order()
    elapsed = time.perf_counter() - start
    assert not corpus.errors, corpus.errors[:3]
    assert not order.cycles and not order.blocked, (order.cycles[:1], order.blocked[:5])
    return elapsed, len(order.waves), corpus.cache_hits


def baseline(directory: Path) -> float:
    start = time.perf_counter()
    yaml = YAML(typ="rt")
    nodes = [recipe_node(yaml.load(p.read_text()), str(p)) for p in recipe_files(directory)]
    build_graph(Corpus(recipes=nodes)).order()
    return time.perf_counter() - start


def toolchain(target: Path, size: int) -> None:
    """``size`` recipes forming one build cycle group around ``build-base`` (deterministic)."""
    names = ["build-base"] + [f"tc-{i:03d}" for i in range(1, size)]
    for i, name in enumerate(names):
        deps = [names[(i * 7 + k * 13 + 1) % size] for k in range(8)]
        deps = [d for d in dict.fromkeys(["build-base", *deps]) if d != name]
        subs = f"subpackages:\n  - name: {name}-dev\n"
        (target / f"{name}.yaml").write_text(
            f"package:\n  name: {name}\n  version: 1.0.{i}\n  epoch: 0\n"
            f"environment:\n  contents:\n    packages: [{', '.join(deps)}]\n{subs}"
        )


def synthesize(source: Path, target: Path, count: int, toolchain_size: int = 0) -> None:
    """``count`` recipes: a generated toolchain group of ``toolchain_size`` and copies of
    ``source`` with all of its package names suffixed per copy."""
    corpus = load_corpus(source)
    names = sorted({p.name for r in corpus.recipes for p in r.packages}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.+-])(" + "|".join(map(re.escape, names)) + r")(?![\w+-]|\.\w)")
    files = recipe_files(source)
    target.mkdir(parents=True, exist_ok=True)
    if toolchain_size:
        toolchain(target, toolchain_size)
    made = toolchain_size
    copy = 0
    while made < count:
        for path in files:
            if made >= count:
                break
            text = path.read_text()
            if copy:
                text = pattern.sub(lambda m, c=copy: f"{m.group(1)}-c{c}", text)
            (target / f"{path.stem}-c{copy}.yaml").write_text(text)
            made += 1
        copy += 1


def measure(label: str, directory: Path, workers: int | None, runs_baseline: bool) -> None:
    count = len(recipe_files(directory))
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch)
        cold, waves, _ = ours(directory, cache, workers)
        warm, _, hits = ours(directory, cache, workers)
    print(f"{label}: {count} recipes, {waves} build waves")
    print(f"  ours cold: {cold:7.3f} s   warm: {warm:7.3f} s ({hits} cache hits)")
    if runs_baseline:
        base = baseline(directory)
        print(
            f"  baseline (ruamel round-trip, same graph): {base:7.3f} s   "
            f"ratio cold {base / cold:5.1f}x, warm {base / warm:5.1f}x"
        )
    scale = WOLFI_SIZE / count
    print(
        f"  extrapolated to {WOLFI_SIZE} recipes: cold {cold * scale:6.2f} s (budget 10), "
        f"warm {warm * scale:6.2f} s (budget 1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--synthetic", type=int, default=3400, help="0 to skip")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--toolchain", type=int, default=400, help="cycle group size, 0: none")
    parser.add_argument("--no-baseline", action="store_true", help="skip the ruamel baseline")
    args = parser.parse_args()
    measure("corpus", args.corpus, args.workers, runs_baseline=not args.no_baseline)
    if args.synthetic:
        scratch = Path(tempfile.mkdtemp(prefix="nanodistro-synthetic-"))
        try:
            synthesize(args.corpus, scratch, args.synthetic, args.toolchain)
            measure("synthetic", scratch, args.workers, runs_baseline=not args.no_baseline)
        finally:
            shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
