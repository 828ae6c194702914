"""monitor -> bump -> build, as a user runs them: the bumped recipe builds, tests and publishes.

Upstream (release tarballs and their download directory) is served on 127.0.0.1; the build runs
in the real bubblewrap sandbox with the host toolchain, like every `nanodistro build`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from test_monitor_bump import BUGGY, FIX_PATCH, FIXED, tarball
from upstream_server import Upstream

from host_libc import host_libc_repository
from nanodistro.formats.apk import read_apk

MAIN_C = (
    "#include <stdio.h>\nint answer(void);\nint main(void) {\n"
    '    printf("%d\\n", answer());\n    return 0;\n}\n'
)
# ours, kept across the bump: upstream never changes main.c's output format
WORDS_PATCH = """\
--- a/main.c
+++ b/main.c
@@ -1,6 +1,6 @@
 #include <stdio.h>
 int answer(void);
 int main(void) {
-    printf("%d\\n", answer());
+    printf("the answer is %d\\n", answer());
     return 0;
 }
"""
RELEASES = {
    "1.0.0": {"answer.c": BUGGY, "main.c": MAIN_C},
    "2.0.0": {"answer.c": FIXED, "main.c": MAIN_C},
}

RECIPE = """\
# demo: comments survive the bump
package:
  name: demo
  version: "1.0.0"
  epoch: 3
  description: prints the answer
  copyright:
    - license: MIT

environment:
  contents:
    packages:
      - build-base

pipeline:
  - uses: fetch
    with:
      uri: mirror://upstream/dl/demo-${{{{package.version}}}}.tar.gz
      expected-sha256: {sha}

  - uses: patch
    with:
      patches: fix-answer.patch words.patch

  - name: compile
    runs: |
      mkdir -p ${{{{targets.destdir}}}}/usr/bin
      cc -O2 -o ${{{{targets.destdir}}}}/usr/bin/demo main.c answer.c

test:
  environment:
    contents:
      packages: [build-base]  # the host's sh and C library (demo links glibc)
  pipeline:
    - runs: test "$(demo)" = "the answer is 42"

update:
  enabled: true
  http-regex:
    url: {base}/dl/
    pattern: 'demo-([0-9.]+)\\.tar\\.gz'
"""


def nanodistro(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_bumped_recipe_builds_tests_and_publishes(tmp_path: Path, upstream: Upstream) -> None:
    from nanodistro.trust.keys import generate_key

    listing = []
    for version, files in RELEASES.items():
        upstream.add(f"/dl/demo-{version}.tar.gz", tarball(version, files))
        listing.append(f'<a href="demo-{version}.tar.gz">demo-{version}.tar.gz</a>')
    upstream.add("/dl/", "\n".join(listing))

    ws = tmp_path / "ws"
    (ws / "recipes" / "demo").mkdir(parents=True)
    (ws / "nanodistro.toml").write_text(
        '[workspace]\nname = "t"\n[keys]\ndir = "keys"\nname = "t"\n[sources]\ncache = "cache"\n'
        f'[mirrors]\nupstream = "{upstream.base}"\n'
    )
    generate_key("t", ws / "keys", bits=2048)
    sha = hashlib.sha256(tarball("1.0.0", RELEASES["1.0.0"])).hexdigest()
    recipe = ws / "recipes" / "demo.yaml"
    recipe.write_text(RECIPE.format(base=upstream.base, sha=sha))
    (ws / "recipes" / "demo" / "fix-answer.patch").write_text(FIX_PATCH)
    (ws / "recipes" / "demo" / "words.patch").write_text(WORDS_PATCH)
    repo = ws / "out" / "packages" / "x86_64"

    # the recipe as it is builds (both patches apply to 1.0.0)
    # demo links the host's glibc: its sonames come from a stand-in repository
    libc = str(host_libc_repository(tmp_path, next((ws / "keys").glob("t-*.rsa"))))
    first = nanodistro("build", str(recipe), "--json", "--repository", libc, cwd=ws)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["tests"] == [{"package": "demo", "passed": True}]

    checked = nanodistro("monitor", "recipes", "--json", "--cache-dir", str(tmp_path / "c"), cwd=ws)
    assert checked.returncode == 10, checked.stderr
    (result,) = json.loads(checked.stdout)["results"]
    assert (result["status"], result["latest"]) == ("update", "2.0.0")

    # the workspace gives bump its mirrors and source cache, as it gives them to build
    bumped = nanodistro("bump", str(recipe), "--cache-dir", str(tmp_path / "c"), cwd=ws)
    assert bumped.returncode == 0, bumped.stderr
    assert "fix-answer.patch is in upstream 2.0.0: removed" in bumped.stdout
    text = recipe.read_text()
    assert '"2.0.0"' in text and "epoch: 0" in text and "# demo: comments survive" in text
    assert "patches: words.patch" in text and "fix-answer.patch" not in text
    assert not (ws / "recipes" / "demo" / "fix-answer.patch").exists()

    downloads = [p for p in upstream.paths() if p.endswith(".tar.gz")]
    assert downloads == ["/dl/demo-1.0.0.tar.gz", "/dl/demo-2.0.0.tar.gz"]
    built = nanodistro("build", str(recipe), "--json", "--repository", libc, cwd=ws)
    assert built.returncode == 0, built.stderr
    (report,) = json.loads(built.stdout)
    assert report["published"] == [str(repo / "demo-2.0.0-r0.apk")]
    # the test ran the freshly built binary: upstream's fix plus our remaining patch
    assert report["tests"] == [{"package": "demo", "passed": True}]
    info = read_apk((repo / "demo-2.0.0-r0.apk").read_bytes(), where="demo").info
    assert (info.name, info.version) == ("demo", "2.0.0-r0")
    assert (repo / "demo-1.0.0-r3.apk").is_file()  # the old version stays published
    # the build found the bumped source in the cache, under its mirror:// name
    assert [p for p in upstream.paths() if p.endswith(".tar.gz")] == downloads
