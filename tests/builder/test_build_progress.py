"""`nanodistro build` shows every step with its elapsed time, without -v: timestamped lines when
stderr is not a terminal (CI logs), a live status line with a running clock on a terminal;
`--json` carries per-step and per-package durations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pty_session import run_in_pty
from tiny_recipes import tiny_recipe, write

from cli_runner import run_cli

TIME = r"\d\d:\d\d:\d\d"
SECONDS = r"\d+\.\ds"


@pytest.mark.slow  # a build and its test in sandboxes: ~15 s on a busy 2-core machine
def test_plain_lines_name_each_step_with_its_time_and_json_has_durations(
    tmp_path: Path,
) -> None:
    recipe = write(tmp_path, tiny_recipe("  - name: nap\n    runs: sleep 1\n"))
    done = run_cli(tmp_path, "build", recipe, "--out", tmp_path / "out", "--json")
    assert done.returncode == 0, done.stderr
    err = done.stderr
    # not a terminal: each line starts with the time of day; a step's start and its end
    assert re.search(rf"^{TIME} » building tiny-0\.1-r0 \({re.escape(str(recipe))}\)$", err, re.M)
    assert re.search(rf"^{TIME} » build \[tiny\] nap$", err, re.M)
    nap = re.search(rf"^{TIME}   ✓ build \[tiny\] nap (\d+\.\d)s$", err, re.M)
    assert nap and float(nap.group(1)) >= 1.0
    for stage in (
        r"environment \[tiny\] install the build environment",
        r"build \[tiny\] install",
        r"package tiny-0\.1-r0\.apk",
        r"test \[tiny\] tiny \| grep -qx tiny",
    ):
        assert re.search(rf"^{TIME}   ✓ {stage} {SECONDS}$", err, re.M), stage
    assert re.search(rf"^{TIME} ✓ tiny-0\.1-r0 \(.*\) {SECONDS}$", err, re.M)
    assert "\x1b[" not in err  # no cursor movement or colour in a log

    (result,) = json.loads(done.stdout)
    steps = {(s["kind"], s["step"]): s for s in result["steps"]}
    assert steps[("build", "nap")]["seconds"] >= 1.0
    assert steps[("build", "nap")]["status"] == "ok"
    assert {"environment", "build", "package", "test-environment", "test"} <= {
        kind for kind, _ in steps
    }
    (package,) = result["packages"]
    assert package["seconds"] >= 1.0  # its steps, its emission, its test
    assert result["seconds"] >= package["seconds"]


def test_a_failed_step_says_how_long_it_ran(tmp_path: Path) -> None:
    recipe = write(tmp_path, tiny_recipe("  - name: boom\n    runs: sleep 1; exit 4\n"))
    done = run_cli(tmp_path, "build", recipe, "--out", tmp_path / "out", "--no-test")
    assert done.returncode == 1
    assert re.search(rf"^{TIME}   ✗ build \[tiny\] boom failed after 1\.\ds$", done.stderr, re.M)
    assert re.search(rf"^{TIME} ✗ tiny-0\.1-r0 \(.*\) failed after {SECONDS}$", done.stderr, re.M)


def test_terminal_shows_a_live_status_line_with_a_running_clock(tmp_path: Path) -> None:
    recipe = write(tmp_path, tiny_recipe("  - name: nap\n    runs: sleep 2\n"))
    session = run_in_pty(
        tmp_path, "build", str(recipe), "--out", str(tmp_path / "out"), "--no-test"
    )
    assert session.status == 0, session.text
    screen = session.plain
    # the status line (spinner, step, clock) is redrawn while the step runs, then erased
    clocks = re.findall(r"build \[tiny\] nap (\d+\.\d)s", screen)
    assert len(set(clocks)) >= 2, screen  # the clock moved
    assert "\x1b[2K" in session.text  # the transient line was erased
    assert re.search(rf"✓ build \[tiny\] nap {SECONDS}", screen)
    assert not re.search(rf"^{TIME} ", screen, re.M)  # a terminal needs no timestamps
