#!/usr/bin/env python3
"""Measure nanodistro against a corpus of melange recipes (e.g. a wolfi-dev/os checkout).

    .venv/bin/python scripts/measure-corpus.py DIR [--pipeline-dir DIR] [--show N] [--json]

Counts the top-level ``DIR/*.yaml`` recipes (sub-folders hold patches; ``DIR/pipelines`` is used as
a pipeline directory when present), how many load, how many lint clean, and which load errors and
lint rules are most common. Lint runs without git history (no ``epoch-not-reset``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from nanodistro.errors import NanodistroError
from nanodistro.recipe.lint import lint_path
from nanodistro.recipe.model import load_recipe
from nanodistro.recipe.pipelines import known_pipeline_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="folder of melange recipes (*.yaml)")
    parser.add_argument("--pipeline-dir", type=Path, action="append", default=[])
    parser.add_argument("--show", type=int, default=10, help="examples of failures to print")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)

    directory: Path = args.directory
    if not directory.is_dir():
        print(f"error: {directory}: not a directory", file=sys.stderr)
        return 2
    files = sorted(p for p in directory.glob("*.yaml") if p.is_file())
    if not files:
        print(f"error: {directory}: no *.yaml recipes", file=sys.stderr)
        return 2
    pipeline_dirs = list(args.pipeline_dir)
    if not pipeline_dirs and (directory / "pipelines").is_dir():
        pipeline_dirs.append(directory / "pipelines")

    start = time.perf_counter()
    load_failures: list[str] = []
    for path in files:
        try:
            load_recipe(path)
        except NanodistroError as error:
            load_failures.append(str(error))
    load_seconds = time.perf_counter() - start

    names = known_pipeline_names(pipeline_dirs)
    start = time.perf_counter()
    results = [
        lint_path(path, pipeline_dirs=pipeline_dirs, use_git=False, pipeline_names=names)
        for path in files
    ]
    lint_seconds = time.perf_counter() - start
    clean = sum(result.clean for result in results)
    rules = Counter(
        (finding.rule, finding.severity) for result in results for finding in result.findings
    )
    failing_by_rule = Counter(
        rule for result in results for rule in {f.rule for f in result.errors}
    )

    summary = {
        "directory": str(directory),
        "recipes": len(files),
        "load": len(files) - len(load_failures),
        "load_seconds": round(load_seconds, 3),
        "lint_clean": clean,
        "lint_seconds": round(lint_seconds, 3),
        "pipeline_dirs": [str(p) for p in pipeline_dirs],
        "findings_by_rule": {f"{rule} ({sev})": n for (rule, sev), n in rules.most_common()},
        "recipes_failing_by_rule": dict(failing_by_rule.most_common()),
        "load_failures": load_failures,
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    total = len(files)
    print(f"recipes:     {total} in {directory}")
    print(
        f"load:        {summary['load']}/{total} ({100 * summary['load'] / total:.1f} %) "
        f"in {load_seconds:.2f} s"
    )
    print(f"lint clean:  {clean}/{total} ({100 * clean / total:.1f} %) in {lint_seconds:.2f} s")
    if pipeline_dirs:
        print(f"pipelines:   {', '.join(str(p) for p in pipeline_dirs)}")
    if failing_by_rule:
        print("recipes with errors, by rule:")
        for rule, count in failing_by_rule.most_common():
            print(f"  {count:6}  {rule}")
    if rules:
        print("findings by rule:")
        for (rule, severity), count in rules.most_common():
            print(f"  {count:6}  {rule} ({severity})")
    for failure in load_failures[: args.show]:
        print(f"load error: {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
