"""Opt-in checks against Debian's real archive (``pytest -m live``); never run in CI.

The example recipes fetch from Debian's pool and follow ``unstable``: the monitor must report the
archive's versions for each, with a pool URL, and a bump must land on the orig tarball the signed
index names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def nanodistro(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_monitor_examples_reports_the_archive_versions(tmp_path: Path) -> None:
    run = nanodistro("monitor", str(EXAMPLES), "--json", "--cache-dir", str(tmp_path / "c"))
    assert run.returncode in (0, 10), run.stderr
    results = {r["name"]: r for r in json.loads(run.stdout)["results"]}
    monitored = {"busybox", "ca-certificates-bundle", "lua5.4", "musl", "zlib"}
    assert monitored <= set(results)
    for name in monitored:
        result = results[name]
        assert result["kind"] == "debian", result
        assert result["status"] in ("update", "up-to-date"), result
        assert re.fullmatch(r"[0-9][0-9.]*", result["latest"]), result
        assert "/pool/main/" in result["latest_url"], result
    assert results["nanodistro-baselayout"]["status"] == "disabled"
    # unstable has had zlib 1.3.x (as 1.3.dfsg+really1.3.1 and later) since 2024
    assert tuple(int(p) for p in results["zlib"]["latest"].split(".")[:2]) >= (1, 3)


def test_bump_zlib_to_the_archive_orig_tarball(tmp_path: Path) -> None:
    recipe = tmp_path / "zlib.yaml"
    shutil.copy(EXAMPLES / "recipes" / "zlib.yaml", recipe)
    run = nanodistro(
        "bump",
        str(recipe),
        "--json",
        "--cache-dir",
        str(tmp_path / "c"),
        "--source-cache",
        str(tmp_path / "s"),
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["new_version"] != "1.2.13"
    text = recipe.read_text()
    uri = re.search(r"uri: (\S+)", text)
    assert uri is not None and uri[1].startswith("mirror://debian/pool/main/z/zlib/zlib_")
    assert "${{package.version}}" in uri[1]
    sha = re.search(r"expected-sha256: ([0-9a-f]{64})", text)
    assert (
        sha is not None
        and sha[1] != "71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1"
    )
