"""``nanodistro resolve`` against the real apk-tools, side by side, whole process.

Both resolve the same world from the same signed Alpine 3.16 index (4,929 packages):

  apk2        ``apk add --simulate`` (apk-tools 2.14, ``.tools/bin/apk2``, ``make apk-tools``)
              in a temporary ``--root`` holding the Alpine keys, so it verifies the signature too;
  cold        ``nanodistro resolve`` with an empty parsed-index cache (first read of the index);
  warm        ``nanodistro resolve`` again, the cache filled by an earlier run.

Two worlds: the 86-package one of issue 18 and a 337-package one (the first plus a desktop and
server stack). The package counts of both tools are printed and must agree, as must the
"(i/N) Installing" lines. Each run is a fresh process; CPU is the child's user+sys time and
memory its peak RSS (``wait4``), medians over ``--runs``. The ratio is nanodistro / apk2.

Peak RSS from ``wait4`` is at least the resident size of the process that forked the child
(Linux carries it across exec), so a bare interpreter launches each child (``LAUNCHER``); the
floor this leaves (``/bin/true``) is printed.

Run: .venv/bin/python bench/bench_resolve.py [--runs N]   (exit 1 if the outputs differ)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIRD_PARTY = ROOT.parent / "shared" / "fixtures" / "third_party"
INDEX = THIRD_PARTY / "chainguard-dev+apko/pkg/apk/apk/testdata/alpine-316/APKINDEX.tar.gz"
KEYS = THIRD_PARTY / "alpinelinux+alpine-chroot-install/alpine-keys"
APK2 = ROOT / ".tools" / "bin" / "apk2"
NANODISTRO = Path(sys.executable).parent / "nanodistro"
ARCH = "x86_64"

WORLD_86 = [
    *("alpine-base", "python3", "gcc", "g++", "make", "cmake", "perl", "git"),
    *("openssh-client", "clang", "llvm", "postgresql", "nginx"),
]
WORLD_337 = [
    *WORLD_86,
    *("samba", "gvim", "mesa-dev", "ruby", "nodejs-dev", "py3-samba", "gtk+2.0", "gtk+3.0"),
    *("ghostscript", "graphviz", "gst-plugins-base", "postfix", "dovecot", "bind"),
    *("gtk+3.0-dev", "gst-plugins-base-dev", "samba-dev", "postgresql-dev", "jq"),
]


@dataclass
class Run:
    cpu: float  # user + sys seconds of the child
    rss_kib: int  # peak resident set of the child
    stdout: str


#: Runs argv[2:] as its child and writes "cpu_seconds peak_rss_kib" to the file argv[1]. A
#: bare interpreter (-I -S) is small, so the child's ru_maxrss (which starts at the resident
#: size of the process that forked it, Linux carries it across exec) is the child's own.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(argv: list[str], env: dict[str, str] | None = None) -> Run:
    with tempfile.NamedTemporaryFile("r") as report:
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, report.name]
        proc = subprocess.run(launcher + argv, capture_output=True, env=env, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:3])} ... exited {proc.returncode}:\n{proc.stderr}")
        cpu, rss = report.read().split()
    return Run(float(cpu), int(rss), proc.stdout)


def installing_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if " Installing " in line]


def summary(runs: list[Run]) -> tuple[float, float]:
    return statistics.median(r.cpu for r in runs), statistics.median(r.rss_kib for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per measurement (median)")
    args = parser.parse_args()
    if not os.access(APK2, os.X_OK):
        print(f"{APK2} is not built (run `make apk-tools`)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-resolve-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        (repo / ARCH).mkdir(parents=True)
        shutil.copy(INDEX, repo / ARCH / "APKINDEX.tar.gz")
        apk_root = work / "apk-root"
        (apk_root / "etc" / "apk" / "keys").mkdir(parents=True)
        for key in KEYS.glob("*.pub"):
            shutil.copy(key, apk_root / "etc" / "apk" / "keys" / key.name)
        subprocess.run(
            [str(APK2), "--root", str(apk_root), "--initdb", "--arch", ARCH, "--quiet", "add"],
            check=True,
            capture_output=True,
        )
        cache_home = work / "cache"
        env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
        env.pop("NANODISTRO_INDEX_CACHE", None)
        apk_cmd = [str(APK2), "--root", str(apk_root), "--arch", ARCH, "-X", str(repo)]
        apk_cmd += ["--no-cache", "--simulate", "add"]
        nd_cmd = [str(NANODISTRO), "resolve", "--repo", str(repo), "--keyring", str(KEYS)]
        nd_cmd += ["--arch", ARCH]

        floor = summary([measured(["/bin/true"]) for _ in range(3)])[1]
        print(f"apk-tools: {APK2} (2.14); index: {INDEX.name} of Alpine 3.16, runs: {args.runs}")
        print(f"peak-RSS floor of a measured child (/bin/true): {floor / 1024:.1f} MiB")
        failed = False
        for label, world in (("86", WORLD_86), ("337", WORLD_337)):
            apk_runs = [measured(apk_cmd + world) for _ in range(args.runs)]
            cold_runs = []
            for _ in range(args.runs):
                shutil.rmtree(cache_home, ignore_errors=True)
                cold_runs.append(measured(nd_cmd + world, env))
            warm_runs = [measured(nd_cmd + world, env) for _ in range(args.runs)]

            expected = installing_lines(apk_runs[0].stdout)
            print(f"\nworld {label}: {' '.join(world)}")
            print(f"  resolved packages: apk2 {len(expected)}, nanodistro "
                  f"{len(installing_lines(warm_runs[0].stdout))}")  # fmt: skip
            for name, runs in (("cold", cold_runs), ("warm", warm_runs)):
                if any(installing_lines(r.stdout) != expected for r in runs):
                    print(f"  MISMATCH: nanodistro ({name}) output differs from apk2")
                    failed = True
            apk_cpu, apk_rss = summary(apk_runs)
            print(f"  {'':14}{'CPU s (median)':>16}{'ratio':>8}{'peak MiB':>11}{'ratio':>8}")
            for name, runs in (("apk2", apk_runs), ("nd cold", cold_runs), ("nd warm", warm_runs)):
                cpu, rss = summary(runs)
                print(f"  {name:14}{cpu:16.3f}{cpu / apk_cpu:7.2f}x{rss / 1024:11.1f}"
                      f"{rss / apk_rss:7.2f}x")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
