"""Real builds of upstream-style release tarballs served on 127.0.0.1 (slow)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from build_testlib import (
    Upstream,
    app_project,
    greet_project,
    greet_recipe,
)

from host_libc import host_libc_repository
from nanodistro.builder.orchestrate import BuildConfig, BuildResult, build_recipe, build_recipes
from nanodistro.cli import main as cli_main
from nanodistro.errors import BuildError, ChecksumError
from nanodistro.formats.apk import read_apk, verify_apk, write_apk
from nanodistro.formats.apkindex import read_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.repo.repository import publish
from nanodistro.trust.keys import load_signing_key
from needs_tools import require_tools

pytestmark = pytest.mark.slow


def write_recipe(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def config(tmp_path: Path, key: Path | None = None, **kwargs: object) -> BuildConfig:
    signing = load_signing_key(key) if key else None
    kwargs.setdefault("workspace_dir", tmp_path / "ws")  # failed builds keep theirs: not in /tmp
    if key is not None:  # the test programs link the host's glibc: a repository provides it
        kwargs.setdefault("extra_repos", [str(host_libc_repository(tmp_path, key))])
    return BuildConfig(
        source_cache=tmp_path / "cache",
        key=signing,
        keyring={signing.keyname: signing.public_pem()} if signing else None,
        **kwargs,  # type: ignore[arg-type]
    )


def run_build(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code in (None, 0)
    (result,) = json.loads(capsys.readouterr().out)
    return result  # type: ignore[no-any-return]


def pkginfo_lines(data: bytes, key: str) -> list[str]:
    text = read_apk(data, where="pkg").control_files[".PKGINFO"].decode()
    return [line.split(" = ", 1)[1] for line in text.splitlines() if line.startswith(f"{key} = ")]


def test_c_library_with_splits_publishes_and_skips(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    recipe = write_recipe(tmp_path / "recipes", "greet", greet_recipe(url, sha))
    repo = tmp_path / "repo"
    args = [
        "build",
        str(recipe),
        "--repo",
        str(repo),
        "--key",
        str(signing_key_path),
        "--repository",
        str(host_libc_repository(tmp_path, signing_key_path)),
        "--source-cache",
        str(tmp_path / "cache"),
        "--json",
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code in (None, 0)
    (result,) = json.loads(capsys.readouterr().out)
    assert not result["skipped"]
    assert [p["name"] for p in result["packages"]] == ["greet", "greet-dev", "greet-doc"]
    assert {t["package"]: t["passed"] for t in result["tests"]} == {
        "greet": True,
        "greet-dev": True,
    }

    key = load_signing_key(signing_key_path)
    keyring = {key.keyname: key.public_pem()}
    files = {p.name: p.read_bytes() for p in (repo / "x86_64").glob("*.apk")}
    assert sorted(files) == ["greet-1.0-r0.apk", "greet-dev-1.0-r0.apk", "greet-doc-1.0-r0.apk"]
    for name, data in files.items():
        verify_apk(read_apk(data, where=name), keyring)

    main = files["greet-1.0-r0.apk"]
    assert sorted(pkginfo_lines(main, "provides")) == ["cmd:greet=1.0-r0", "so:libgreet.so.1=1"]
    assert "so:libc.so.6" in pkginfo_lines(main, "depend")
    assert "so:libgreet.so.1" not in pkginfo_lines(main, "depend")  # provided by itself
    assert pkginfo_lines(main, "builddate") == ["1700000000"]  # newest source file time
    entries = {e.path: e for e in read_apk(main, where="greet").entries}
    assert "usr/bin/greet" in entries and "usr/lib/libgreet.so.1" in entries
    assert "usr/include/greet.h" not in entries and "usr/share/man/man1/greet.1" not in entries
    sbom = json.loads(entries["var/lib/db/sbom/greet-1.0-r0.spdx.json"].data)
    source = next(p for p in sbom["packages"] if p.get("primaryPackagePurpose") == "SOURCE")
    assert {"algorithm": "SHA256", "checksumValue": sha} in source["checksums"]
    assert f"checksum=sha256:{sha}" in source["externalRefs"][0]["referenceLocator"]

    dev = files["greet-dev-1.0-r0.apk"]
    dev_paths = {e.path for e in read_apk(dev, where="dev").entries}
    assert {"usr/include/greet.h", "usr/lib/libgreet.so", "usr/lib/pkgconfig/greet.pc"} <= dev_paths
    assert pkginfo_lines(dev, "provides") == ["pc:greet=1.0-r0"]
    assert sorted(pkginfo_lines(dev, "depend")) == ["so:libgreet.so.1"]
    assert pkginfo_lines(dev, "origin") == ["greet"]
    doc = {e.path for e in read_apk(files["greet-doc-1.0-r0.apk"], where="doc").entries}
    assert "usr/share/man/man1/greet.1" in doc

    index = read_index((repo / "x86_64" / "APKINDEX.tar.gz").read_bytes(), where="index")
    assert sorted(p.name for p in index.packages) == ["greet", "greet-dev", "greet-doc"]

    # unchanged recipe, already published: skipped, repository untouched
    before = {p: p.stat().st_mtime_ns for p in (repo / "x86_64").iterdir()}
    requests = len(upstream.requests)
    with pytest.raises(SystemExit):
        cli_main(args)
    (again,) = json.loads(capsys.readouterr().out)
    assert again["skipped"] and "already published" in again["skip_reason"]
    assert {p: p.stat().st_mtime_ns for p in (repo / "x86_64").iterdir()} == before
    assert len(upstream.requests) == requests

    # --rebuild builds again from the cache; the bytes are identical, so publishing is a no-op
    rebuilt = run_build([*args, "--rebuild"], capsys)
    assert [p["name"] for p in rebuilt["packages"]] == ["greet", "greet-dev", "greet-doc"]  # type: ignore[attr-defined]
    assert {p.name: p.read_bytes() for p in (repo / "x86_64").glob("*.apk")} == files
    assert len(upstream.requests) == requests


def test_reproducible_in_different_directories_and_times(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    url, sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    text = greet_recipe(url, sha)
    outputs = []
    for attempt, umask in (("first", 0o022), ("second-place", 0o077)):
        recipe = write_recipe(tmp_path / attempt / "recipes", "greet", text)
        previous = os.umask(umask)  # a different caller umask must not change the bytes
        try:
            result = build_recipe(
                recipe,
                config(
                    tmp_path / attempt,
                    signing_key_path,
                    workspace_dir=tmp_path / attempt / "ws",
                    run_tests=False,
                ),
            )
        finally:
            os.umask(previous)
        outputs.append({p.filename: p.data for p in result.packages})
        time.sleep(1.1)  # a different wall-clock second for the second build
    assert sorted(outputs[0]) == [
        "greet-1.0-r0.apk",
        "greet-dev-1.0-r0.apk",
        "greet-doc-1.0-r0.apk",
    ]
    assert outputs[0].keys() == outputs[1].keys()
    for name in outputs[0]:
        assert outputs[0][name] == outputs[1][name], f"{name} differs between builds"


def test_failing_test_publishes_nothing(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    url, sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    recipe = write_recipe(
        tmp_path / "recipes", "greet", greet_recipe(url, sha, test="greet | grep -qx 'goodbye'")
    )
    repo = tmp_path / "repo"
    with pytest.raises(BuildError) as error:
        build_recipes([recipe], config(tmp_path, signing_key_path, repo=repo))
    message = str(error.value)
    assert message.startswith(f"{recipe}: test failed")
    assert "grep -qx 'goodbye'" in message
    assert not repo.exists() or not any(repo.rglob("*.apk"))
    # the same recipe with --no-test builds
    results = build_recipes(
        [recipe], config(tmp_path, signing_key_path, repo=repo, run_tests=False)
    )
    assert results[0].packages[0].filename == "greet-1.0-r0.apk"


def test_failing_step_names_step_log_and_leaves_repo_untouched(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    url, sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    repo = tmp_path / "repo"
    good = write_recipe(tmp_path / "ok", "greet", greet_recipe(url, sha))
    build_recipes([good], config(tmp_path, signing_key_path, repo=repo, run_tests=False))
    snapshot = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    broken_step = (
        "  - name: explode\n    runs: |\n      echo 'about to fail: the answer is 42'\n"
        "      exit 3\n"
    )
    text = greet_recipe(url, sha, extra_steps=broken_step).replace("epoch: 0", "epoch: 1")
    bad = write_recipe(tmp_path / "bad", "greet", text)
    with pytest.raises(BuildError) as error:
        build_recipes(
            [bad], config(tmp_path, signing_key_path, repo=repo, workspace_dir=tmp_path / "ws")
        )
    message = str(error.value)
    assert "step 'explode'" in message and "exited with status 3" in message
    assert "about to fail: the answer is 42" in message
    log = Path(message.split("last lines of ", 1)[1].split(":\n", 1)[0])
    assert log.is_file() and "the answer is 42" in log.read_text()
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == snapshot


def test_checksum_mismatch_fails_before_building(upstream: Upstream, tmp_path: Path) -> None:
    url, sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    recipe = write_recipe(tmp_path / "r", "greet", greet_recipe(url, "f" * 64))
    with pytest.raises(ChecksumError) as error:
        build_recipe(recipe, config(tmp_path))
    assert f"expected sha256 {'f' * 64}, got {sha}" in str(error.value)


def test_recipes_build_in_dependency_order(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    greet_url, greet_sha = upstream.add_tarball(
        "greet-1.0.tar.gz", greet_project(), top="greet-1.0"
    )
    app_url, app_sha = upstream.add_tarball("shout-2.0.tar.gz", app_project(), top="shout-2.0")
    recipes = tmp_path / "recipes"
    greet = write_recipe(recipes, "greet", greet_recipe(greet_url, greet_sha))
    app = write_recipe(
        recipes,
        "shout",
        f"""package:
  name: shout
  version: "2.0"
  epoch: 0
  description: shouts greetings
  copyright:
    - license: Apache-2.0
