"""What starting ``nanodistro`` costs, whole process, against ``python -c pass``.

For every command of the app (top-level commands and groups; ``--all`` adds each group's
subcommands) this times a fresh ``python -m nanodistro CMD --help``, plus trivial runs:
``--version`` and, when the example repository has been built (``make examples``), ``resolve``
of two packages from its index. CPU is the child's user+sys time from ``wait4`` (not the
parent's), wall is the elapsed time; both are medians over ``--runs`` repetitions. The ratio is
CPU against ``python -c pass`` with the same interpreter.

Python writes no bytecode cache when PYTHONDONTWRITEBYTECODE is set, and then recompiles every
nanodistro module in every process; users (and CI) run from the cache, so the children run
without that variable and each command line is run once before it is timed. ``--no-bytecode``
times the uncached case instead.

Run: .venv/bin/python bench/bench_startup.py [--runs N] [--all] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_REPO = ROOT / "examples" / "out" / "packages"
EXAMPLE_KEYS = ROOT / "examples" / "keys"


@dataclass
class Timing:
    cpu: float  # median user+sys seconds of the child
    wall: float  # median elapsed seconds
    status: int  # exit status of the last run


def _run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    start = time.perf_counter()
    child = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen from waiting again
    return usage.ru_utime + usage.ru_stime, wall, child.returncode


def measure(argv: list[str], env: dict[str, str], runs: int, warm: bool) -> Timing:
    if warm:
        _run_once(argv, env)  # fills the bytecode cache and the page cache
    samples = [_run_once(argv, env) for _ in range(runs)]
    return Timing(
        cpu=statistics.median(s[0] for s in samples),
        wall=statistics.median(s[1] for s in samples),
        status=samples[-1][2],
    )


def command_lines(include_subcommands: bool) -> list[list[str]]:
    """``[]`` (the root), each top-level command or group, and optionally each subcommand."""
    import typer.main

    from nanodistro.cli import COMMAND_MODULES, build_app

    top = [name for names in COMMAND_MODULES.values() for name in names]
    lines: list[list[str]] = [[]] + [[name] for name in top]
    if include_subcommands:
        root = typer.main.get_command(build_app())
        for name in top:
            group = getattr(root, "commands", {}).get(name)
            for sub in sorted(getattr(group, "commands", {})):
                lines.append([name, sub])
    return lines


def trivial_runs() -> list[tuple[str, list[str]]]:
    runs = [("--version", ["--version"])]
    index = EXAMPLE_REPO / "x86_64" / "APKINDEX.tar.gz"
    if index.is_file() and EXAMPLE_KEYS.is_dir():
        runs.append(
            (
                "resolve (example repo)",
                [
                    *("resolve", "busybox", "zlib-dev", "-r", str(EXAMPLE_REPO)),
                    *("-k", str(EXAMPLE_KEYS), "--arch", "x86_64"),
                ],
            )
        )
    else:
        print(f"(no {index.relative_to(ROOT)}: 'make examples' adds a resolve run)")
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="repetitions per command line")
    parser.add_argument("--all", action="store_true", help="also each group's subcommands")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="time with PYTHONDONTWRITEBYTECODE=1, no warm-up"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        # resolve remembers accepted indexes and caches parsed ones: keep both out of $HOME
        env["NANODISTRO_INDEX_STATE"] = str(Path(tmp) / "index-state.json")
        env["NANODISTRO_INDEX_CACHE"] = str(Path(tmp) / "index-cache")
        env["COLUMNS"] = "100"
        warm = not args.no_bytecode
        python = sys.executable

        base = measure([python, "-c", "pass"], env, args.runs, warm)
        rows: list[tuple[str, Timing]] = [("python -c pass", base)]
        for label, extra in trivial_runs():
            rows.append(
                (label, measure([python, "-m", "nanodistro", *extra], env, args.runs, warm))
            )
        for line in command_lines(args.all):
            label = " ".join([*line, "--help"])
            rows.append((label, measure([python, "-m", "nanodistro", *line, "--help"], env,
                                        args.runs, warm)))  # fmt: skip

    cache = "no bytecode cache" if args.no_bytecode else "bytecode cached"
    print(f"\nnanodistro start-up: median of {args.runs} runs, whole process, {cache}")
    print(f"{'command line':<34} {'CPU s':>7} {'wall s':>7} {'CPU x pass':>10}  exit")
    for label, timing in rows:
        ratio = timing.cpu / base.cpu if base.cpu > 0 else float("inf")
        print(f"{label:<34} {timing.cpu:7.3f} {timing.wall:7.3f} {ratio:10.1f}  {timing.status}")
    helps = [t.cpu for label, t in rows if label.endswith("--help")]
    print(f"\n--help: median {statistics.median(helps):.3f} s CPU, max {max(helps):.3f} s")
    failed = [label for label, t in rows if t.status != 0]
    if failed:
        print("non-zero exit: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
