"""Source fetching against a hostile upstream: redirects onto plain http elsewhere are refused,
and archive extraction has a decompression budget (a small bomb fails before filling the disk)."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gzip_bomb import MIB, tar_header, write_gzip_bomb
from nanodistro.builder.sources import _http_download, extract_tarball
from nanodistro.errors import FetchError, FormatError
from nanodistro.formats.inflate import ARCHIVE_LIMIT, decompression_budget
from redirect_server import OUTSIDE, serve_redirects


@pytest.fixture
def redirector() -> Iterator[str]:
    targets = {"/away.tar.gz": OUTSIDE, "/near.tar.gz": "/real.tar.gz"}
    with serve_redirects(targets, b"source") as base:
        yield base


def test_source_redirect_to_plain_http_elsewhere_is_refused(redirector: str) -> None:
    out = io.BytesIO()
    with pytest.raises(
        FetchError, match=re.escape("refusing redirect to http://example.invalid/x")
    ):
        _http_download(f"{redirector}/away.tar.gz", out, timeout=5, attempts=1)
    assert out.getvalue() == b""


def test_source_redirect_within_loopback_still_works(redirector: str) -> None:
    out = io.BytesIO()
    _http_download(f"{redirector}/near.tar.gz", out, timeout=5, attempts=1)
    assert out.getvalue() == b"source"


def test_source_tarball_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """16 MB of tar.gz holding one 16 GiB file of zeros: the 8 GiB archive budget refuses it
    while the members are listed, so the disk never fills."""
    archive = tmp_path / "bomb.tar.gz"
    with archive.open("wb") as out:
        write_gzip_bomb(out, zeros=16 * 1024**3, prefix=tar_header("bomb-1.0/zeros", 16 * 1024**3))
    dest = tmp_path / "src"
    dest.mkdir()
    with pytest.raises(
        FormatError,
        match=re.escape(
            f"https://up/bomb.tar.gz: decompressed size exceeds the budget of {ARCHIVE_LIMIT} "
            "bytes (one archive)"
        ),
    ):
        extract_tarball(archive, dest, strip_components=1, where="https://up/bomb.tar.gz")
    assert list(dest.iterdir()) == []


def test_source_extraction_counts_against_the_command_budget(tmp_path: Path) -> None:
    archive = tmp_path / "src.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("demo-1.0/zeros")
        info.size = 4 * MIB
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    dest = tmp_path / "src"
    dest.mkdir()
    with (
        decompression_budget(total=2 * MIB),
        pytest.raises(FormatError, match="all decompression of this command"),
    ):
        extract_tarball(archive, dest, strip_components=1, where="src.tar.gz")
    extract_tarball(archive, dest, strip_components=1, where="src.tar.gz")  # default budget
    assert (dest / "zeros").stat().st_size == 4 * MIB
