"""Image digests do not depend on how many threads compress the layers (formats/pgzip.py)."""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from image_testlib import Pkg, build_repo, make_key

from nanodistro.formats import pgzip
from nanodistro.formats.tarball import gunzip
from nanodistro.image.build import BuildRequest, BuildResult, build_image, write_result
from nanodistro.image.oci_layout import Layout
from nanodistro.imageconfig import load_config
from needs_tools import require_tools

CONFIG = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [big-app]
archs: [amd64, arm64]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("threadsworld")
    rng = random.Random(18)
    text = b"".join(rng.choice([b"alpha ", b"beta ", b"gamma "]) for _ in range(100_000))
    packages = [
        Pkg(
            "base",
            files={"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n", "etc/group": b"root:x:0:\n"},
        ),
        Pkg(
            "big-app",
            depends=["base"],
            files={"usr/lib/app/blob.bin": rng.randbytes(400_000), "usr/share/app/words": text},
        ),
    ]
    build_repo(root / "repo", packages, make_key(root / "keys"), archs=("x86_64", "aarch64"))
    (root / "img.yaml").write_text(CONFIG)
    return root


def _build(world: Path, threads: int, monkeypatch: pytest.MonkeyPatch) -> BuildResult:
    monkeypatch.setenv(pgzip.THREADS_ENV, str(threads))
    request = BuildRequest(loaded=load_config(world / "img.yaml"), source_date_epoch=0)
    return build_image(request)


def test_image_digests_identical_at_one_two_and_four_threads(
    world: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_tools("gzip")
    results = {n: _build(world, n, monkeypatch) for n in (1, 2, 4)}
    one = results[1]
    layer = one.images[0].layers[0]
    assert layer.tar_size > 4 * pgzip.BLOCK  # several blocks, so threads really split the work
    for threads, result in results.items():
        assert result.digest == one.digest, threads  # the image index
        # each arch's manifest digest, and the layer blobs it names
        assert [i.descriptor.digest for i in result.images] == [
            i.descriptor.digest for i in one.images
        ], threads
        assert [x.digest for i in result.images for x in i.layers] == [
            x.digest for i in one.images for x in i.layers
        ], threads
    # the layer is one valid gzip stream whose content is the diffID's tar
    write_result(one, tmp_path / "out")
    blob = Layout(tmp_path / "out").blob(layer.digest)
    (tmp_path / "layer.gz").write_bytes(blob)
    subprocess.run(["gzip", "-t", str(tmp_path / "layer.gz")], check=True)

    assert "sha256:" + hashlib.sha256(gunzip(blob, where="layer")).hexdigest() == layer.diff_id
