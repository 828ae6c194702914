"""Opt-in checks against the real PyPI and npm (``pytest -m live``); never run in CI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nanodistro.monitor.check import check_targets_async
from nanodistro.monitor.providers.base import Endpoints
from nanodistro.monitor.recipes import target_from_document

pytestmark = pytest.mark.live


def _check(update: dict[str, object]) -> tuple[str, str | None]:
    target = target_from_document(
        {"package": {"name": "x", "version": "0.0.1"}, "update": {"enabled": True, **update}}, None
    )
    (result,) = asyncio.run(check_targets_async([target], endpoints=Endpoints()))
    return result.status, result.latest


def test_real_pypi() -> None:
    status, latest = _check({"pypi": {"identifier": "packaging"}})
    assert status == "update" and latest is not None and int(latest.split(".")[0]) >= 24


def test_real_npm() -> None:
    status, latest = _check({"npm": {"identifier": "left-pad"}})
    assert (status, latest) == ("update", "1.3.0")


def test_monitor_cli_reports_the_registries_own_latest(tmp_path: Path) -> None:
    """`nanodistro monitor` as a user runs it, against what PyPI and npm themselves call latest."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name, kind, project in (("py3-httpx", "pypi", "httpx"), ("left-pad", "npm", "left-pad")):
        (recipes / f"{name}.yaml").write_text(
            f'package:\n  name: {name}\n  version: "0.0.1"\n  epoch: 0\n'
            f"update:\n  enabled: true\n  {kind}:\n    identifier: {project}\n"
        )
    cache = str(tmp_path / "cache")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nanodistro",
            "monitor",
            str(recipes),
            "--json",
            "--cache-dir",
            cache,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 10, result.stderr
    latest = {r["name"]: r["latest"] for r in json.loads(result.stdout)["results"]}
    pypi = httpx.get("https://pypi.org/pypi/httpx/json", timeout=30).json()["info"]["version"]
    npm = httpx.get("https://registry.npmjs.org/left-pad", timeout=30).json()["dist-tags"]
    assert latest == {"py3-httpx": pypi, "left-pad": npm["latest"]}
