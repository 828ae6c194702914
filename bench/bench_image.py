"""Benchmark: assemble an image of 32 packages from a warm (local) package repository.

Side by side with
  * the floor: ``tar -c`` + ``gzip`` (CLI) of the same root filesystem, already on disk, at the
    gzip level our layers use (``GZIP_LEVEL``), so both sides do the same compression work;
  * umoci: ``umoci repack`` of the same rootfs into a layer (init/new/unpack done beforehand);
    umoci compresses with klauspost/pgzip's default level, a fast matcher, so its layer is
    compared by size too.

Our time covers more than the baselines' (resolve, verify and inflate the packages, SBOMs, write
the layout); theirs starts from an extracted rootfs. Ours runs in a warm Python process (as in a
factory worker) while the baselines pay their process start (umoci ~3 ms), so a last row also
times a cold ``python -c`` build (interpreter start and imports included, ~0.17 s more). Runs are
interleaved so background load hits all alike; the best of each is reported with the layer sizes
each produced.

Run: ``.venv/bin/python bench/bench_image.py`` (needs umoci for the second baseline).
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nanodistro.formats.apk import read_apk, write_apk
from nanodistro.formats.apkindex import write_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.formats.tarball import TarEntry, sort_key
from nanodistro.image.build import BuildRequest, build_image, write_result
from nanodistro.image.layers import GZIP_LEVEL
from nanodistro.imageconfig import load_config

PACKAGES = 32
FILES_PER_PACKAGE = 6
BUILD_DATE = 1_700_000_000
RUNS = 5


def _content(rng: random.Random, size: int) -> bytes:
    # half random (incompressible, like binaries), half text (like scripts and data files)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]
    text = b" ".join(rng.choice(words) for _ in range(size // 12))
    return rng.randbytes(size // 2) + text[: size - size // 2]


def make_repo(root: Path) -> Path:
    rng = random.Random(7)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key = SigningKey(pem, "bench.rsa.pub")
    (root / "keys").mkdir(parents=True)
    (root / "keys" / key.keyname).write_bytes(key.public_pem())
    arch_dir = root / "repo" / "x86_64"
    arch_dir.mkdir(parents=True)
    infos = []
    for index in range(PACKAGES):
        name = f"pkg{index:02d}"
        entries = [
            TarEntry("usr", "dir", mode=0o755, mtime=BUILD_DATE),
            TarEntry(f"usr/lib/{name}", "dir", mode=0o755, mtime=BUILD_DATE),
            TarEntry("usr/lib", "dir", mode=0o755, mtime=BUILD_DATE),
        ]
        for file_index in range(FILES_PER_PACKAGE):
            entries.append(
                TarEntry(
                    f"usr/lib/{name}/file{file_index}.bin",
                    "file",
                    mode=0o644,
                    mtime=BUILD_DATE,
                    data=_content(rng, rng.randint(30_000, 90_000)),
                )
            )
        depends = [f"pkg{index - 1:02d}"] if index else []
        info = PackageInfo(
            name=name, version="1.0-r0", arch="x86_64", license="MIT", depends=depends
        )
        data = write_apk(info, sorted(entries, key=sort_key), key=key, source_date_epoch=BUILD_DATE)
        (arch_dir / f"{name}-1.0-r0.apk").write_bytes(data)
        infos.append(read_apk(data, where=name).info)
    (arch_dir / "APKINDEX.tar.gz").write_bytes(write_index(infos, key=key))
    (root / "img.yaml").write_text(
        "contents:\n"
        "  keyring: [./keys/bench.rsa.pub]\n"
        "  repositories: [./repo]\n"
        f"  packages: [pkg{PACKAGES - 1:02d}]\n"
        "archs: [amd64]\n"
    )
    return root / "img.yaml"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(config: Path, out: Path) -> tuple[float, float, str, int]:
    """Wall and CPU seconds (all threads), image digest, layer size."""
    start, cpu = time.perf_counter(), time.process_time()
    result = build_image(BuildRequest(loaded=load_config(config), source_date_epoch=0))
    write_result(result, out)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, result.digest, sum(layer.size for layer in result.images[0].layers)


COLD = """
import sys
from pathlib import Path
from nanodistro.image.build import BuildRequest, build_image, write_result
from nanodistro.imageconfig import load_config
result = build_image(BuildRequest(loaded=load_config(Path(sys.argv[1])), source_date_epoch=0))
write_result(result, Path(sys.argv[2]))
"""


def ours_cold(config: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter that imports nanodistro and builds."""
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run([sys.executable, "-c", COLD, str(config), str(out)], check=True)
    return time.perf_counter() - start, children_cpu() - cpu


