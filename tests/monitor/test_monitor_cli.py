"""``nanodistro monitor`` and ``nanodistro bump`` as a user runs them (subprocess, loopback upstream)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_monitor_bump import FIX_ONLY, FIXED_IN_2, make_project
from test_monitor_providers import PYPI_DOC
from upstream_server import Upstream


def run_cli(*args: str, base: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NANODISTRO_PYPI_URL": base, "NANODISTRO_NPM_URL": base}
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def write(path: Path, name: str, version: str, project: str) -> None:
    path.write_text(
        f"package:\n  name: {name}\n  version: {version}\n  epoch: 0\n"
        f"update:\n  enabled: true\n  pypi:\n    identifier: {project}\n"
    )


def test_monitor_exit_status_and_json(tmp_path: Path, upstream: Upstream) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    write(recipes / "current.yaml", "current", "2.1.0", "demo")
    cache = str(tmp_path / "cache")
    ok = run_cli("monitor", str(recipes), "--cache-dir", cache, base=upstream.base)
    assert ok.returncode == 0, ok.stderr
    assert "up-to-date" in ok.stdout

    write(recipes / "old.yaml", "old", "1.0.0", "demo")
    write(recipes / "gone.yaml", "gone", "1.0.0", "no-such-project")
    result = run_cli("monitor", str(recipes), "--json", "--cache-dir", cache, base=upstream.base)
    assert result.returncode == 10, result.stderr
    document = json.loads(result.stdout)
    by_name = {r["name"]: r for r in document["results"]}
    assert by_name["old"]["status"] == "update" and by_name["old"]["latest"] == "2.1.0"
    assert by_name["old"]["latest_published_at"].startswith("2024-05-06T07:08:09")
    assert by_name["gone"]["status"] == "error" and "404" in by_name["gone"]["message"]
    assert (document["updates"], document["errors"]) == (1, 1)

    (recipes / "old.yaml").unlink()
    (recipes / "current.yaml").unlink()
    errors = run_cli("monitor", str(recipes), "--cache-dir", cache, base=upstream.base)
    assert errors.returncode == 1
    assert "Traceback" not in errors.stderr


def test_bump_cli_dry_run_then_real(tmp_path: Path, upstream: Upstream) -> None:
    recipe = make_project(tmp_path, upstream, FIXED_IN_2, FIX_ONLY)
    before = recipe.read_text()
    args = ("--source-cache", str(tmp_path / "src"), "--cache-dir", str(tmp_path / "c"))
    dry = run_cli("bump", str(recipe), "--dry-run", *args, base=upstream.base)
    assert dry.returncode == 0, dry.stderr
    assert '+  version: "2.0.0" # keep me' in dry.stdout
    assert recipe.read_text() == before
    real = run_cli("bump", str(recipe), *args, base=upstream.base)
    assert real.returncode == 0, real.stderr
    assert "fix-answer.patch is in upstream 2.0.0: removed" in real.stdout
    assert "demo.yaml: 1.0.0-r4 -> 2.0.0-r0" in real.stdout
    again = run_cli("bump", str(recipe), *args, base=upstream.base)
    assert again.returncode == 1
    assert "already at the latest version 2.0.0" in again.stderr


def test_monitor_table_keeps_names_and_versions_whole_at_80_columns(
    tmp_path: Path, upstream: Upstream
) -> None:
    # captured output is an 80-column console: the note gives way, never the versions
    upstream.add("/pypi/demo/json", PYPI_DOC)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    write(recipes / "old.yaml", "a-rather-long-recipe-name", "1.0.0", "demo")
    (recipes / "off.yaml").write_text(
        "package:\n  name: off\n  version: 20240101\n  epoch: 0\n"
        "update:\n  enabled: false\n  exclude-reason: " + "a long reason " * 6 + "\n"
    )
    cache = str(tmp_path / "cache")
    result = run_cli("monitor", str(recipes), "--cache-dir", cache, base=upstream.base)
    assert result.returncode == 10, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    cells = [c.strip() for c in rows["a-rather-long-recipe-name"].split("│")]
    assert cells[2:4] == ["1.0.0", "2.1.0"] and cells[5] == "update"
    assert [c.strip() for c in rows["off"].split("│")][2] == "20240101"
