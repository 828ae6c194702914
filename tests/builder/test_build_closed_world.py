"""Recipe tests run in a closed world (DESIGN.md invariant 6), with real sandbox builds (slow).

A test root holds the just-built package under test, the test's declared packages and their
closure from the repositories and the packages just built, nothing else: a dependency nothing
provides fails the test even when the host has the file, a just-built package that cannot be
installed is never replaced by an older published one, and the host toolchain is there only
when the test declares a name it stands in for.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from build_testlib import Upstream, greet_project, greet_recipe
from test_build_end_to_end import config, write_recipe

from nanodistro.builder.orchestrate import build_recipe, build_recipes, write_packages
from nanodistro.builder.orchestrate import test_recipe as run_recipe_tests
from nanodistro.cli import main as cli_main
from nanodistro.errors import BuildError
from nanodistro.repo.repository import publish
from nanodistro.trust.keys import load_signing_key
from needs_tools import require_tools

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tools("bwrap", "gcc", "busybox")


def test_dev_package_whose_dependency_nothing_provides_fails_its_test(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    # greet.pc says Requires.private: zlib, so greet-dev depends on pc:zlib; the host has
    # zlib.pc (zlib1g-dev), which used to satisfy it, but no package in this world provides it
    url, sha = upstream.add_tarball(
        "greet-1.0.tar.gz", greet_project(pc_requires="zlib"), top="greet-1.0"
    )
    recipe = write_recipe(tmp_path / "recipes", "greet", greet_recipe(url, sha))
    progress: list[str] = []
    with pytest.raises(BuildError) as error:
        build_recipe(recipe, config(tmp_path, signing_key_path), progress=progress.append)
    message = str(error.value)
    assert message.startswith(f"{recipe}: test failed: testing greet-dev-1.0-r0 (sha256:")
    assert "pc:zlib" in message
    # greet itself passed first; the test named the exact package it tested
    assert any(m.startswith("test [greet] testing greet-1.0-r0 (sha256:") for m in progress)


def test_bumped_package_that_cannot_be_installed_is_never_replaced_by_the_published_one(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    old_url, old_sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    old = write_recipe(tmp_path / "old", "greet", greet_recipe(old_url, old_sha))
    published = build_recipe(old, config(tmp_path, signing_key_path, run_tests=False))
    files = write_packages(published, tmp_path / "published")
    # greet links against the host's glibc, which no package here provides: published as is
    publish(files, repo, load_signing_key(signing_key_path), allow_missing=True)
    # the bump: greet-dev 2.0 needs pc:zlib, which nothing provides; greet-dev 1.0 is published
    new_url, new_sha = upstream.add_tarball(
        "greet-2.0.tar.gz", greet_project("2.0", pc_requires="zlib"), top="greet-2.0"
    )
    text = greet_recipe(new_url, new_sha, test="greet | grep -qx 'hello 2.0'")
    new = write_recipe(tmp_path / "new", "greet", text.replace('version: "1.0"', 'version: "2.0"'))
    with pytest.raises(BuildError) as error:
        build_recipes([new], config(tmp_path, signing_key_path, repo=repo, keep_workspace=True))
    message = str(error.value)
    assert (
        f"greet-dev: the resolver picked 1.0-r0 from {repo} instead of the just-built 2.0-r0 "
        "(pc:zlib has no provider)"
    ) in message
    assert "testing greet-dev-2.0-r0 (sha256:" in message
    assert sorted(p.name for p in (repo / "x86_64").glob("*.apk")) == [
        "greet-1.0-r0.apk",
        "greet-dev-1.0-r0.apk",
        "greet-doc-1.0-r0.apk",
    ]

    # `nanodistro test --package` the new .apk: the same refusal, no test of the old package
    built = tmp_path / "built"
    built.mkdir()
    result = build_recipe(new, config(tmp_path, signing_key_path, repo=repo, run_tests=False))
    dev = next(p for p in result.packages if p.info.name == "greet-dev")
    (built / dev.filename).write_bytes(dev.data)
    public = signing_key_path.with_name(signing_key_path.name + ".pub")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(
            [
                "test",
                str(new),
                "--repo",
                str(repo),
                "--keyring",
                str(public),
                "--package",
                str(built / dev.filename),
            ]
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "greet-dev: the resolver picked 1.0-r0" in err and "just-built 2.0-r0" in err


SHELL_RECIPE = """package:
  name: mini-sh
  version: "1.0"
  epoch: 0
  description: a static shell (the host's busybox-static)
  copyright:
    - license: GPL-2.0-only
environment:
  contents:
    packages: [build-base]
pipeline:
  - runs: |
      install -D -m 0755 "$(command -v busybox)" ${{targets.destdir}}/bin/busybox
      ln -s busybox ${{targets.destdir}}/bin/sh
test:
{environment}  pipeline:
    - runs: |
        echo probing for gcc
        command -v gcc
"""


def test_host_toolchain_only_when_the_test_declares_it(
    tmp_path: Path, signing_key_path: Path
) -> None:
    undeclared = write_recipe(tmp_path / "a", "mini-sh", SHELL_RECIPE.replace("{environment}", ""))
    progress: list[str] = []
    with pytest.raises(BuildError) as error:
        build_recipe(undeclared, config(tmp_path / "a", signing_key_path), progress=progress.append)
    message = str(error.value)
    assert "testing mini-sh-1.0-r0 (sha256:" in message
    assert "exited with status 1" in message  # gcc is not there: the host is not mounted
    # the excerpt shows the failing line (it printed nothing itself) and what was tested
    excerpt = message.split("last lines of ", 1)[1].split(":\n", 1)[1]
    assert "+ command -v gcc" in excerpt
    log = Path(message.split("last lines of ", 1)[1].split(":\n", 1)[0])
    assert log.read_text().startswith("nanodistro: testing mini-sh-1.0-r0 (sha256:")
    assert any("testing mini-sh-1.0-r0" in m and "host toolchain" not in m for m in progress)

    declared = write_recipe(
        tmp_path / "b",
        "mini-sh",
        SHELL_RECIPE.replace(
            "{environment}", "  environment:\n    contents:\n      packages: [gcc]\n"
        ),
    )
    progress.clear()
    result = build_recipe(
        declared, config(tmp_path / "b", signing_key_path), progress=progress.append
    )
    assert [t.passed for t in result.tests] == [True]
    assert any("with the host toolchain for gcc" in m for m in progress)


def test_a_test_root_without_a_shell_is_named(tmp_path: Path, signing_key_path: Path) -> None:
    text = SHELL_RECIPE.replace("{environment}", "").replace(
        "      ln -s busybox ${{targets.destdir}}/bin/sh\n", ""
    )
    recipe = write_recipe(tmp_path, "mini-sh", text)
    with pytest.raises(BuildError) as error:
        build_recipe(recipe, config(tmp_path, signing_key_path))
    assert "the test root has no /bin/sh" in str(error.value)
    assert "test.environment.contents.packages" in str(error.value)


def test_test_recipe_tests_only_the_given_packages(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    """``--package greet-dev.apk``: greet's test is skipped rather than run against some other
    greet; greet-dev's closure takes the just-built greet from the given files only."""
    url, sha = upstream.add_tarball("greet-1.0.tar.gz", greet_project(), top="greet-1.0")
    recipe = write_recipe(tmp_path / "recipes", "greet", greet_recipe(url, sha))
    built = build_recipe(recipe, config(tmp_path, signing_key_path, run_tests=False))
    out = tmp_path / "apks"
    out.mkdir()
    dev = next(p for p in built.packages if p.info.name == "greet-dev")
    (out / dev.filename).write_bytes(dev.data)
    progress: list[str] = []
    with pytest.raises(BuildError) as error:  # greet-dev needs greet, which is nowhere
        run_recipe_tests(
            recipe,
            config(tmp_path, signing_key_path),
            packages=[out / dev.filename],
            progress=progress.append,
        )
    assert "test [greet] skipped: not among the packages under test" in progress
    assert "testing greet-dev-1.0-r0" in str(error.value) and "greet" in str(error.value)
    main = next(p for p in built.packages if p.info.name == "greet")
    (out / main.filename).write_bytes(main.data)
    result = run_recipe_tests(
        recipe,
        config(tmp_path, signing_key_path),
        packages=[out / dev.filename, out / main.filename],
    )
    assert {t.package: t.passed for t in result.tests} == {"greet": True, "greet-dev": True}
