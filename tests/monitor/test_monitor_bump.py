"""Bumping recipes against sources served on 127.0.0.1: checksums, commits, patch retirement."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from upstream_server import Upstream

from git_helper import git
from nanodistro.errors import MonitorError, UnsafePathError
from nanodistro.monitor.bump import bump_recipe
from nanodistro.monitor.providers.base import Endpoints

BUGGY = "int answer(void) {\n    return 41;\n}\n"
FIXED = "int answer(void) {\n    return 42;\n}\n"
README_V1 = "demo\nsecond line\nversion one\n"

FIX_PATCH = """\
--- a/answer.c
+++ b/answer.c
@@ -1,3 +1,3 @@
 int answer(void) {
-    return 41;
+    return 42;
 }
"""
README_PATCH = """\
--- a/README
+++ b/README
@@ -1,3 +1,3 @@
 demo
 second line
-version one
+version one, patched
"""


# Upstream 2.0.0 ships the fix that fix-answer.patch carries.
FIXED_IN_2 = {"1.0.0": {"answer.c": BUGGY}, "2.0.0": {"answer.c": FIXED}}
# Upstream 1.1.0 ships the fix too, and readme.patch stays ours.
FIXED_IN_1_1 = {
    "1.0.0": {"answer.c": BUGGY, "README": README_V1},
    "1.1.0": {"answer.c": FIXED, "README": README_V1},
}
FIX_ONLY = {"fix-answer.patch": FIX_PATCH}
BOTH_PATCHES = {"fix-answer.patch": FIX_PATCH, "readme.patch": README_PATCH}


def tarball(version: str, files: dict[str, str]) -> bytes:
    """A reproducible .tar.gz (gzip header time 0), so the test can compute its digest."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(f"demo-{version}/{name}")
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


RECIPE = """\
# demo: a recipe with comments that must survive a bump
package:
  name: demo
  version: "1.0.0" # keep me
  epoch: 4
  description: demo package
  copyright:
    - license: MIT

environment:
  contents:
    packages:
      - build-base

pipeline:
  # fetch the release tarball
  - uses: fetch
    with:
      uri: {base}/dl/demo-${{{{package.version}}}}.tar.gz
      expected-sha256: {sha}

  - uses: patch
    with:
      # carried until upstream ships the fix
      patches: |
        {patches}

  - runs: make

update:
  enabled: true
  http-regex:
    url: {base}/dl/
    pattern: 'demo-([0-9.]+)\\.tar\\.gz'
"""


def make_project(
    tmp_path: Path, upstream: Upstream, releases: dict[str, dict[str, str]], patches: dict[str, str]
) -> Path:
    listing = []
    for version, files in releases.items():
        data = tarball(version, files)
        upstream.add(f"/dl/demo-{version}.tar.gz", data)
        listing.append(f'<a href="demo-{version}.tar.gz">demo-{version}.tar.gz</a>')
    upstream.add("/dl/", "\n".join(listing))
    first = next(iter(releases))
    sha = hashlib.sha256(tarball(first, releases[first])).hexdigest()
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(
        RECIPE.format(base=upstream.base, sha=sha, patches="\n        ".join(patches))
    )
    (tmp_path / "demo").mkdir()
    for name, content in patches.items():
        (tmp_path / "demo" / name).write_text(content)
    return recipe


def test_bump_drops_absorbed_patch_and_updates_checksum(tmp_path: Path, upstream: Upstream) -> None:
    recipe = make_project(tmp_path, upstream, FIXED_IN_2, FIX_ONLY)
    result = bump_recipe(recipe, "2.0.0", source_cache=tmp_path / "cache")
    text = recipe.read_text()
    new_sha = hashlib.sha256(tarball("2.0.0", {"answer.c": FIXED})).hexdigest()
    assert f"expected-sha256: {new_sha}" in text
    assert 'version: "2.0.0" # keep me' in text
    assert "epoch: 0\n" in text
    assert "# demo: a recipe with comments that must survive a bump" in text
    assert "# fetch the release tarball" in text
    assert "uses: patch" not in text and "fix-answer.patch" not in text
    assert not (tmp_path / "demo" / "fix-answer.patch").exists()
    assert [p.name for p in result.removed_patches] == ["fix-answer.patch"]
    assert any("fix-answer.patch is in upstream 2.0.0" in c for c in result.changes)
    # Everything else in the file is byte-identical.
    assert text.count("\n") == RECIPE.count("\n") - 6


def test_bump_keeps_applying_patch_and_edits_list(tmp_path: Path, upstream: Upstream) -> None:
    recipe = make_project(tmp_path, upstream, FIXED_IN_1_1, BOTH_PATCHES)
    result = bump_recipe(recipe, None, source_cache=tmp_path / "cache", endpoints=Endpoints())
    assert result.new_version == "1.1.0"  # found by the http-regex monitor
    text = recipe.read_text()
    assert "patches: |\n        readme.patch\n\n  - runs: make" in text
    assert (tmp_path / "demo" / "readme.patch").exists()
    assert result.kept_patches == ["readme.patch"]


def test_bump_fails_cleanly_on_conflicting_patch(tmp_path: Path, upstream: Upstream) -> None:
    rewritten = "int answer(int x) {\n    return x;\n}\n"
    recipe = make_project(
        tmp_path,
        upstream,
        {"1.0.0": {"answer.c": BUGGY}, "3.0.0": {"answer.c": rewritten}},
        FIX_ONLY,
    )
    before = recipe.read_text()
    with pytest.raises(MonitorError, match=r"fix-answer\.patch neither applies"):
        bump_recipe(recipe, "3.0.0", source_cache=tmp_path / "cache")
    assert recipe.read_text() == before
    assert (tmp_path / "demo" / "fix-answer.patch").exists()


