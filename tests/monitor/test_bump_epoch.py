"""``nanodistro bump --epoch RECIPE``: a rebuild-only bump (same version, epoch + 1) that leaves
every other byte of the recipe as it was and commits nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from test_monitor_bump import tarball
from upstream_server import Upstream

from cli_runner import run_cli
from git_helper import git

RECIPE = """\
# zed: comments, quoting and odd spacing must survive an epoch bump
package:
  name: zed
  version: "1.0.0"   # pinned by hand
  epoch: 7
  description: 'zed, quoted'
  copyright:
    - license: MIT
pipeline:
  # the release tarball
  - uses: fetch
    with:
      uri: {base}/dl/zed-${{{{package.version}}}}.tar.gz
      expected-sha256: {sha}
  - runs: |
      make   PREFIX=/usr
update:
  enabled: false
"""


def _recipe(tmp_path: Path, upstream: Upstream) -> Path:
    data = tarball("1.0.0", {"README": "zed\n"})
    upstream.add("/dl/zed-1.0.0.tar.gz", data)
    recipe = tmp_path / "recipes" / "zed.yaml"
    recipe.parent.mkdir()
    recipe.write_text(RECIPE.format(base=upstream.base, sha=hashlib.sha256(data).hexdigest()))
    return recipe


def test_epoch_bump_changes_only_the_epoch_line(tmp_path: Path, upstream: Upstream) -> None:
    recipe = _recipe(tmp_path, upstream)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "zed")
    before = recipe.read_bytes()
    cache = tmp_path / "cache"

    done = run_cli(tmp_path, "bump", "--epoch", recipe, "--source-cache", cache)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"{recipe}: 1.0.0-r7 -> 1.0.0-r8"
    after = recipe.read_bytes()
    assert after == before.replace(b"  epoch: 7\n", b"  epoch: 8\n")
    # nothing committed: the change is the user's to review and commit
    assert git(tmp_path, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(tmp_path, "status", "--porcelain", "recipes").strip() == "M recipes/zed.yaml"

    done = run_cli(tmp_path, "bump", "--epoch", recipe, "--source-cache", cache, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["old_version"], result["new_version"]) == ("1.0.0", "1.0.0")
    assert (result["old_epoch"], result["new_epoch"]) == (8, 9)
    assert recipe.read_bytes() == before.replace(b"  epoch: 7\n", b"  epoch: 9\n")


def test_epoch_bump_dry_run_and_errors(tmp_path: Path, upstream: Upstream) -> None:
    recipe = _recipe(tmp_path, upstream)
    before = recipe.read_bytes()
    args = ["bump", "--epoch", recipe, "--source-cache", tmp_path / "cache"]
    done = run_cli(tmp_path, *args, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "-  epoch: 7\n+  epoch: 8\n" in done.stdout
    assert recipe.read_bytes() == before

    done = run_cli(tmp_path, "bump", "--epoch", recipe, "2.0.0")
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {recipe}: --epoch keeps the version: give either VERSION (2.0.0) or --epoch\n"
    )
    done = run_cli(tmp_path, "bump", "--epoch", tmp_path / "nope.yaml")
    assert done.returncode == 1
    assert done.stderr == f"error: {tmp_path / 'nope.yaml'}: no such recipe file\n"
    assert recipe.read_bytes() == before
