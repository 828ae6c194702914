"""Opt-in checks against the real PyPI and npm (``pytest -m live``); never run in CI."""

from __future__ import annotations

import asyncio

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
