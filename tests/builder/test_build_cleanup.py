"""Failures leave nothing behind silently: a failed build, test or fetch and a Ctrl-C remove
their workspace and say so, or keep it with --keep-workspace and say where; Ctrl-C names what it
interrupted, stops the step and exits 130 without a traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from build_testlib import Upstream, greet_project
from tiny_recipes import FAILING_STEP, napping_step, tiny_recipe, write

from cli_runner import run_cli


def _removed(stderr: str, workspaces: Path) -> Path:
    found = re.search(r"workspace removed: (\S+) \(--keep-workspace keeps it\)", stderr)
    assert found, stderr
    path = Path(found.group(1))
    assert path.parent == workspaces and path.name.startswith("nanodistro-")
    assert not path.exists()
    assert list(workspaces.iterdir()) == []
    return path


def test_failed_build_removes_its_workspace_and_says_so(tmp_path: Path) -> None:
    recipe = write(tmp_path, tiny_recipe(FAILING_STEP))
    ws = tmp_path / "ws"
    done = run_cli(tmp_path, "build", recipe, "--workspace-dir", ws, "--no-test")
    assert done.returncode == 1
    _removed(done.stderr, ws)
    # the error still shows the step's last lines, and names no log that is gone
    assert "build step 'explode' (pipeline[0]) of tiny exited with status 3; its last lines:" in (
        done.stderr
    )
    assert "about to fail: the answer is 42" in done.stderr
    assert "last lines of /" not in done.stderr and "Traceback" not in done.stderr


def test_keep_workspace_says_where_the_failed_build_is(tmp_path: Path) -> None:
    recipe = write(tmp_path, tiny_recipe(FAILING_STEP))
    ws = tmp_path / "ws"
    done = run_cli(tmp_path, "build", recipe, "--workspace-dir", ws, "--keep-workspace")
    assert done.returncode == 1
    kept = re.search(r"workspace kept: (\S+)", done.stderr)
    assert kept, done.stderr
    base = Path(kept.group(1))
    log = base / "logs" / "001-tiny-explode.log"
    assert f"last lines of {log}:" in done.stderr
    assert "the answer is 42" in log.read_text()
    assert (base / "root").is_dir()  # kept whole: the sandbox root too


@pytest.mark.slow  # a build, then a test in a sandbox with the host toolchain: ~15 s
def test_failed_test_removes_its_workspace(tmp_path: Path) -> None:
    built = write(tmp_path, tiny_recipe())
    out = tmp_path / "out"
    assert run_cli(tmp_path, "build", built, "--out", out, "--no-test").returncode == 0
    failing = write(tmp_path / "t", tiny_recipe(test="tiny | grep -qx nope"))
    ws = tmp_path / "ws"
    apk = out / os.uname().machine / "tiny-0.1-r0.apk"
    done = run_cli(tmp_path, "test", failing, "-p", apk, "--workspace-dir", ws)
    assert done.returncode == 1
    assert "test failed: testing tiny-0.1-r0" in done.stderr
    _removed(done.stderr, ws)


def test_failed_fetch_removes_its_workspace_and_partial_download(
    upstream: Upstream, tmp_path: Path
) -> None:
    url, _sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    fetch = f"  - uses: fetch\n    with:\n      uri: {url}\n      expected-sha256: {'f' * 64}\n"
    recipe = write(tmp_path, tiny_recipe(fetch))
    ws, cache = tmp_path / "ws", tmp_path / "cache"
    done = run_cli(
        tmp_path, "build", recipe, "--workspace-dir", ws, "--source-cache", cache, "--no-test"
    )
    assert done.returncode == 1
    assert f"expected sha256 {'f' * 64}" in done.stderr
    assert re.search(r"✗ source \[tiny\] fetch failed after", done.stderr)
    _removed(done.stderr, ws)
    assert [p.name for p in cache.rglob("*") if p.is_file()] == []  # no .download-* left


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_ctrl_c_names_the_step_cleans_up_and_exits_130(tmp_path: Path) -> None:
    marker = f"nap-{uuid.uuid4().hex}"
    recipe = write(tmp_path, tiny_recipe(napping_step(marker)))
    ws, err = tmp_path / "ws", tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    with err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "nanodistro", "build", str(recipe), "--workspace-dir", str(ws)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
        try:
            deadline = time.monotonic() + 120
            while not _processes_with(marker) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _processes_with(marker), err.read_text()
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            status = process.wait(timeout=60)
        finally:
            process.kill()
    text = err.read_text()
    assert status == 130, text
    assert re.search(
        rf"^interrupted while building tiny-0\.1-r0 \({re.escape(str(recipe))}\): "
        r"build \[tiny\] nap \(after \d+\.\ds\)$",
        text,
        re.M,
    ), text
    assert "Traceback" not in text and "aborted" not in text
    _removed(text, ws)
    assert _processes_with(marker) == []  # the step did not outlive the build


def test_interrupted_cache_store_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nanodistro.builder import cache as cache_mod

    source = tmp_path / "download"
    source.write_bytes(b"tarball")
    store = cache_mod.SourceCache(tmp_path / "cache")

    def interrupted(_src: object, _dst: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C between the copy and the rename

    monkeypatch.setattr(cache_mod.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.store(source, cache_mod.file_digests(source))
    with pytest.raises(KeyboardInterrupt):
        store.store_unpinned(source, "https://example.org/x.tar.gz")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
