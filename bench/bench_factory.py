"""Benchmark: the factory's scheduling overhead per job, and release -> stable image latency.

1. Overhead. A synthetic catalog of ``--recipes`` (default 1,000) trivial recipes, each needing
   one build. The cycle's build planning (factory/building.build_catalog: build order, rebuild
   triggers, job specs) runs with the real job machinery (JobStore on the SQLite state DB +
   LocalExecutor) and a no-op ``build`` handler, so no time goes to building. Baseline, actually
   run: the same handler called directly once per recipe. Overhead per job = (factory - baseline)
   / jobs; the job machinery alone (LocalExecutor.run of the same number of no-op jobs at once)
   is measured too.
2. Latency. A real catalog of ``--catalog`` trivial recipes (default 60; the first cycle builds
   them all in the bubblewrap sandbox, so 1,000 takes about an hour on 2 cores) and images of 10
   packages each; then ``--releases`` (default 50) upstream releases appear at once on a local
   server and one ``nanodistro factory run --once`` process detects, bumps, builds, publishes,
   rebuilds the images, smoke-tests, gates and promotes. From the event log
   (factory/freshness.py): release -> stable image p50/p95, against the build time the build
   events record (the aim: p50 dominated by build time).

    .venv/bin/python bench/bench_factory.py [--recipes 1000] [--catalog 60] [--releases 50]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nanodistro.factory.building import BuildPlan, build_catalog
from nanodistro.factory.jobs import JobSpec, JobStore, LocalExecutor
from nanodistro.factory.state import open_state, workspace_state_url
from nanodistro.factory.workspace import load_workspace

AIM_OVERHEAD_MS = 50.0  # the aim: scheduler overhead < 50 ms per job

RECIPE = """package:
  name: {name}
  version: "{version}"
  epoch: 0
  description: synthetic recipe {name}
  copyright:
    - license: MIT
environment:
  contents:
    packages: [{deps}]
pipeline:
  - runs: |
      mkdir -p ${{{{targets.destdir}}}}/usr/share/{name}
      echo {name}-${{{{package.version}}}} > ${{{{targets.destdir}}}}/usr/share/{name}/version
"""

UPDATE = """update:
  enabled: true
  http-regex:
    url: {base}/
    pattern: '{name}-([0-9.]+)\\.tar\\.gz'
"""

TOML = """[workspace]
name = "bench"
archs = ["x86_64"]

[keys]
name = "bench"