def test_bump_dry_run_changes_nothing(tmp_path: Path, upstream: Upstream) -> None:
    recipe = make_project(tmp_path, upstream, FIXED_IN_2, FIX_ONLY)
    before = recipe.read_text()
    result = bump_recipe(recipe, "2.0.0", dry_run=True, source_cache=tmp_path / "cache")
    assert recipe.read_text() == before
    assert (tmp_path / "demo" / "fix-answer.patch").exists()
    lines = result.diff.splitlines()
    assert '-  version: "1.0.0" # keep me' in lines
    assert '+  version: "2.0.0" # keep me' in lines
    assert "-  - uses: patch" in result.diff
    assert "deleted file" in result.diff


def test_bump_same_version_increments_epoch(tmp_path: Path, upstream: Upstream) -> None:
    recipe = make_project(tmp_path, upstream, {"1.0.0": {"answer.c": FIXED}}, {})
    text = recipe.read_text().replace(
        "  - uses: patch\n    with:\n      # carried until upstream ships the fix\n      patches: |\n        \n\n",
        "",
    )
    recipe.write_text(text)
    result = bump_recipe(recipe, "1.0.0", source_cache=tmp_path / "cache")
    assert (result.old_epoch, result.new_epoch) == (4, 5)
    assert "epoch: 5" in recipe.read_text()


def test_bump_git_checkout_commit_and_patch(tmp_path: Path) -> None:
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "answer.c").write_text(BUGGY)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "-a", "-m", "v1", "v1.0")
    old = git(repo, "rev-parse", "HEAD")
    (repo / "answer.c").write_text(FIXED)
    git(repo, "commit", "-qam", "fix")
    git(repo, "tag", "-a", "-m", "v1.1", "v1.1")
    new = git(repo, "rev-parse", "HEAD")
    recipes = tmp_path / "recipes"
    (recipes / "demo").mkdir(parents=True)
    (recipes / "demo" / "fix.patch").write_text(FIX_PATCH)
    recipe = recipes / "demo.yaml"
    recipe.write_text(
        f"""package:
  name: demo
  version: 1.0
  epoch: 2

pipeline:
  - uses: git-checkout
    with:
      repository: {repo}
      tag: v${{{{package.version}}}}
      expected-commit: {old}

  - uses: patch
    with:
      patches: fix.patch
"""
    )
    bump_recipe(recipe, "1.1")
    text = recipe.read_text()
    assert f"expected-commit: {new}" in text
    assert 'version: "1.1"' in text  # 1.1 would read back as a float unquoted
    assert "patch" not in text


def test_bump_edits_a_series_file(tmp_path: Path, upstream: Upstream) -> None:
    recipe = make_project(tmp_path, upstream, FIXED_IN_1_1, BOTH_PATCHES)
    text = recipe.read_text()
    start = text.index("  - uses: patch")
    end = text.index("  - runs: make")
    recipe.write_text(
        text[:start] + "  - uses: patch\n    with:\n      series: series\n\n" + text[end:]
    )
    series = tmp_path / "demo" / "series"
    series.write_text("# applied in order\nfix-answer.patch\n\nreadme.patch\n")
    dry = bump_recipe(recipe, "1.1.0", dry_run=True, source_cache=tmp_path / "cache")
    assert "-fix-answer.patch" in dry.diff.splitlines()
    assert series.read_text().count(".patch") == 2
    bump_recipe(recipe, "1.1.0", source_cache=tmp_path / "cache")
    assert series.read_text() == "# applied in order\n\nreadme.patch\n"
    assert "series: series" in recipe.read_text()
    assert not (tmp_path / "demo" / "fix-answer.patch").exists()


def test_bump_refuses_a_source_escaping_its_tree(tmp_path: Path, upstream: Upstream) -> None:
    # The bump unpacks with the build's safe extractor (build.sources.extract_tarball).
    releases = {"1.0.0": {"answer.c": BUGGY}, "2.0.0": {"answer.c": FIXED, "../../escape": "x"}}
    recipe = make_project(tmp_path, upstream, releases, FIX_ONLY)
    before = recipe.read_text()
    with pytest.raises(UnsafePathError, match="escape"):
        bump_recipe(recipe, "2.0.0", source_cache=tmp_path / "cache")
    assert recipe.read_text() == before
    assert (tmp_path / "demo" / "fix-answer.patch").exists()


def test_bump_download_makes_the_next_build_fetch_offline(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --source-cache, bump fills the builder's default cache under the new digests,
    so the build's pinned fetch of the bumped recipe reaches no server."""
    from nanodistro.builder.cache import SourceCache
    from nanodistro.builder.sources import fetch

    monkeypatch.setenv("NANODISTRO_SOURCE_CACHE", str(tmp_path / "default-cache"))
    recipe = make_project(tmp_path, upstream, FIXED_IN_2, FIX_ONLY)
    bump_recipe(recipe, "2.0.0")
    new_sha = hashlib.sha256(tarball("2.0.0", {"answer.c": FIXED})).hexdigest()
    assert (tmp_path / "default-cache" / "sha256" / new_sha).is_file()
    downloads = [p for p in upstream.paths() if p.endswith(".tar.gz")]

    record = fetch(
        {"uri": f"{upstream.base}/dl/demo-2.0.0.tar.gz", "expected-sha256": new_sha},
        workspace=tmp_path / "ws",
        workdir="/home/build",
        cache=SourceCache(),
        step="fetch",
    )
    assert record.sha256 == new_sha
    assert (tmp_path / "ws" / "answer.c").read_text() == FIXED
    assert [p for p in upstream.paths() if p.endswith(".tar.gz")] == downloads
