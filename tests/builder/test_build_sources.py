"""Sources outside the sandbox: fetch + cache, pins, unsafe archives, git-checkout, patch."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from build_testlib import Upstream

from git_helper import git
from nanodistro.builder.cache import SourceCache
from nanodistro.builder.sources import SourceRecord, apply_patches, fetch, git_checkout
from nanodistro.errors import BuildError, ChecksumError, UnsafePathError


def fetch_inputs(url: str, sha: str, **extra: str) -> dict[str, str]:
    return {
        "uri": url,
        "expected-sha256": sha,
        "strip-components": "1",
        "extract": "true",
        "directory": ".",
        "delete": "false",
        **extra,
    }


def fetch_to(
    tmp_path: Path,
    inputs: dict[str, str],
    *,
    step: str = "s",
    workdir: str = "/home/build",
    workspace: Path | None = None,
) -> SourceRecord:
    """``fetch`` into ``tmp_path/ws`` (or ``workspace``) with a fresh cache at ``tmp_path/c``."""
    return fetch(
        inputs,
        workspace=workspace or tmp_path / "ws",
        workdir=workdir,
        cache=SourceCache(tmp_path / "c"),
        step=step,
    )


def patch_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """An empty build workspace and the recipe's patch directory."""
    ws = tmp_path / "ws"
    ws.mkdir()
    patches = tmp_path / "recipes" / "demo"
    patches.mkdir(parents=True)
    return ws, patches


def patch(inputs: dict[str, str], ws: Path, patches: Path) -> None:
    apply_patches(
        inputs, workspace=ws, workdir="/home/build", patch_dirs=[patches], step="pipeline[1]"
    )


def test_fetch_extracts_and_second_fetch_uses_cache(upstream: Upstream, tmp_path: Path) -> None:
    url, sha = upstream.add_tarball(
        "proj-1.0.tar.gz", {"README": "hi\n", "src/main.c": "int main(){}\n"}, top="proj-1.0"
    )
    cache = SourceCache(tmp_path / "cache")
    for attempt in (1, 2):
        ws = tmp_path / f"ws{attempt}"
        record = fetch(
            fetch_inputs(url, sha),
            workspace=ws,
            workdir="/home/build",
            cache=cache,
            step="pipeline[0]",
        )
        assert (ws / "README").read_text() == "hi\n"
        assert (ws / "src/main.c").is_file()
        assert (ws / "proj-1.0.tar.gz").is_file()
        assert record.sha256 == sha and len(record.sha512) == 128
        assert record.newest_mtime == 1_700_000_000
    assert upstream.requests == ["/proj-1.0.tar.gz"]  # the second build needed no network
    assert (tmp_path / "cache" / "sha256" / sha).is_file()


def test_fetch_into_directory_with_delete(upstream: Upstream, tmp_path: Path) -> None:
    url, sha = upstream.add_tarball("x.tar.gz", {"a/b/c.txt": "c"}, top="top")
    fetch_to(
        tmp_path,
        fetch_inputs(url, sha, directory="sub", delete="true", **{"strip-components": "2"}),
        workdir="/home/build/w",
    )
    assert (tmp_path / "ws/w/sub/b/c.txt").read_text() == "c"
    assert not (tmp_path / "ws/w/x.tar.gz").exists()


def test_checksum_mismatch_shows_expected_and_actual(upstream: Upstream, tmp_path: Path) -> None:
    url, sha = upstream.add_tarball("p.tar.gz", {"f": "x"}, top="p")
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as error:
        fetch_to(tmp_path, fetch_inputs(url, wrong), step="pipeline[0]")
    message = str(error.value)
    assert f"expected sha256 {wrong}" in message and f"got {sha}" in message
    assert url in message
    assert not (tmp_path / "c" / "sha256" / wrong).exists()


def test_unpinned_fetch_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    url, _ = upstream.add_tarball("p.tar.gz", {"f": "x"}, top="p")
    with pytest.raises(BuildError, match="expected-sha256 or expected-sha512"):
        fetch_to(tmp_path, {"uri": url}, workspace=tmp_path)


def _evil_tarball(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("top/ok")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
        if kind == "dotdot":
            info = tarfile.TarInfo("top/../../escape")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        elif kind == "symlink":
            info = tarfile.TarInfo("top/link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        elif kind == "device":
            info = tarfile.TarInfo("top/dev")
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "symlink", "device"])
def test_unsafe_archives_are_rejected(kind: str, upstream: Upstream, tmp_path: Path) -> None:
    data = _evil_tarball(kind)
    (upstream.root / "evil.tar.gz").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(UnsafePathError):
        fetch_to(tmp_path, fetch_inputs(f"{upstream.base_url}/evil.tar.gz", sha))
    assert not (tmp_path / "escape").exists()