[toolchain]
root = "/usr"
provides = ["build-base"]
"""


def name_of(i: int) -> str:
    return f"syn{i:04d}"


def write_catalog(root: Path, count: int, base_url: str | None = None, images: int = 0) -> None:
    """``count`` recipes; every tenth depends on the one before it (a build order to compute);
    with ``base_url``, each monitors that listing; ``images`` configs of 10 packages each."""
    (root / "recipes").mkdir(parents=True)
    (root / "images").mkdir()
    for i in range(count):
        name = name_of(i)
        deps = ["build-base"] + ([name_of(i - 1)] if i % 10 == 9 else [])
        text = RECIPE.format(name=name, version="1.0", deps=", ".join(deps))
        if base_url:
            text += UPDATE.format(base=base_url, name=name)
        (root / "recipes" / f"{name}.yaml").write_text(text)
    for j in range(images):
        packages = ", ".join(name_of(i) for i in range(j * 10, min(count, j * 10 + 10)))
        (root / "images" / f"img{j}.yaml").write_text(f"contents:\n  packages: [{packages}]\n")
    (root / "nanodistro.toml").write_text(TOML)


def noop_build(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"status": "built", "published": [], "seconds": 0.0, "recipe": inputs["recipe"]}


def overhead(tmp: Path, count: int) -> None:
    root = tmp / "overhead"
    write_catalog(root, count)
    workspace = load_workspace(root)

    # baseline: the handler alone, once per recipe
    started = time.perf_counter()
    for i in range(count):
        noop_build({"recipe": name_of(i)})
    baseline = time.perf_counter() - started

    # the job machinery alone: as many no-op jobs at once
    with open_state(workspace_state_url(workspace)) as state:
        executor = LocalExecutor(JobStore(state), {"noop": noop_build})
        specs = [JobSpec("noop", {"recipe": name_of(i), "n": i}) for i in range(count)]
        started = time.perf_counter()
        jobs = executor.run(specs)
        machinery = time.perf_counter() - started
        assert all(j.state == "succeeded" for j in jobs)

    # the cycle's planning + a job per recipe, builds no-ops
    with open_state(workspace_state_url(workspace)) as state:
        executor = LocalExecutor(JobStore(state), {"build": noop_build})
        plan = BuildPlan(
            workspace=workspace,
            state=state,
            arch="x86_64",
            config=None,
            run_jobs=executor.run,
            git=False,
            say=lambda _m: None,
        )
        started = time.perf_counter()
        outcomes = build_catalog(plan)
        planned = time.perf_counter() - started
    built = [o for o in outcomes if o.status == "built"]
    assert len(built) == count, [o for o in outcomes if o.status != "built"][:3]

    per_job = (planned - baseline) / count * 1000
    print(f"catalog: {count} recipes, one build job each (no-op handler: no build time)")
    print(f"  baseline (handler called directly) {baseline * 1000:9.1f} ms total")
    print(f"  job machinery alone ({count} jobs)   {machinery * 1000:9.1f} ms total, "
          f"{(machinery - baseline) / count * 1000:.2f} ms/job")  # fmt: skip
    print(f"  cycle planning + jobs              {planned * 1000:9.1f} ms total, "
          f"{per_job:.2f} ms/job")  # fmt: skip
    print(f"  ratio factory/baseline: {planned / max(baseline, 1e-9):.0f}x")
    verdict = "meets" if per_job < AIM_OVERHEAD_MS else "MISSES"
    print(f"  aim: overhead < {AIM_OVERHEAD_MS:.0f} ms per job -> {verdict} ({per_job:.2f} ms)")


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def factory_run(root: Path) -> tuple[dict[str, Any], float]:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "nanodistro", "factory", "run", str(root), "--once", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    if not result.stdout.strip():
        raise SystemExit(f"factory run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(result.stdout)
    if report["status"] != "promoted":
        raise SystemExit(f"cycle ended {report['status']}: {json.dumps(report)[:3000]}")
    return report, seconds


def latency(tmp: Path, count: int, releases: int) -> None:
    served = tmp / "upstream"
    served.mkdir()
    root = tmp / "latency"
    images = max(1, min(releases, count) // 10)
    with serve(served) as base_url:
        write_catalog(root, count, base_url, images=images)
        for i in range(count):  # the current release of each, so the first cycle sees no update
            (served / f"{name_of(i)}-1.0.tar.gz").write_bytes(b"")
        first, first_seconds = factory_run(root)
        builds = [b for b in first["builds"] if b["status"] == "built"]
        print(f"first cycle: {len(builds)} recipes built, {images} images, "
              f"{first_seconds:.1f} s")  # fmt: skip

        for i in range(min(releases, count)):
            (served / f"{name_of(i)}-1.1.tar.gz").write_bytes(b"")
        report, seconds = factory_run(root)

    bumped = [b for b in report["bumps"] if b["status"] == "bumped"]
    built = [b for b in report["builds"] if b["status"] == "built"]
    build_seconds = sum(float(b["seconds"]) for b in built)
    from nanodistro.factory.freshness import freshness, percentile

    with open_state(workspace_state_url(load_workspace(root))) as state:
        # the released versions only (the first cycle's packages count from when first seen)
        fresh = [p for p in freshness(state).packages if p.version == "1.1-r0"]

    def stats(leads: list[float | None]) -> dict[str, float | None]:
        values = [v for v in leads if v is not None]
        return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}

    image_stats = stats([p.lead(p.image_promoted) for p in fresh])
    promoted = stats([p.lead(p.promoted) for p in fresh])
    print(f"{len(bumped)} upstream releases at once: one cycle of {seconds:.1f} s "
          f"({len(built)} builds, {len(report['changed_images'])} images promoted)")  # fmt: skip
    print(f"  build time recorded by the build jobs: {build_seconds:.1f} s "
          f"(mean {build_seconds / max(len(built), 1):.2f} s/build, run one at a time)")  # fmt: skip
    print(f"  rest of the cycle (monitor, bumps, planning, publish, snapshot, images, gates): "
          f"{seconds - build_seconds:.1f} s")  # fmt: skip

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    print(f"  release -> stable repository: p50 {fmt(promoted['p50'])}, "
          f"p95 {fmt(promoted['p95'])} (n={promoted['count']:.0f})")  # fmt: skip
    print(f"  release -> stable image:      p50 {fmt(image_stats['p50'])}, "
          f"p95 {fmt(image_stats['p95'])} (n={image_stats['count']:.0f})")  # fmt: skip
    if image_stats["p50"]:
        share = build_seconds / image_stats["p50"]
        print(f"  build time / p50: {share:.2f} (aim: p50 dominated by build time)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", type=int, default=1000, help="catalog size, overhead part")
    parser.add_argument("--catalog", type=int, default=60, help="catalog size, latency part")
    parser.add_argument("--releases", type=int, default=50, help="upstream releases at once")
    parser.add_argument("--skip-latency", action="store_true", help="only the overhead part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-factory-") as tmp_name:
        tmp = Path(tmp_name)
        overhead(tmp, args.recipes)
        if not args.skip_latency:
            if args.catalog < 1000:
                print(f"latency part: a catalog of {args.catalog} recipes, not 1,000 (its first "
                      "cycle builds every recipe for real; --catalog 1000 for the full size)")  # fmt: skip
            latency(tmp, args.catalog, args.releases)


if __name__ == "__main__":
    main()
