"""Reproducibility, for real: the miniature catalog (tests/mini_catalog.py) built by the factory is
rebuilt independently by ``nanodistro rebuild-check`` and found byte-identical; a recipe that
embeds its build time and a random UUID is reported as differing, with those files named; each
factory cycle checks a sample, records it in the event log and shows the catalog's share."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from factory_catalog import FirstCycle, copy_first_cycle
from nanodistro.cli import app

pytestmark = pytest.mark.slow

# Not reproducible on purpose: the build time (nanoseconds) and a random UUID end up in files.
STAMP_RECIPE = """
package:
  name: stamp
  version: "1.0"
  epoch: 0
  description: embeds when and where it was built
  copyright:
    - license: MIT
environment:
  contents:
    packages: [build-base]
pipeline:
  - runs: |
      mkdir -p ${{targets.destdir}}/usr/share/stamp
      echo "stable content" > ${{targets.destdir}}/usr/share/stamp/README
      date +%s%N > ${{targets.destdir}}/usr/share/stamp/built-at
      cat /proc/sys/kernel/random/uuid > ${{targets.destdir}}/usr/share/stamp/build-id
"""


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def built(
    first_cycle: FirstCycle, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The miniature catalog (a git work tree) after one factory cycle: this module's copy of the
    session's (tests/factory_catalog.py), and that cycle's report."""
    root = copy_first_cycle(first_cycle, tmp_path_factory.mktemp("repro"))
    return root, first_cycle.report


def checks_recorded(root: Path) -> list[dict[str, Any]]:
    from nanodistro.factory import events
    from nanodistro.factory.state import open_state

    with open_state(f"sqlite:///{root}/.nanodistro/state.db") as state:
        found = events.query(state, types=[events.REPRODUCIBILITY_CHECKED])
    return [{"subject": e.subject, **e.payload} for e in found]


def test_each_cycle_checks_a_sample_records_it_and_shows_the_share(
    built: tuple[Path, dict[str, Any]],
) -> None:
    root, report = built
    assert report["status"] == "promoted", json.dumps(report, indent=1)[:3000]
    # [reproducibility] sample defaults to 1: of this cycle's builds, the cheapest one (its
    # build seconds decide, so which of the two trivial recipes it is may vary)
    status = report["reproducibility"]
    (checked,) = status["this_cycle"]
    versions = {"ca-certs": "2024.1-r0", "mini-baselayout": "1.0-r0"}
    assert checked["package"] in versions, status
    first = checked["package"]
    assert checked == {"package": first, "version": versions[first], "status": "identical"}
    assert (status["catalog"], status["checked"], status["identical"]) == (4, 1, 1)
    (event,) = checks_recorded(root)
    assert event["subject"] == f"package:{first}" and event["status"] == "identical"
    assert event["published_sha256"] == event["rebuilt_sha256"] != ""
    assert event["cycle"] == report["cycle"]

    # a cycle that builds nothing checks a catalog recipe never checked (by name); the summary
    # counts every check so far
    second = sorted({"ca-certs", "hello", "libgreet", "mini-baselayout"} - {first})[0]
    again = cli("factory", "run", str(root), "--once", "--quiet", "--no-monitor")
    assert again.exit_code == 0, again.output
    assert (
        "reproducible 2/2 packages checked identical (2 of 4 in the catalog checked) "
        f"(this cycle: {second} identical)"
    ) in again.stdout
    assert [e["subject"] for e in checks_recorded(root)] == [
        f"package:{first}",
        f"package:{second}",
    ]


def test_rebuild_check_all_reports_the_catalog_identical(
    built: tuple[Path, dict[str, Any]],
) -> None:
    root, _report = built
    result = cli("rebuild-check", "--all", "--workspace", str(root))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("libgreet-1.2.0-r0: libgreet identical") for line in lines)
    assert "4 of 4 packages reproducible (100%)" in result.stdout
    as_json = cli("rebuild-check", "--all", "--workspace", str(root), "--json")
    data = json.loads(as_json.stdout)
    assert (data["total"], data["counts"], data["ok"]) == (4, {"identical": 4}, True)


def _stamp_in_copy(built: Path, tmp_path: Path) -> Path:
    """The (unreproducible, not yet built) stamp recipe added to a copy of the built workspace;
    returns the recipe (in ``<copy>/recipes``)."""
    root = tmp_path / "ws"
    shutil.copytree(built, root, symlinks=True)
    recipe = root / "recipes" / "stamp.yaml"
    recipe.write_text(STAMP_RECIPE.lstrip())
    return recipe


def test_a_build_time_and_a_uuid_are_reported_by_path(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    recipe = _stamp_in_copy(built[0], tmp_path)
    root = recipe.parents[1]
    build = cli("build", str(recipe), "--no-test")
    assert build.exit_code == 0, build.output
    assert (root / "out/packages/x86_64/stamp-1.0-r0.apk").is_file()

    result = cli("rebuild-check", str(recipe), str(root / "recipes" / "ca-certs.yaml"))
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "stamp-1.0-r0: stamp differs" in out
    assert "ca-certs-2024.1-r0: ca-certs identical" in out
    assert "stamp-1.0-r0.apk: data: usr/share/stamp/built-at: content sha256 " in out
    assert "stamp-1.0-r0.apk: data: usr/share/stamp/build-id: content sha256 " in out
    assert "usr/share/stamp/README" not in out  # the same in both builds
    assert "1 of 2 packages reproducible (50%): 1 differs" in out

    data = json.loads(cli("rebuild-check", str(recipe), "--json").stdout)
    (package,) = data["recipes"][0]["packages"]
    differing = {d["path"]: d["fields"] for d in package["differences"]}
    assert differing["usr/share/stamp/built-at"] == ["content"]
    assert differing["usr/share/stamp/build-id"] == ["content"]
    assert package["published_sha256"] != package["rebuilt_sha256"]


def test_a_recipe_never_published_is_missing_not_failed(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    recipe = _stamp_in_copy(built[0], tmp_path)
    result = cli("rebuild-check", str(recipe))
    assert result.exit_code == 0, result.output
    assert "stamp-1.0-r0: stamp missing" in result.stdout
    assert "0 of 1 packages reproducible (0%): 1 missing" in result.stdout


def test_sample_prefers_unchecked_then_cheapest_builds(tmp_path: Path) -> None:
    from nanodistro.factory.reproducibility import choose_sample
    from nanodistro.factory.state import open_state

    with open_state(f"sqlite:///{tmp_path}/state.db") as state:
        built = ["busybox", "baselayout", "lua"]
        cost = {"busybox": 120.0, "baselayout": 0.5, "lua": 9.0}
        current = {"busybox": "1-r0", "baselayout": "1-r0", "lua": "1-r0", "zlib": "1-r0"}
        assert choose_sample(state, built, current, 1, cost) == ["baselayout"]
        assert choose_sample(state, built, current, 2, cost) == ["baselayout", "lua"]
        # without costs: by name; unchecked catalog versions come after this cycle's builds
        assert choose_sample(state, built, current, 4) == ["baselayout", "busybox", "lua", "zlib"]
        assert choose_sample(state, built, current, 0, cost) == []
