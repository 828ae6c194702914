"""Benchmark: `nanodistro build` of a small C project against the bare build it wraps.

Baseline: the same release tarball extracted, ``./configure && make && make install
DESTDIR=...`` run directly on the host (no sandbox, no packaging). Ours: the full builder with a
warm source cache — compile the recipe, place sources, one bubblewrap sandbox per step,
split/dev + split/manpages + strip, SCA, SBOM, three signed ``.apk`` files, no tests. The ratio
is the cost of hermeticity and packaging for a tiny project (dominated by fixed per-step costs).

    .venv/bin/python bench/bench_build.py [-n N]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "builder"))

from build_testlib import greet_project, greet_recipe, make_tarball  # noqa: E402

from nanodistro.builder.cache import SourceCache  # noqa: E402
from nanodistro.builder.orchestrate import BuildConfig, build_recipe  # noqa: E402
from nanodistro.trust.keys import generate_key, load_signing_key  # noqa: E402


def baseline(tarball: Path, work: Path) -> None:
    src = work / "src"
    with tarfile.open(tarball) as archive:
        archive.extractall(src, filter="data")
    tree = src / "greet-1.0"
    for command in (
        ["./configure", "--prefix=/usr"],
        ["make", "-j2"],
        ["make", "install", f"DESTDIR={work / 'dest'}"],
    ):
        subprocess.run(command, cwd=tree, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3, help="runs of each (best time is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp_name:
        tmp = Path(tmp_name)
        data = make_tarball(greet_project(), mtime=1_700_000_000, modes={}, top="greet-1.0")
        tarball = tmp / "greet-1.0.tar.gz"
        tarball.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        cache = SourceCache(tmp / "cache")
        cache.store(tarball, {"sha256": sha})  # warm cache: the build needs no server
        recipes = tmp / "recipes"
        recipes.mkdir()
        recipe = recipes / "greet.yaml"
        recipe.write_text(greet_recipe("http://127.0.0.1:9/greet-1.0.tar.gz", sha))
        private, _ = generate_key("bench", tmp / "keys", bits=2048)
        config = BuildConfig(
            source_cache=cache.root, key=load_signing_key(private), run_tests=False
        )

        base_times, our_times = [], []
        for run in range(args.n):
            work = tmp / f"base{run}"
            started = time.perf_counter()
            baseline(tarball, work)
            base_times.append(time.perf_counter() - started)
            shutil.rmtree(work)
            started = time.perf_counter()
            result = build_recipe(recipe, config)
            our_times.append(time.perf_counter() - started)
            assert len(result.packages) == 3
        base, ours = min(base_times), min(our_times)
        print(f"bare configure/make/install: {base:.3f} s")
        print(f"nanodistro build (3 signed apks): {ours:.3f} s")
        print(f"ratio: {ours / base:.2f}x")


if __name__ == "__main__":
    main()