environment:
  contents:
    packages: [build-base, pkgconf, greet-dev]
pipeline:
  - uses: fetch
    with:
      uri: {app_url}
      expected-sha256: {app_sha}
  - uses: autoconf/configure
  - uses: autoconf/make
  - uses: autoconf/make-install
test:
  environment:
    contents:
      packages: [build-base]
  pipeline:
    - runs: shout | grep -qx 'hello 1.0!'
""",
    )
    repo = tmp_path / "repo"
    progress: list[str] = []
    results = build_recipes(
        [app, greet], config(tmp_path, signing_key_path, repo=repo), progress=progress.append
    )
    assert [r.name for r in results] == ["greet", "shout"]
    shout = results[1]
    # greet needs so:libc.so.6: the repository's stand-in provides it (it installs no files)
    assert shout.environment == ["host-glibc-2.36-r0", "greet-1.0-r0", "greet-dev-1.0-r0"]
    (package,) = shout.packages
    assert "so:libgreet.so.1" in package.info.depends
    assert shout.tests[0].passed  # the test root got greet via shout's so: dependency
    assert any(m.startswith("build [shout] autoconf/make") for m in progress)
    assert (repo / "x86_64" / "shout-2.0-r0.apk").is_file()
    # .melange.yaml: the recipe with its environment locked to what was installed
    from nanodistro.recipe.model import load_recipe_text

    locked = read_apk(package.data, where="shout").control_files[".melange.yaml"].decode()
    pinned = load_recipe_text(locked, ".melange.yaml").environment.contents.packages
    assert pinned[:2] == ["build-base", "pkgconf"]  # toolchain names (+ pipeline needs)
    assert "make" in pinned
    assert pinned[-2:] == ["greet=1.0-r0", "greet-dev=1.0-r0"]  # locked from the repository


def test_network_is_off_during_builds(upstream: Upstream, tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    connected = threading.Event()

    def accept() -> None:
        server.settimeout(20)
        try:
            server.accept()[0].close()
            connected.set()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    recipe = write_recipe(
        tmp_path,
        "netprobe",
        f"""package:
  name: netprobe
  version: "1"
  epoch: 0
  copyright:
    - license: MIT