def extract_rootfs(layout: Path, dest: Path) -> None:
    from nanodistro.image.oci_layout import Layout

    image = Layout(layout).images()[0]
    dest.mkdir(parents=True)
    blob = Layout(layout).blob(image.manifest.layers[0].digest)
    subprocess.run(["tar", "-xzf", "-", "-C", str(dest), "--exclude=dev/*"], input=blob, check=True)


def floor(rootfs: Path, out: Path) -> tuple[float, float]:
    start, cpu = time.perf_counter(), children_cpu()
    with open(out, "wb") as handle:
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--sort=name", "-cf", "-", "."], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["gzip", f"-{GZIP_LEVEL}", "-n"], stdin=tar.stdout, stdout=handle, check=True
        )
        tar.wait()
    return time.perf_counter() - start, children_cpu() - cpu


def umoci_repack(rootfs: Path, work: Path) -> tuple[float, float, int] | None:
    """Wall and CPU seconds of ``umoci repack`` and the size of the layer blob it wrote."""
    if not shutil.which("umoci"):
        return None
    layout = work / "layout"
    bundle = work / "bundle"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True, capture_output=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True, capture_output=True)
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:t", str(bundle)], check=True, capture_output=True
    )
    shutil.rmtree(bundle / "rootfs")
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    before = set((layout / "blobs/sha256").iterdir())
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(
        ["umoci", "repack", "--image", f"{layout}:t", str(bundle)], check=True, capture_output=True
    )
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    added = set((layout / "blobs/sha256").iterdir()) - before
    return seconds, cpu, max(p.stat().st_size for p in added)  # the layer; the rest is JSON


def _row(label: str, wall: list[float], cpu: list[float], size: int, note: str = "") -> None:
    print(
        f"{label:<58} {min(wall):6.3f} s  cpu {min(cpu):6.3f} s  layer {size / 1e6:5.2f} MB{note}"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        work = Path(tmp)
        config = make_repo(work / "world")
        size = sum(p.stat().st_size for p in (work / "world/repo/x86_64").glob("*.apk"))
        print(f"{PACKAGES} packages, {size / 1e6:.1f} MB of .apk files, {os.cpu_count()} CPUs")
        ours(config, work / "warmup")
        extract_rootfs(work / "warmup", work / "rootfs")
        times: dict[str, tuple[list[float], list[float]]] = {
            name: ([], []) for name in ("ours", "floor", "umoci", "cold")
        }
        digests = set()
        ours_size = floor_size = umoci_size = 0
        for run in range(RUNS):
            seconds, cpu, digest, ours_size = ours(config, work / f"out{run}")
            times["ours"][0].append(seconds)
            times["ours"][1].append(cpu)
            digests.add(digest)
            seconds, cpu = floor(work / "rootfs", work / f"floor{run}.tar.gz")
            times["floor"][0].append(seconds)
            times["floor"][1].append(cpu)
            floor_size = (work / f"floor{run}.tar.gz").stat().st_size
            seconds, cpu = ours_cold(config, work / f"cold{run}")
            times["cold"][0].append(seconds)
            times["cold"][1].append(cpu)
            umoci = umoci_repack(work / "rootfs", work / f"umoci{run}")
            if umoci is not None:
                times["umoci"][0].append(umoci[0])
                times["umoci"][1].append(umoci[1])
                umoci_size = umoci[2]
        print(f"reproducible across runs: {len(digests) == 1}")
        print(f"best of {RUNS} interleaved runs (wall, and CPU of all threads/processes):")
        _row(
            "nanodistro image build (resolve+verify+install+layer+write)",
            *times["ours"],
            ours_size,
            f"  (gzip -{GZIP_LEVEL})",
        )
        _row(f"floor: tar | gzip -{GZIP_LEVEL} of the same rootfs", *times["floor"], floor_size)
        ours_best = min(times["ours"][0])
        print(f"ratio ours/floor: {ours_best / min(times['floor'][0]):.2f}x")
        if times["umoci"][0]:
            _row(
                "umoci repack of the same rootfs",
                *times["umoci"],
                umoci_size,
                "  (pgzip default level)",
            )
            print(f"ratio ours/umoci: {ours_best / min(times['umoci'][0]):.2f}x")
        else:
            print("umoci not installed: no umoci baseline")
        _row("nanodistro, cold process (python start + imports + build)", *times["cold"], ours_size)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
