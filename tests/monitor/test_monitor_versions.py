"""Choosing "latest": the filter chain and the version orderings (APK, PEP 440, semver, calver)."""

from __future__ import annotations

from typing import Any

import pytest

from nanodistro.monitor.models import Candidate, UpstreamRelease
from nanodistro.monitor.versions import (
    choose,
    looks_prerelease,
    pick_scheme,
    prepare_version,
)
from nanodistro.recipe.update import UpdateConfig


def latest(versions: list[str], current: str = "0", **kw: Any) -> str | None:
    candidates = [Candidate(v, UpstreamRelease(v)) for v in versions]
    best, _, _ = choose(candidates, current, **kw)
    return best.version if best else None


@pytest.mark.parametrize(
    ("versions", "expected", "scheme"),
    [
        (["1.9", "1.10", "1.2.99"], "1.10", "numeric"),
        (["2023.12.31", "2024.01.15", "2024.1.2"], "2024.01.15", "numeric"),  # calendar
        (["24.04", "23.10", "24.10"], "24.10", "numeric"),
        (["1.9_p1", "1.9", "1.10_rc1"], "1.10_rc1", "apk"),
        (["1.1.1w", "1.1.1v", "1.1.1"], "1.1.1w", "apk"),  # openssl letters
        (["1.0", "1.0.post1", "0.9"], "1.0.post1", "pep440"),
        # PEP 440 normalises semver pre-releases (1.0.0-rc.1 == 1.0.0rc1): same order.
        (["1.0.0", "1.0.0-rc.1", "0.9.9"], "1.0.0", "pep440"),
        (["1.0.0-beta.2", "1.0.0-beta.10", "1.0.0-alpha"], "1.0.0-beta.10", "pep440"),
        (["1.0.0-x.7", "1.0.0-x.10", "0.1.0"], "1.0.0-x.10", "semver"),
    ],
)
def test_orderings(versions: list[str], expected: str, scheme: str) -> None:
    assert latest(versions) == expected
    assert pick_scheme(versions) == scheme


def test_require_sequential_takes_the_next_version() -> None:
    candidates = [Candidate(v, UpstreamRelease(v)) for v in ["1.1", "1.3", "1.2", "1.0"]]
    best, upgrade, same = choose(candidates, "1.1", sequential=True)
    assert (best and best.version, upgrade and upgrade.version, same and same.version) == (
        "1.3",
        "1.2",
        "1.1",
    )
    _, nothing, _ = choose(candidates, "1.3")
    assert nothing is None


def test_prerelease_detection() -> None:
    for version in ("1.0rc1", "2.0-beta", "3.0.0-alpha.1", "1.0.dev3", "2.0a1", "1.2-pre"):
        assert looks_prerelease(version), version
    for version in ("1.0", "2024.01.15", "1.1.1w", "3.0.0+build.5"):
        assert not looks_prerelease(version), version


def test_filter_chain_order_and_transforms() -> None:
    update = UpdateConfig.model_validate(
        {
            "github": {"identifier": "a/b", "strip-prefix": "curl-", "tag-filter-prefix": "curl-"},
            "version-separator": "_",
            "ignore-regex-patterns": ["^7_"],
            "version-transform": [
                {"match": r"^(\d+)\.(\d+)\.(\d+)$", "replace": "${1}.${2}$$${3}"}
            ],
        }
    )
    block = update.github
    assert prepare_version("curl-8_11_1", update, block) == "8.11$1"
    assert prepare_version("curl-7_99_0", update, block) is None  # ignored before separator
    assert prepare_version("tiny-curl-8_0_0", update, block) is None
    assert prepare_version("curl-8_12_0_rc1", update, block) is None  # pre-release
    allow = update.model_copy(update={"enable_prerelease_tags": True})
    assert prepare_version("curl-8_12_0_rc1", allow, block) == "8.12.0.rc1"


def test_transform_templates_follow_go() -> None:
    # Go's Regexp.Expand: a missing group and `$1x` (= `${1x}`) expand to nothing, not an error.
    update = UpdateConfig.model_validate(
        {
            "github": {"identifier": "a/b"},
            "version-transform": [
                {"match": r"^v(\d+)\.(\d+)$", "replace": "${1}.${2}${3}"},
                {"match": r"^(\d+)\.", "replace": "$1x${1}-"},
            ],
        }
    )
    assert prepare_version("v2.5", update, update.github) == "2-5"


def test_release_monitor_filters() -> None:
    update = UpdateConfig.model_validate(
        {
            "release-monitor": {
                "identifier": "38",
                "version-filter-contains": "3.",
                "strip-suffix": "-final",
            }
        }
    )
    assert update.release_monitor is not None and update.release_monitor.identifier == 38
    assert prepare_version("3.2-final", update, update.release_monitor) == "3.2"
    assert prepare_version("2.9", update, update.release_monitor) is None


def test_update_without_enabled_is_not_monitored() -> None:
    # melange decodes `enabled` into a Go bool: absent means false.
    assert UpdateConfig.model_validate({"pypi": {"identifier": "x"}}).enabled is False
    assert UpdateConfig.model_validate({"enabled": True}).monitor_kind() is None
