"""``nanodistro bisect``: the one broken package change among ten, found in real containers.

A workspace repository holds version 1 and version 2 of ten small packages (real signed .apk
files); some depend on each other (``libb-2`` needs ``liba>=2``, ``app-2`` needs ``libb>=2`` and a
package that version 1 did not have; ``f-1`` needs a package that version 2 drops). The good image
was built when only version 1 existed, the bad one after version 2 was published, both kept as
tags of one OCI layout. ``conf-2`` ships ``broken`` where ``conf-1`` ships ``ok``, and the command
(the host's static busybox, bind-mounted as for smoke tests) greps for ``ok``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cli_runner import run_cli
from image.image_testlib import Pkg, build_repo, make_key
from nanodistro.errors import ConfigError, ImageError
from nanodistro.factory.bisect import (
    BisectRequest,
    Change,
    bisect,
    changes_between,
    check_prefixes,
    order_changes,
)
from nanodistro.factory.smoke import SMOKE_BINARIES, SMOKE_MOUNT
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.image.build import BuildRequest, build_image, lock_image, write_result
from nanodistro.image.tags import add_to_layout
from nanodistro.imageconfig import load_config
from nanodistro.resolve.universe import RepositoryRef, Universe
from nanodistro.util.host import host_arch
from needs_tools import require_tools

V1, V2 = "1.0-r0", "2.0-r0"
STATE = "usr/share/conf/state"
CHECK = [SMOKE_MOUNT, "grep", "-qx", "ok", f"/{STATE}"]
IMAGE = """\
contents:
  packages: [app, c, d, e, f, conf]
annotations:
  dev.nanodistro.smoke.binary: busybox-static
archs: [{arch}]
"""


def _version_1() -> list[Pkg]:
    return [
        Pkg("liba", V1, files={"usr/lib/liba": b"a1\n"}),
        Pkg("libb", V1, files={"usr/lib/libb": b"b1\n"}, depends=["liba"]),
        Pkg("app", V1, files={"usr/bin/app": b"app1\n"}, depends=["libb"]),
        Pkg("olddep", V1, files={"usr/share/olddep": b"old\n"}),
        Pkg("c", V1, files={"usr/share/c": b"c1\n"}),
        Pkg("d", V1, files={"usr/share/d": b"d1\n"}),
        Pkg("e", V1, files={"usr/share/e": b"e1\n"}),
        Pkg("f", V1, files={"usr/share/f": b"f1\n"}, depends=["olddep"]),
        Pkg("conf", V1, files={STATE: b"ok\n"}),
    ]


def _version_2() -> list[Pkg]:
    return [
        Pkg("liba", V2, files={"usr/lib/liba": b"a2\n"}),
        Pkg("libb", V2, files={"usr/lib/libb": b"b2\n"}, depends=["liba>=2"]),
        Pkg("newdep", V2, files={"usr/share/newdep": b"new\n"}),
        Pkg("app", V2, files={"usr/bin/app": b"app2\n"}, depends=["libb>=2", "newdep"]),
        Pkg("c", V2, files={"usr/share/c": b"c2\n"}),
        Pkg("d", V2, files={"usr/share/d": b"d2\n"}),
        Pkg("e", V2, files={"usr/share/e": b"e2\n"}),
        Pkg("f", V2, files={"usr/share/f": b"f2\n"}),
        Pkg("conf", V2, files={STATE: b"broken\n"}),  # the deliberate break
    ]


def _runtime() -> str:
    """runc (CI must have it); bubblewrap where a developer machine lacks runc."""
    require_tools("umoci", str(SMOKE_BINARIES["busybox-static"]))
    if os.environ.get("CI") or shutil.which("runc"):
        require_tools("runc")
        return "runc"
    require_tools("bwrap")
    return "bubblewrap"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``nanodistro.toml``, ``images/app.yaml``, the repository, and ``out/images/app`` holding
    ``build-1`` (version 1 of everything) and ``build-2`` (after version 2 was published)."""
    root = tmp_path_factory.mktemp("bisect")
    (root / "nanodistro.toml").write_text(f'[workspace]\narchs = ["{host_arch()}"]\n')
    (root / "images").mkdir()
    (root / "images/app.yaml").write_text(IMAGE.format(arch=host_arch()))
    key = make_key(root / "keys")
    repo = root / "out/packages"
    arch = (host_arch(),)
    loaded = load_config(root / "images/app.yaml")
    request = BuildRequest(loaded=loaded, repositories=[str(repo)], keyring_paths=[root / "keys"])
    persistent = root / "out/images/app"
    for tag, packages in (("build-1", _version_1()), ("build-2", _version_1() + _version_2())):
        build_repo(repo, packages, key, arch)  # the working repository keeps every version
        write_result(build_image(request), root / f"out/{tag}")
        (root / f"out/{tag}.lock.json").write_bytes(lock_image(request).to_bytes())
        added = add_to_layout(persistent, root / f"out/{tag}", ["latest"])  # image/tags.py
        assert added.build_tag == tag
    return root


