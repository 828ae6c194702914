"""The factory loop end to end on the miniature catalog, offline.

The upstream (tests/mini_catalog.py) serves release tarballs and its directory listing on
127.0.0.1; libgreet's recipe monitors that listing (``http-regex``). A first ``factory run
--once`` builds everything and promotes it; then upstream publishes libgreet 1.3.0 and one more
cycle detects it, bumps (a git commit by nanodistro), builds, rebuilds hello (which embeds the
static library: epoch bump) and the hello image, and promotes; the previous stable image stays
readable in the layout. A release that breaks hello's test ends in ``gate-blocked`` with stable
unchanged, and ``rollback`` restores the previous stable state.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from factory_catalog import FirstCycle, copy_first_cycle
from mini_catalog import BAD_GREET, factory_once, release_libgreet
from nanodistro.cli import app

pytestmark = pytest.mark.slow


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout


def factory(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    return result


def run_once(root: Path, *extra: str) -> dict[str, Any]:
    return factory_once(root, *extra)


def stable_state(root: Path) -> dict[str, Any]:
    from nanodistro.factory.promote import current_stable
    from nanodistro.factory.workspace import load_workspace

    stable = current_stable(load_workspace(root))
    return {"version": stable.version, "images": stable.images}


@pytest.fixture(scope="module")
def upstream(first_cycle: FirstCycle) -> tuple[str, dict[str, str], Path]:
    return first_cycle.url, first_cycle.digests, first_cycle.served


@pytest.fixture(scope="module")
def built(
    first_cycle: FirstCycle, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The miniature catalog after its first cycle (a git work tree): this module's copy of the
    session's (tests/factory_catalog.py)."""
    root = copy_first_cycle(first_cycle, tmp_path_factory.mktemp("first"))
    return root, first_cycle.report


def copy_workspace(built: tuple[Path, dict[str, Any]], target: Path) -> Path:
    root = target / "ws"
    shutil.copytree(built[0], root, symlinks=True)
    return root


def test_first_cycle_builds_publishes_and_promotes_everything(
    built: tuple[Path, dict[str, Any]],
) -> None:
    root, report = built
    assert report["status"] == "promoted", json.dumps(report, indent=1)[:4000]
    assert report["channels"] == {"staging": 1, "stable": 1}
    statuses = {b["recipe"]: b["status"] for b in report["builds"]}
    assert statuses == dict.fromkeys(["ca-certs", "hello", "libgreet", "mini-baselayout"], "built")
    images = {i["name"]: i for i in report["catalog"]["images"]}
    assert {n: i["smoke"]["status"] for n, i in images.items()} == {
        "hello": "passed",
        "static": "passed",
    }
    assert report["events"] > 10
    # apk sees exactly version 1 through the stable channel
    assert (root / "out/packages/stable").resolve() == (root / "out/packages/versions/1").resolve()
    assert stable_state(root)["images"] == {n: i["digest"] for n, i in images.items()}
    # each recipe version that reached the repository, with the recipe hash it was built from
    from nanodistro.builder.recipeinfo import existing_build
    from nanodistro.factory.records import recipe_versions
    from nanodistro.factory.state import open_state

    with open_state(f"sqlite:///{root}/.nanodistro/state.db") as state:
        rows = {
            (r.recipe, r.version): (r.recipe_sha256, r.repo_version) for r in recipe_versions(state)
        }
    assert set(rows) == {("ca-certs", "2024.1-r0"), ("hello", "2.0-r0"), ("libgreet", "1.2.0-r0"),
                         ("mini-baselayout", "1.0-r0")}  # fmt: skip
    packages = root / "out/packages"
    assert rows[("hello", "2.0-r0")] == (existing_build(packages, "x86_64", "hello-2.0-r0.apk"), 1)


