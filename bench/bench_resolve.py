"""Resolve a large world against the Alpine 3.16 index; compare with apk-tools' reference time.

Measures, in a fresh interpreter each run (so no warm caches carry over):
  engine: keyring load + signature check + index parse + universe + solve (what
          ``nanodistro resolve`` does after Python has started);
  cli:    the whole ``nanodistro resolve`` process, interpreter start-up included.

The baseline is ``apk add --simulate`` of the same world on the same index: 86 packages in
0.06 s (apk-tools is not installable here, so the number is the reference from the brief).

Run: .venv/bin/python bench/bench_resolve.py
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIRD_PARTY = ROOT.parent / "shared" / "fixtures" / "third_party"
INDEX = THIRD_PARTY / "chainguard-dev+apko/pkg/apk/apk/testdata/alpine-316/APKINDEX.tar.gz"
KEYS = THIRD_PARTY / "alpinelinux+alpine-chroot-install/alpine-keys"
WORLD = [
    *("alpine-base", "python3", "gcc", "g++", "make", "cmake", "perl", "git"),
    *("openssh-client", "clang", "llvm", "postgresql", "nginx"),
]
BASELINE_SECONDS = 0.06
BASELINE_PACKAGES = 86
RUNS = 5

ENGINE = """
import json, sys, time
from pathlib import Path
from nanodistro.resolve import RepositoryClient, parse_repository, solve
from nanodistro.trust.keys import load_keyring
repo, keys, world = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.perf_counter()
with RepositoryClient(load_keyring(Path(keys))) as client:
    universe = client.load_universe([parse_repository(repo)], "x86_64")
resolution = solve(universe, world)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "packages": len(resolution.packages)}))
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "alpine-316"
        (repo / "x86_64").mkdir(parents=True)
        shutil.copy(INDEX, repo / "x86_64" / "APKINDEX.tar.gz")

        engine_times = []
        packages = 0
        for _ in range(RUNS):
            out = subprocess.run(
                [sys.executable, "-c", ENGINE, str(repo), str(KEYS), *WORLD],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout)
            engine_times.append(result["seconds"])
            packages = result["packages"]

        cli = [str(Path(sys.executable).parent / "nanodistro"), "resolve", "--repo", str(repo)]
        cli += ["--keyring", str(KEYS), "--arch", "x86_64", *WORLD]
        cli_times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            cli_times.append(time.perf_counter() - start)

    engine = statistics.median(engine_times)
    whole = statistics.median(cli_times)
    print(f"world: {' '.join(WORLD)}")
    print(f"packages: {packages} (apk-tools: {BASELINE_PACKAGES})")
    print(
        f"engine (index load + verify + solve): {engine:.3f} s   "
        f"apk-tools: {BASELINE_SECONDS:.3f} s   ratio: {engine / BASELINE_SECONDS:.2f}x"
    )
    print(
        f"whole CLI process (incl. Python start-up): {whole:.3f} s   "
        f"ratio: {whole / BASELINE_SECONDS:.2f}x"
    )
    return 0 if packages == BASELINE_PACKAGES else 1


if __name__ == "__main__":
    raise SystemExit(main())