def test_fetch_outside_home_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    url, sha = upstream.add_tarball("p.tar.gz", {"f": "x"}, top="p")
    expected = r"only be placed under /home/build, got '/home/build/\.\./\.\./etc'"
    with pytest.raises(UnsafePathError, match=expected):
        fetch_to(tmp_path, fetch_inputs(url, sha, directory="../../etc"))


def _git(cwd: Path, *args: str) -> str:
    return git(cwd, *args, date=1_700_000_000)


@pytest.fixture
def git_upstream(tmp_path: Path) -> tuple[Path, str, str]:
    repo = tmp_path / "upstream.git"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "file.txt").write_text("v1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "v1.0")
    tagged = _git(repo, "rev-parse", "HEAD")
    (repo / "fix.txt").write_text("fix\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "fix")
    fix = _git(repo, "rev-parse", "HEAD")
    return repo, tagged, fix


def test_git_checkout_tag_with_expected_commit_and_cherry_pick(
    git_upstream: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, tagged, fix = git_upstream
    inputs = {
        "repository": f"file://{repo}",
        "tag": "v1.0",
        "expected-commit": tagged,
        "destination": "src",
        "cherry-picks": f"main/{fix}: backport fix\n",
    }
    record = git_checkout(
        inputs,
        workspace=tmp_path / "ws",
        workdir="/home/build",
        cache=SourceCache(tmp_path / "c"),
        step="pipeline[0]",
        source_date_epoch=1_700_000_000,
    )
    assert (tmp_path / "ws/src/file.txt").read_text() == "v1\n"
    assert (tmp_path / "ws/src/fix.txt").read_text() == "fix\n"  # cherry-picked
    assert record.tag == "v1.0" and record.repository == f"file://{repo}"
    # the mirror is cached: a second checkout works with the upstream gone
    moved = repo.rename(tmp_path / "gone")
    git_checkout(
        {**inputs, "destination": "again", "cherry-picks": ""},
        workspace=tmp_path / "ws",
        workdir="/home/build",
        cache=SourceCache(tmp_path / "c"),
        step="p",
        source_date_epoch=0,
    )
    assert (tmp_path / "ws/again/file.txt").is_file()
    assert moved.is_dir()


def test_git_checkout_commit_mismatch(git_upstream: tuple[Path, str, str], tmp_path: Path) -> None:
    repo, _tagged, fix = git_upstream
    with pytest.raises(ChecksumError) as error:
        git_checkout(
            {"repository": f"file://{repo}", "tag": "v1.0", "expected-commit": fix},
            workspace=tmp_path / "ws",
            workdir="/home/build",
            cache=SourceCache(tmp_path / "c"),
            step="pipeline[1]",
            source_date_epoch=0,
        )
    assert f"expected-commit {fix}" in str(error.value) and "got " in str(error.value)


def test_patch_applies_from_recipe_dir_and_reports_failures(tmp_path: Path) -> None:
    ws, patches = patch_dirs(tmp_path)
    (ws / "hello.c").write_text("int main(void) { return 1; }\n")
    (patches / "fix.patch").write_text(
        "--- a/hello.c\n+++ b/hello.c\n@@ -1 +1 @@\n-int main(void) { return 1; }\n"
        "+int main(void) { return 0; }\n"
    )
    patch({"patches": "fix.patch"}, ws, patches)
    assert "return 0" in (ws / "hello.c").read_text()
    with pytest.raises(BuildError) as error:  # applying it again cannot work
        patch({"patches": "fix.patch"}, ws, patches)
    assert "fix.patch does not apply" in str(error.value)
    with pytest.raises(BuildError, match="not found"):
        patch({"patches": "missing.patch"}, ws, patches)


def test_fetch_retries_server_errors(tmp_path: Path) -> None:
    import http.server
    import threading

    from build_testlib import make_tarball

    data = make_tarball({"f": "x"}, mtime=1, modes={}, top="p")
    hits: list[int] = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(1)
            if len(hits) == 1:
                self.send_response(503)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/p.tar.gz"
        fetch_to(tmp_path, fetch_inputs(url, hashlib.sha256(data).hexdigest()))
    finally:
        server.shutdown()
        server.server_close()
    assert len(hits) == 2
    assert (tmp_path / "ws" / "f").read_text() == "x"


def test_patch_series_skips_comments(tmp_path: Path) -> None:
    ws, patches = patch_dirs(tmp_path)
    (ws / "a.txt").write_text("one\n")
    (patches / "01.patch").write_text("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n")
    (patches / "02.patch").write_text("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-two\n+three\n")
    (patches / "series").write_text("# applied in order\n01.patch\n\n02.patch  # second\n")
    patch({"series": "series"}, ws, patches)
    assert (ws / "a.txt").read_text() == "three\n"
