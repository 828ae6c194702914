"""Benchmark: read_index on Alpine 3.17's APKINDEX.tar.gz (5,004 packages) against a stdlib floor.

The floor does the unavoidable work with the standard library only: inflate the gzip members,
extract APKINDEX with tarfile, split the text into records and lines. Our reader additionally
checks the tar strictly, decodes every field into PackageInfo and (second row) verifies the
RSA signature. Target: at most 3x the floor.

    .venv/bin/python bench/bench_apkindex.py [PATH/TO/APKINDEX.tar.gz] [-n N]
"""

from __future__ import annotations

import argparse
import io
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from nanodistro.formats.apkindex import read_index

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared/fixtures/third_party"
DEFAULT = FIXTURES / "chainguard-dev+apko/pkg/apk/apk/testdata/alpine-317/APKINDEX.tar.gz"


def floor(data: bytes) -> int:
    members = []
    while data:
        decomp = zlib.decompressobj(31)
        members.append(decomp.decompress(data))
        data = decomp.unused_data
    with tarfile.open(fileobj=io.BytesIO(members[-1])) as tar:
        handle = tar.extractfile("APKINDEX")
        assert handle is not None
        text = handle.read().decode()
    records = [record.split("\n") for record in text.split("\n\n") if record]
    return len(records)


def best_of(n: int, *fns: Callable[[], object]) -> list[float]:
    """Best time of each function; runs are interleaved so background load hits all alike."""
    best = [float("inf")] * len(fns)
    for _ in range(n):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("-n", type=int, default=20, help="repetitions (best time is reported)")
    parser.add_argument("--keys", type=Path, default=None, help="directory of *.rsa.pub keys")
    args = parser.parse_args()
    data = args.path.read_bytes()
    key_dirs = [args.keys] if args.keys else [FIXTURES]
    keyring = {
        p.name: p.read_bytes()
        for d in key_dirs
        for p in d.rglob("*.rsa.pub")
        if not p.name.startswith(".SIGN.")
    }
    where = str(args.path)
    count = len(read_index(data, where=where, keyring=None).packages)
    assert floor(data) == count, "floor and reader disagree on the record count"

    base, plain, signed = best_of(
        args.n,
        lambda: floor(data),
        lambda: read_index(data, where=where, keyring=None),
        lambda: read_index(data, where=where, keyring=keyring),
    )
    print(f"{args.path.name}: {count} packages, {len(data)} bytes, best of {args.n}")
    print(f"  floor (zlib + tarfile + split)   {base * 1000:8.2f} ms")
    print(f"  read_index, no verification      {plain * 1000:8.2f} ms   ratio {plain / base:.2f}x")
    print(
        f"  read_index, signature verified   {signed * 1000:8.2f} ms   ratio {signed / base:.2f}x"
    )


if __name__ == "__main__":
    main()