def _request(workspace: Path, command: list[str], **kwargs: object) -> BisectRequest:
    defaults: dict[str, object] = {
        "good": f"{workspace}/out/images/app:build-1",
        "bad": f"{workspace}/out/images/app:build-2",
        "repositories": [str(workspace / "out/packages")],
        "keyring_paths": [workspace / "keys"],
        "binary": SMOKE_BINARIES["busybox-static"],
        "runtime": _runtime(),
    }
    defaults.update(kwargs)
    return BisectRequest(
        loaded=load_config(workspace / "images/app.yaml"),
        command=command,
        **defaults,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_bisect_names_the_broken_change_in_at_most_four_builds(workspace: Path) -> None:
    runtime = _runtime()
    result = run_cli(
        workspace,
        "bisect",
        "images/app.yaml",
        "--good",
        "out/images/app:build-1",
        "--bad",
        "out/images/app:build-2",
        "--runtime",
        "runc" if runtime == "runc" else "bwrap",
        "--json",
        "--",
        *CHECK,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["changes"] == 10
    assert report["culprit"] == [{"name": "conf", "old": V1, "new": V2, "kind": "upgraded"}]
    assert report["builds"] <= 4
    # ten single-change units: binary search needs at most ceil(log2(10)) = 4 builds
    assert report["builds"] == sum(1 for step in report["steps"] if step["built"]) >= 3
    order = [unit["changes"][0]["name"] for unit in report["order"]]
    assert all(len(unit["changes"]) == 1 for unit in report["order"])
    # every prefix is installable: what a change needs comes first
    assert order.index("liba") < order.index("libb") < order.index("app")
    assert order.index("newdep") < order.index("app")
    assert order.index("f") < order.index("olddep")  # f-1 needs olddep: f changes first
    reasons = [reason for unit in report["order"] for reason in unit["reasons"]]
    assert "libb 1.0-r0 -> 2.0-r0 needs liba 1.0-r0 -> 2.0-r0 (libb-2.0-r0 depends on liba>=2)" in (
        reasons
    )
    assert "-olddep 1.0-r0 needs f 1.0-r0 -> 2.0-r0 (f-1.0-r0 depends on olddep)" in reasons
    steps = report["steps"]
    assert [s["label"] for s in steps[:2]] == ["good", "bad"]
    assert steps[0]["passed"] and not steps[1]["passed"]
    assert not steps[0]["built"] and not steps[1]["built"]  # the given images themselves ran
    for step in steps[2:]:
        assert step["digest"].startswith("sha256:")
        # a step fails exactly when the broken change is among those applied
        broken = "conf 1.0-r0 -> 2.0-r0" in step["applied"]
        assert step["passed"] is not broken
    # the text form: each step and the verdict
    text = run_cli(
        workspace,
        "bisect",
        "images/app.yaml",
        "--good",
        "out/images/app:build-1",
        "--bad",
        "out/images/app:build-2",
        "--",
        *CHECK,
    )
    assert text.returncode == 0, text.stderr
    assert "breaks: conf 1.0-r0 -> 2.0-r0" in text.stdout
    assert f"{report['builds']} image builds" in text.stdout
    assert text.stdout.count("sha256:") == report["builds"] + 2  # good, bad, each build


@pytest.mark.slow
def test_plain_layouts_and_the_engine_agree(workspace: Path) -> None:
    """Layout directories instead of tags, through the engine API."""
    seen: list[str] = []
    result = bisect(
        _request(workspace, CHECK, good=f"{workspace}/out/build-1", bad=f"{workspace}/out/build-2"),
        on_step=lambda step: seen.append(step.label),
    )
    assert result.culprit.changes == [Change("conf", V1, V2)]
    assert 3 <= result.builds <= 4
    assert seen == [step.label for step in result.steps]
    assert seen[:2] == ["good", "bad"]


@pytest.mark.slow
def test_a_lock_file_is_built_and_counted(workspace: Path) -> None:
    """A lock file names packages but no image: bisect builds it (one more build)."""
    result = bisect(_request(workspace, CHECK, good=f"{workspace}/out/build-1.lock.json"))
    assert result.culprit.changes == [Change("conf", V1, V2)]
    good = result.steps[0]
    assert good.label == "good" and good.built and good.passed
    assert result.builds == sum(1 for step in result.steps if step.built) <= 5


def test_image_diff_reads_layout_tags(workspace: Path) -> None:
    """``DIR:TAG`` is what bisect and ``image diff`` both take for a persistent layout."""
    result = run_cli(
        workspace, "image", "diff", "out/images/app:build-1", "out/images/app:build-2", "--json"
    )
    assert result.returncode == 0, result.stderr
    change = json.loads(result.stdout)["archs"][host_arch()]
    assert [item["name"] for item in change["added"]] == ["newdep"]
    assert [item["name"] for item in change["removed"]] == ["olddep"]
    assert len(change["upgraded"]) == 8
    missing = run_cli(workspace, "image", "diff", "out/images/app:build-9", "out/build-1")
    assert missing.returncode != 0 and "no image tagged 'build-9'" in missing.stderr


def test_same_image_twice_is_an_error(workspace: Path) -> None:
    same = f"{workspace}/out/images/app:build-1"
    with pytest.raises(ConfigError, match=r"same packages.*nothing to bisect"):
        bisect(_request(workspace, CHECK, good=same, bad=same))


def test_a_failing_good_image_is_an_error(workspace: Path) -> None:
    with pytest.raises(ImageError, match="the good image already fails") as raised:
        bisect(_request(workspace, [SMOKE_MOUNT, "grep", "-qx", "never", f"/{STATE}"]))
    assert "exited 1" in str(raised.value)
    assert "build-1" in str(raised.value)


def test_a_passing_bad_image_is_an_error(workspace: Path) -> None:
    with pytest.raises(ImageError, match="the bad image passes"):
        bisect(_request(workspace, [SMOKE_MOUNT, "true"]))


def test_cli_errors_are_one_line(workspace: Path) -> None:
    _runtime()
    result = run_cli(
        workspace,
        "bisect",
        "images/app.yaml",
        "--good",
        "out/images/app:build-2",
        "--bad",
        "out/images/app:build-2",
        "--",
        SMOKE_MOUNT,
        "true",
    )
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and "nothing to bisect" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli(
        workspace, "bisect", "images/app.yaml", "--good", "nope:1", "--bad", "x", "--", "true"
    )
    assert missing.returncode != 0 and "nope:1" in missing.stderr
    assert "Traceback" not in missing.stderr


def _info(
    name: str, version: str, depends: list[str] | None = None, provides: list[str] | None = None
) -> PackageInfo:
    return PackageInfo(
        name=name,
        version=version,
        arch=host_arch(),
        depends=depends or [],
        provides=provides or [],
        checksum=f"Q1{name}{version}=",
    )


def test_changes_that_need_each_other_are_one_step() -> None:
    packages = [
        _info("a", "1"),
        _info("b", "1"),
        _info("a", "2", ["b>=2"]),
        _info("b", "2", ["a>=2"]),
        _info("c", "1"),
        _info("c", "2"),
    ]
    universe = Universe.build([(RepositoryRef("/repo"), packages)], arch=host_arch())
    good = {"a": "1", "b": "1", "c": "1"}
    changes = changes_between(good, {"a": "2", "b": "2", "c": "2"})
    units = order_changes(good, changes, universe)
    assert [[c.name for c in unit.changes] for unit in units] == [["a", "b"], ["c"]]
    assert units[0].reasons[0] == "these changes need each other: applied together"
    assert check_prefixes(good, units, universe) == (units, [])


def test_a_prefix_the_resolver_refuses_is_extended_and_said_so() -> None:
    """Two providers of one versioned name cannot be installed together: the static order puts
    the new provider first (removing the old one needs it), the resolver then refuses that
    prefix, so both go in one step and a note says why."""
    packages = [
        _info("app", "1", ["cmd:sh"]),
        _info("sha", "1", provides=["cmd:sh=1"]),
        _info("shb", "1", provides=["cmd:sh=2"]),
    ]
    universe = Universe.build([(RepositoryRef("/repo"), packages)], arch=host_arch())
    good = {"app": "1", "sha": "1"}
    changes = changes_between(good, {"app": "1", "shb": "1"})
    units = order_changes(good, changes, universe)
    assert [str(unit) for unit in units] == ["+shb 1", "-sha 1"]
    merged, notes = check_prefixes(good, units, universe)
    assert [str(unit) for unit in merged] == ["+shb 1, -sha 1"]
    assert len(notes) == 1 and "does not resolve" in notes[0] and "+shb 1" in notes[0]
    assert "cmd:sh is already provided by sha-1" in notes[0]