pipeline:
  - name: phone home
    runs: |
      python3 -c "import socket; socket.create_connection(('127.0.0.1', {port}), 3)"
      echo CONNECTED
""",
    )
    try:
        with pytest.raises(BuildError) as error:
            build_recipe(recipe, config(tmp_path))
    finally:
        server.close()
    assert "step 'phone home'" in str(error.value)
    assert "CONNECTED" not in str(error.value).split("last lines", 1)[1]
    assert not connected.is_set()


def test_python_project_with_build_wheel(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    require_tools("/usr/bin/python3")  # the toolchain's python, not the venv's
    url, sha = upstream.add_tarball(
        "pyhello-0.3.tar.gz",
        {
            "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
            'build-backend = "setuptools.build_meta"\n',
            "setup.cfg": "[metadata]\nname = pyhello\nversion = 0.3\n\n[options]\n"
            "packages = pyhello\n\n[options.entry_points]\nconsole_scripts =\n"
            "    pyhello = pyhello:main\n",
            "pyhello/__init__.py": "def main():\n    print('hello from python')\n",
        },
        top="pyhello-0.3",
    )
    recipe = write_recipe(
        tmp_path / "recipes",
        "py3-pyhello",
        f"""package:
  name: py3-pyhello
  version: "0.3"
  epoch: 0
  description: hello in python
  copyright:
    - license: MIT
