"""`nanodistro build` / `nanodistro test` on a tiny recipe (one sandboxed step, no sources)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanodistro.cli import main as cli_main
from nanodistro.formats.apk import read_apk

TINY = """package:
  name: tiny
  version: "0.1"
  epoch: 2
  description: a file and a script
  copyright:
    - license: CC0-1.0
pipeline:
  - runs: |
      mkdir -p ${{targets.destdir}}/usr/bin ${{targets.destdir}}/usr/share/tiny
      printf '#!/bin/sh\\necho tiny\\n' > ${{targets.destdir}}/usr/bin/tiny
      chmod 755 ${{targets.destdir}}/usr/bin/tiny
      echo data > ${{targets.destdir}}/usr/share/tiny/data
test:
  environment:
    contents:
      packages: [busybox]  # the sandbox's sh and grep: the host toolchain stands in for busybox
  pipeline:
    - runs: tiny | grep -qx tiny
"""


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    return int(exit_info.value.code or 0)


def test_build_uses_workspace_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nanodistro.trust.keys import generate_key

    (tmp_path / "nanodistro.toml").write_text(
        '[workspace]\nname = "t"\n[keys]\ndir = "keys"\nname = "t"\n[sources]\ncache = "cache"\n'
    )
    generate_key("t", tmp_path / "keys", bits=2048)
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "tiny.yaml"
    recipe.write_text(TINY)
    assert run_cli(["build", str(recipe), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    repo = tmp_path / "out" / "packages" / "x86_64"
    assert result["published"] == [str(repo / "tiny-0.1-r2.apk")]
    assert result["tests"] == [{"package": "tiny", "passed": True}]
    data = (repo / "tiny-0.1-r2.apk").read_bytes()
    info = read_apk(data, where="tiny").info
    assert info.provides == ["cmd:tiny=0.1-r2"]
    assert info.depends == []  # a #!/bin/sh shebang needs nothing (melange's getShbang skips sh)
    assert (repo / "APKINDEX.tar.gz").is_file()
    # the test command finds the package in the workspace repository and trusts its keys
    assert run_cli(["test", str(recipe)]) == 0
    assert capsys.readouterr().out.split() == ["PASS", "tiny"]


def test_build_without_repo_writes_out_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    out = tmp_path / "pkgs"
    assert run_cli(["build", str(recipe), "--out", str(out), "--no-test"]) == 0
    assert capsys.readouterr().out.split() == [str(out / "x86_64" / "tiny-0.1-r2.apk")]


def test_repo_without_key_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    assert run_cli(["build", str(recipe), "--repo", str(tmp_path / "r"), "--no-workspace"]) == 1
    assert "needs a signing key: pass --key" in capsys.readouterr().err


def test_bad_recipe_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(TINY.replace("  - runs: |\n", "  - uses: no/such\n    runs: |\n", 1))
    assert run_cli(["build", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bad.yaml:" in err


def test_foreign_arch_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nanodistro.util.host import host_arch

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    other = "aarch64" if host_arch() != "aarch64" else "x86_64"
    assert run_cli(["build", str(recipe), "--arch", other, "--no-test"]) == 1
    assert f"cannot build for {other}" in capsys.readouterr().err


def test_package_commit_defaults_to_the_recipe_commit(tmp_path: Path) -> None:
    from git_helper import git
    from nanodistro.builder.orchestrate import BuildConfig, build_recipe

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    for args in (["init", "-q"], ["add", "tiny.yaml"], ["commit", "-qm", "tiny"]):
        git(tmp_path, *args, date=1_650_000_000)
    head = git(tmp_path, "rev-parse", "HEAD")
    result = build_recipe(recipe, BuildConfig(run_tests=False, source_cache=tmp_path / "c"))
    (package,) = result.packages
    assert package.info.commit == head
    assert result.source_date_epoch == 1_650_000_000  # the recipe's last commit time
    assert package.info.builddate == 1_650_000_000


def test_setcap_lands_in_the_package(tmp_path: Path) -> None:
    from nanodistro.builder.orchestrate import BuildConfig, build_recipe

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        TINY.replace(
            "  copyright:\n",
            "  setcap:\n    - path: /usr/bin/tiny\n      add: {cap_net_bind_service: '+ep'}\n"
            "      reason: binds port 80\n  copyright:\n",
        )
    )
    result = build_recipe(recipe, BuildConfig(run_tests=False, source_cache=tmp_path / "c"))
    entries = {e.path: e for e in read_apk(result.packages[0].data, where="tiny").entries}
    assert entries["usr/bin/tiny"].xattrs == {
        "security.capability": bytes.fromhex("0100000200040000000000000000000000000000")
    }
    assert entries["usr/share/tiny/data"].xattrs == {}


def test_overall_build_timeout(tmp_path: Path) -> None:
    from nanodistro.builder.orchestrate import BuildConfig, build_recipe
    from nanodistro.errors import BuildError

    recipe = tmp_path / "slow.yaml"
    recipe.write_text(
        TINY.replace("  - runs: |\n", "  - name: nap\n    runs: |\n      sleep 60\n", 1)
    )
    with pytest.raises(BuildError) as error:
        build_recipe(
            recipe,
            BuildConfig(
                run_tests=False, build_timeout=2, source_cache=tmp_path, workspace_dir=tmp_path
            ),
        )
    assert "step 'nap'" in str(error.value) and "timed out" in str(error.value)
