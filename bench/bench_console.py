"""Benchmark: console pages and API reads of ``nanodistro serve`` over a 1,000-recipe catalog.

A synthetic workspace (tests/web/synthetic_catalog.py: ``--recipes`` recipes with two versions
each, 50 images of 20 packages rebuilt over 8 repository versions, ~11 events per recipe, jobs,
runs) is written, ``nanodistro serve --no-loop`` is started on it (a subprocess on 127.0.0.1, as
a user runs it), and each page and key API read is timed as a whole HTTP request: a new
connection each time, from the first byte sent to the last byte of the body read, ``--requests``
times after one warm-up. The aim (issue 14): every page in < 200 ms (p95).

Baseline, actually run: the same number of bytes as each answer, in a static file served by
``python -m http.server`` and fetched the same way; the ratio page/static is our overhead over
sending the bytes at all.

    .venv/bin/python bench/bench_console.py [--recipes 1000] [--requests 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "web")]

from serve_process import free_port, serve  # noqa: E402
from synthetic_catalog import Synthetic, generate  # noqa: E402

AIM_MS = 200.0  # the aim: pages render in < 200 ms with 1,000 recipes


@dataclass
class Timing:
    url: str
    status: int
    size: int
    times: list[float]  # seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.times)
        return ordered[max(1, math.ceil(0.95 * len(ordered))) - 1] * 1000


def targets(catalog: Synthetic) -> tuple[list[str], list[str]]:
    """(pages, API reads) worth timing: lists, and details of a package and an image in the
    middle of the catalog (with history on both sides)."""
    recipe = catalog.recipes[len(catalog.recipes) // 2]
    image = catalog.images[len(catalog.images) // 2]
    builds = catalog.image_builds[image]
    first, last = builds[0][1], builds[-1][1]
    pages = [
        "/",
        f"/packages/{recipe}",
        "/images",
        f"/images/{image}",
        f"/images/{image}?from={first}&to={last}",
        "/events",
        "/runs",
        "/runs/1",
        "/freshness",
    ]
    api = [
        "/api/catalog",
        f"/api/packages/{recipe}",
        "/api/images",
        f"/api/images/{image}",
        f"/api/images/{image}/diff?from={first}&to={last}",
        "/api/events?limit=200",
        "/api/runs",
        "/api/jobs",
        "/api/freshness",
    ]
    return pages, api


def time_url(base_url: str, path: str, requests: int) -> Timing:
    """``requests`` GETs of ``path``, each on a new connection, after one warm-up."""
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base_url, limits=limits, timeout=60) as client:
        answer = client.get(path)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            body = response.content
            times.append(time.perf_counter() - started)
        return Timing(path, answer.status_code, len(body), times)


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """``python -m http.server`` on 127.0.0.1 serving ``directory``."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("python -m http.server did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def baseline(timings: list[Timing], requests: int, scratch: Path) -> dict[str, Timing]:
    """A static file of each answer's size, fetched the same way."""
    folder = scratch / "static"
    folder.mkdir(exist_ok=True)
    for timing in timings:
        (folder / f"{timing.size}.bin").write_bytes(b"x" * timing.size)
    with static_server(folder) as base:
        return {
            t.url: time_url(base, f"/{t.size}.bin", requests) for t in timings if t.status == 200
        }


def report(title: str, timings: list[Timing], static: dict[str, Timing], aim: bool) -> bool:
    print(f"\n{title}")
    print(
        f"  {'path':58} {'status':>6} {'bytes':>9} {'median':>9} {'p95':>9} "
        f"{'static':>8} {'ratio':>6}" + ("  aim" if aim else "")
    )
    met = True
    for t in timings:
        base = static.get(t.url)
        base_ms = f"{base.median_ms:7.1f}" if base else "      -"
        ratio = f"{t.median_ms / base.median_ms:5.1f}x" if base and base.median_ms else "    -"
        verdict = ""
        if aim:
            ok = t.status == 200 and t.p95_ms < AIM_MS
            met = met and ok
            verdict = "  ok" if ok else ("  MISSES" if t.status == 200 else f"  HTTP {t.status}")
        shown = t.url if len(t.url) <= 58 else t.url[:55] + "..."
        print(
            f"  {shown:58} {t.status:>6} {t.size:>9} {t.median_ms:7.1f}ms {t.p95_ms:7.1f}ms "
            f"{base_ms}ms {ratio}{verdict}"
        )
    return met


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", type=int, default=1000, help="catalog size")
    parser.add_argument("--images", type=int, default=50, help="images (20 packages each)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per URL")
    parser.add_argument("--keep", type=Path, help="write the workspace here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-console-") as scratch_name:
        scratch = Path(scratch_name)
        root = args.keep or scratch / "ws"
        started = time.perf_counter()
        catalog = generate(root, recipes=args.recipes, images=args.images)
        print(
            f"synthetic workspace: {len(catalog.recipes)} recipes, {len(catalog.images)} images, "
            f"{catalog.repo_versions} repository versions, rows {catalog.rows} "
            f"({time.perf_counter() - started:.1f} s)"
        )
        pages, api = targets(catalog)
        with serve(root, "--no-loop") as base_url:
            page_times = [time_url(base_url, p, args.requests) for p in pages]
            api_times = [time_url(base_url, p, args.requests) for p in api]
        static = baseline(page_times + api_times, args.requests, scratch)
        print(
            f"\n{args.requests} requests per URL, each on a new connection, after one warm-up; "
            f"static = the same bytes from python -m http.server"
        )
        pages_met = report("pages (aim: p95 < 200 ms)", page_times, static, aim=True)
        report("API reads", api_times, static, aim=False)
        verdict = "meets" if pages_met else "MISSES"
        print(f"\n  aim: every page < {AIM_MS:.0f} ms (p95) -> {verdict}")
        return 0 if pages_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