environment:
  contents:
    packages: [python3, py3-setuptools, py3-pip]
pipeline:
  - uses: fetch
    with:
      uri: {url}
      expected-sha256: {sha}
  - uses: python/build-wheel
test:
  environment:
    contents:
      packages: [python3]
  pipeline:
    - uses: python/import
      with:
        import: pyhello
    - runs: pyhello | grep -q 'hello from python'
""",
    )
    result = build_recipe(recipe, config(tmp_path, signing_key_path))
    (package,) = result.packages
    paths = [e.path for e in read_apk(package.data, where="py").entries]
    assert any(p.endswith("pyhello/__init__.py") for p in paths)
    assert "usr/bin/pyhello" in paths
    assert not any(p.endswith(".pyc") for p in paths)
    assert "cmd:pyhello=0.3-r0" in package.info.provides
    assert any(d.startswith("python") for d in package.info.depends)
    assert result.tests[0].passed


def test_nanodistro_test_command_against_published_packages(
    upstream: Upstream,
    tmp_path: Path,
    signing_key_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    recipe = write_recipe(tmp_path / "recipes", "greet", greet_recipe(url, sha))
    repo = tmp_path / "repo"
    build_recipes([recipe], config(tmp_path, signing_key_path, repo=repo, run_tests=False))
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["test", str(recipe), "--repo", str(repo)])  # index not trusted: refused
    assert exit_info.value.code == 1
    assert "UNTRUSTED" in capsys.readouterr().err
    public = signing_key_path.with_name(signing_key_path.name + ".pub")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["test", str(recipe), "--repo", str(repo), "--keyring", str(public)])
    assert exit_info.value.code in (None, 0)
    assert capsys.readouterr().out.split() == ["PASS", "greet", "PASS", "greet-dev"]
    shutil.rmtree(tmp_path / "cache")  # tests need no sources


def test_git_checkout_and_patch_from_the_recipe_directory(
    tmp_path: Path, signing_key_path: Path
) -> None:
    from git_helper import git as git_in

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    for name, content in greet_project("2.0").items():
        (upstream / name).write_text(content if isinstance(content, str) else content.decode())
    (upstream / "configure").chmod(0o755)

    def git(*args: str) -> str:
        return git_in(upstream, *args, date=1_710_000_000)

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "release 2.0")
    git("tag", "-a", "v2.0", "-m", "v2.0")
    commit = git("rev-parse", "HEAD")
    recipes = tmp_path / "recipes"
    (recipes / "greet").mkdir(parents=True)
    (recipes / "greet" / "louder.patch").write_text(
        '--- a/greet.c\n+++ b/greet.c\n@@ -1,2 +1,2 @@\n #include "greet.h"\n'
        '-const char *greeting(void) { return "hello 2.0"; }\n'
        '+const char *greeting(void) { return "HELLO 2.0"; }\n'
    )
    text = greet_recipe("x", "0" * 64, test="greet | grep -qx 'HELLO 2.0'")
    fetch_step = text[text.index("  - uses: fetch") : text.index("  - uses: autoconf/configure")]
    text = text.replace(
        fetch_step,
        f"""  - uses: git-checkout
    with:
      repository: file://{upstream}
      tag: v2.0
      expected-commit: {commit}
  - uses: patch
    with:
      patches: louder.patch
""",
    ).replace('version: "1.0"', 'version: "2.0"')
    recipe = write_recipe(recipes, "greet", text)
    result = build_recipe(recipe, config(tmp_path, signing_key_path))
    assert result.tests and all(t.passed for t in result.tests)
    assert result.source_date_epoch == 1_710_000_000  # the checked-out commit's time
    (source,) = result.sources
    assert source.kind == "git" and source.commit == commit and source.tag == "v2.0"
    sbom = json.loads(
        next(
            e.data
            for e in read_apk(result.packages[0].data, where="greet").entries
            if e.path.endswith(".spdx.json")
        )
    )
    source_pkg = next(p for p in sbom["packages"] if p.get("primaryPackagePurpose") == "SOURCE")
    assert {"algorithm": "SHA1", "checksumValue": commit} in source_pkg["checksums"]
    assert commit in source_pkg["externalRefs"][0]["referenceLocator"]  # vcs_url
    # a file:// repository is no location anyone else can fetch (nor valid SPDX there)
    assert source_pkg["downloadLocation"] == "NOASSERTION"


def test_sandbox_has_melange_environment_and_no_keys(
    tmp_path: Path, signing_key_path: Path
) -> None:
    """A build step sees melange's defaults (HOME, GOPATH, cache dirs), the recipe's own
    environment and SOURCE_DATE_EPOCH; neither the signing key nor its directory is visible."""
    recipe = write_recipe(
        tmp_path,
        "envprobe",
        f"""package:
  name: envprobe
  version: "1"
  epoch: 0
  copyright:
    - license: MIT