def test_new_release_is_detected_bumped_rebuilt_with_dependents_and_promoted(
    built: tuple[Path, dict[str, Any]],
    upstream: tuple[str, dict[str, str], Path],
    tmp_path: Path,
) -> None:
    from nanodistro.image.diff import from_layout
    from nanodistro.image.tags import tag_digest

    _url, _digests, served = upstream
    root = copy_workspace(built, tmp_path)
    before = stable_state(root)
    layout = root / "out/images/hello"
    release_libgreet(served, "1.3.0")
    try:
        report = run_once(root)
    finally:
        (served / "libgreet-1.3.0.tar.gz").unlink()
    assert report["status"] == "promoted", json.dumps(report, indent=1)[:4000]
    # the bump: a commit by nanodistro naming old -> new
    log = git(root, "log", "--format=%an|%s", "-3")
    assert "nanodistro|libgreet: 1.2.0-r0 -> 1.3.0-r0" in log
    assert "nanodistro|hello: 2.0-r0 -> 2.0-r1" in log  # the static dependent's epoch bump
    builds = {b["recipe"]: b for b in report["builds"]}
    assert builds["libgreet"]["status"] == "built" and builds["libgreet"]["version"] == "1.3.0-r0"
    assert builds["hello"]["status"] == "built" and builds["hello"]["version"] == "2.0-r1"
    assert "libgreet 1.2.0-r0 -> 1.3.0-r0 (static)" in builds["hello"]["rebuild_reason"]
    assert builds["ca-certs"]["status"] == "unchanged"
    assert report["channels"] == {"staging": 2, "stable": 2}
    after = stable_state(root)
    assert after["version"] == 2
    assert after["images"]["static"] == before["images"]["static"]  # its closure did not change
    assert after["images"]["hello"] != before["images"]["hello"]
    assert tag_digest(layout, "stable") == after["images"]["hello"]
    # the stable image holds the rebuilt hello; the previous stable digest is still readable
    packages = from_layout(layout, kind="layout")
    by_digest = {}
    for tag in ("stable",):
        assert tag_digest(layout, tag)
    from nanodistro.image.tags import set_tag

    set_tag(layout, "old-stable", before["images"]["hello"])
    for tag in ("stable", "old-stable"):
        view = tmp_path / f"view-{tag}"
        subprocess.run(
            ["skopeo", "copy", f"oci:{layout}:{tag}", f"oci:{view}:x"]
            if shutil.which("skopeo")
            else ["umoci", "stat", "--image", f"{layout}:{tag}"],
            check=True,
            capture_output=True,
        )
        by_digest[tag] = tag_digest(layout, tag)
    assert by_digest["old-stable"] == before["images"]["hello"]
    assert packages  # the installed db is readable
    events = json.loads(factory("events", str(root), "--json").stdout)
    types = [(e["type"], e["subject"]) for e in events]
    for expected in [
        ("release-detected", "recipe:libgreet"),
        ("recipe-bumped", "recipe:libgreet"),
        ("recipe-bumped", "recipe:hello"),
        ("build-succeeded", "recipe:libgreet"),
        ("published", "package:libgreet"),
        ("image-built", "image:hello"),
        ("smoke-passed", "image:hello"),
        ("promoted", "channel:stable"),
        ("promoted", "image:hello"),
    ]:
        assert expected in types, expected
    # freshness: libgreet 1.3.0 went from first seen -> staging -> stable (hello's image holds
    # hello, which embeds it; the libgreet package itself is in no image)
    fresh = json.loads(factory("freshness", str(root), "--json").stdout)
    greet = next(
        p for p in fresh["packages"] if p["package"] == "libgreet" and p["version"] == "1.3.0-r0"
    )
    assert greet["release_source"] == "first-seen"
    assert greet["released"] <= greet["published"] <= greet["promoted"]
    hello = next(
        p for p in fresh["packages"] if p["package"] == "hello" and p["version"] == "2.0-r1"
    )
    assert hello["image_promoted"] and hello["published"] <= hello["image_promoted"]
    assert fresh["stats"]["release_to_promoted"]["p50"] is not None
    assert (
        fresh["stats"]["release_to_promoted"]["p95"] >= fresh["stats"]["release_to_promoted"]["p50"]
    )

    # rollback: stable goes back to version 1 and the previous image digests, recorded
    rolled = factory("rollback", "stable", str(root), "--json", "--quiet")
    assert rolled.exit_code == 0, rolled.output
    assert stable_state(root) == before
    assert (root / "out/packages/stable").resolve() == (root / "out/packages/versions/1").resolve()
    events = json.loads(factory("events", str(root), "--json", "--type", "rolled-back").stdout)
    assert events and events[0]["payload"]["from"] == 2 and events[0]["payload"]["version"] == 1
    # the next cycle does not undo the rollback (the gate refuses the rolled-back state)
    again = run_once(root, "--no-monitor")
    assert again["status"] == "gate-blocked"
    assert "rolled back" in " ".join(again["gate"]["reasons"])
    assert stable_state(root) == before
    # and rollback --to 2 moves it forward again
    forward = factory("rollback", "stable", str(root), "--to", "2", "--quiet")
    assert forward.exit_code == 0, forward.output
    assert stable_state(root) == after


def test_release_breaking_a_dependent_is_gate_blocked(
    built: tuple[Path, dict[str, Any]],
    upstream: tuple[str, dict[str, str], Path],
    tmp_path: Path,
) -> None:
    _url, _digests, served = upstream
    root = copy_workspace(built, tmp_path)
    before = stable_state(root)
    stable_link = (root / "out/packages/stable").resolve()
    release_libgreet(served, "1.4.0", BAD_GREET)
    try:
        report = run_once(root)
    finally:
        (served / "libgreet-1.4.0.tar.gz").unlink()
    assert report["status"] == "gate-blocked", json.dumps(report, indent=1)[:4000]
    assert any("hello" in r for r in report["gate"]["reasons"]), report["gate"]
    assert report["gate"]["log_path"] and Path(report["gate"]["log_path"]).exists()
    assert stable_state(root) == before
    assert (root / "out/packages/stable").resolve() == stable_link
    blocked = json.loads(factory("events", str(root), "--json", "--type", "gate-blocked").stdout)
    assert len(blocked) == 1 and blocked[0]["payload"]["log"]
    # the next cycle, with no new input, retries nothing and stays blocked (no new event)
    again = run_once(root, "--no-monitor")
    assert again["status"] == "gate-blocked"
    assert {b["recipe"]: b["status"] for b in again["builds"]}["hello"] == "failed"
    assert stable_state(root) == before
    blocked = json.loads(factory("events", str(root), "--json", "--type", "gate-blocked").stdout)
    assert len(blocked) == 1
    started = json.loads(factory("events", str(root), "--json", "--type", "build-started").stdout)
    assert sum(1 for e in started if e["subject"] == "recipe:hello") == 2  # first + the rebuild
