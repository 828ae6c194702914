"""Benchmark: load + validate melange recipes, against plain ruamel.yaml round-trip loading.

The baseline only parses the YAML (ruamel.yaml ``typ='rt'``, what a naive loader keeping line
numbers would use), with no validation. Ours parses with libyaml, keeps every scalar as source
text with its line, and validates the full pydantic model. The Wolfi sample (150 recipes) is
loaded ``-n`` times; the last line extrapolates to the 3,401-recipe public corpus (target < 10 s).

    .venv/bin/python bench/bench_recipe_load.py [DIR] [-n N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ruamel.yaml import YAML

from nanodistro.recipe.model import load_recipe_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared/fixtures/wolfi-os-sample"
CORPUS_SIZE = 3401


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("-n", type=int, default=5, help="passes over the directory")
    args = parser.parse_args()
    texts = [(str(p), p.read_text()) for p in sorted(args.directory.glob("*.yaml"))]
    count = len(texts) * args.n

    start = time.perf_counter()
    for _ in range(args.n):
        for where, text in texts:
            load_recipe_text(text, where)
    ours = time.perf_counter() - start

    yaml = YAML(typ="rt")
    start = time.perf_counter()
    for _ in range(args.n):
        for _where, text in texts:
            yaml.load(text)
    baseline = time.perf_counter() - start

    print(f"recipes loaded:            {count} ({len(texts)} files x {args.n})")
    print(f"nanodistro load_recipe:    {ours:.3f} s ({1000 * ours / count:.2f} ms/recipe)")
    print(f"baseline ruamel rt parse:  {baseline:.3f} s ({1000 * baseline / count:.2f} ms/recipe)")
    print(f"ratio ours/baseline:       {ours / baseline:.2f}")
    print(f"extrapolated {CORPUS_SIZE} recipes: {CORPUS_SIZE * ours / count:.2f} s (target < 10 s)")


if __name__ == "__main__":
    main()