environment:
  environment:
    CFLAGS: -O2
pipeline:
  - runs: |
      mkdir -p ${{{{targets.destdir}}}}/usr/share/envprobe
      out=${{{{targets.destdir}}}}/usr/share/envprobe
      for v in HOME GOPATH GOMODCACHE PIP_CACHE_DIR npm_config_cache CFLAGS SOURCE_DATE_EPOCH; do
        eval "echo $v=\\$$v" >> $out/env
      done
      if [ -e {signing_key_path} ] || [ -e {signing_key_path.parent} ]; then
        echo visible > $out/key
      else
        echo absent > $out/key
      fi
""",
    )
    result = build_recipe(
        recipe, config(tmp_path, signing_key_path, source_date_epoch=1_650_000_000)
    )
    (package,) = result.packages
    entries = {e.path: e.data for e in read_apk(package.data, where="envprobe").entries}
    env = dict(
        line.split("=", 1) for line in entries["usr/share/envprobe/env"].decode().splitlines()
    )
    assert env == {
        "HOME": "/home/build",
        "GOPATH": "/home/build/.cache/go",
        "GOMODCACHE": "/var/cache/melange/gomodcache",
        "PIP_CACHE_DIR": "/var/cache/melange/pip",
        "npm_config_cache": "/var/cache/melange/npm",
        "CFLAGS": "-O2",
        "SOURCE_DATE_EPOCH": "1650000000",
    }
    assert entries["usr/share/envprobe/key"] == b"absent\n"


VEND_RECIPE = """package:
  name: {name}
  version: "1"
  epoch: 0
  copyright:
    - license: MIT
pipeline:
  - runs: |
      echo 'int vend(void) {{ return 7; }}' > vend.c
      echo 'int vend(void); int main(void) {{ return vend() - 7; }}' > main.c
      gcc -shared -fPIC -Wl,-soname,libvend.so.7 -o libvend.so.7 vend.c
      mkdir -p ${{{{targets.destdir}}}}/usr/bin
      gcc -o ${{{{targets.destdir}}}}/usr/bin/usevend main.c ./libvend.so.7
{subpackages}"""

VEND_SUBPACKAGE = """subpackages:
  - name: {name}-libs
    pipeline:
      - runs: |
          mkdir -p ${{{{targets.subpkgdir}}}}/usr/lib
          cp libvend.so.7 ${{{{targets.subpkgdir}}}}/usr/lib/
"""


def test_so_depends_are_matched_against_built_packages_and_repositories(
    tmp_path: Path, signing_key_path: Path
) -> None:
    """DT_NEEDED becomes so: depends; one that no built package, repository or toolchain
    provides is reported; a built subpackage or a repository package providing it satisfies it."""

    def build(name: str, subpackages: str = "", repo: Path | None = None) -> BuildResult:
        text = VEND_RECIPE.format(name=name, subpackages=subpackages.format(name=name))
        recipe = write_recipe(tmp_path / name, name, text)
        return build_recipe(recipe, config(tmp_path / name, signing_key_path, repo=repo))

    alone = build("vend-alone")
    (main,) = alone.packages
    assert "so:libvend.so.7" in main.info.depends
    assert [w for w in alone.warnings if "so:libvend.so.7" in w]

    split = build("vend-split", VEND_SUBPACKAGE)
    packages = {p.info.name: p.info for p in split.packages}
    assert "so:libvend.so.7" in packages["vend-split"].depends
    assert "so:libvend.so.7=7" in packages["vend-split-libs"].provides
    assert not [w for w in split.warnings if "libvend" in w]

    key = load_signing_key(signing_key_path)
    info = PackageInfo(
        name="libvend", version="7-r0", arch=main.info.arch, provides=["so:libvend.so.7=7"]
    )
    provider = tmp_path / "libvend-7-r0.apk"
    provider.write_bytes(write_apk(info, [], key=key, source_date_epoch=0))
    publish([provider], tmp_path / "repo", key=key)
    from_repo = build("vend-repo", repo=tmp_path / "repo")
    assert "so:libvend.so.7" in from_repo.packages[0].info.depends
    assert not [w for w in from_repo.warnings if "libvend" in w]
