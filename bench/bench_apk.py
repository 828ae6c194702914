"""Benchmark: read_apk (+ verify_apk) on every fixture package against a stdlib floor.

The floor does the unavoidable work with the standard library only: inflate the concatenated
gzip members and read every tar member's content with ``tarfile``. Our reader additionally
splits members (for the signed ranges), checks every header strictly, parses ``.PKGINFO`` and
hashes the segments; the second row also verifies RSA signatures, datahash and per-file SHA-1s.

    .venv/bin/python bench/bench_apk.py [-n N]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from nanodistro.errors import NanodistroError
from nanodistro.formats.apk import read_apk, verify_apk

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared/fixtures/third_party"


def floor(data: bytes) -> int:
    count = 0
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
        for member in archive:
            if member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    handle.read()
            count += 1
    return count


def ours(data: bytes) -> int:
    return len(read_apk(data, where="bench").entries)


def ours_verified(keyring: dict[str, bytes]) -> Callable[[bytes], int]:
    def run(data: bytes) -> int:
        pkg = read_apk(data, where="bench")
        # unsigned and doctored fixtures still pay for the checks they reach
        with contextlib.suppress(NanodistroError):
            verify_apk(pkg, keyring)
        return len(pkg.entries)

    return run


def timed(function: Callable[[bytes], int], packages: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for data in packages:
            function(data)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5, help="rounds (best time is reported)")
    args = parser.parse_args()
    packages = []
    for path in sorted(FIXTURES.rglob("*.apk")):
        data = path.read_bytes()
        try:
            read_apk(data, where=str(path))
        except NanodistroError:
            continue  # not a package (plain tarballs named .apk)
        packages.append(data)
    keyring = {p.name: p.read_bytes() for p in FIXTURES.rglob("*.rsa.pub")}
    size = sum(len(p) for p in packages)
    base = timed(floor, packages, args.n)
    print(f"{len(packages)} packages, {size / 1e6:.1f} MB compressed, best of {args.n}")
    print(f"{'stdlib floor (gzip+tarfile)':34} {base * 1000:8.1f} ms")
    for label, function in (
        ("read_apk", ours),
        ("read_apk + verify_apk", ours_verified(keyring)),
    ):
        took = timed(function, packages, args.n)
        print(f"{label:34} {took * 1000:8.1f} ms   ratio {took / base:5.2f}x")


if __name__ == "__main__":
    main()
