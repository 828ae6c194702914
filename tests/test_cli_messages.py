"""What a newcomer sees when an argument or a setup step is not what nanodistro expects (issue 19):
folders accepted alike by build, lint and graph; a missing path, repository or key named as such
with the command that fixes it; a changed recipe under a published version named field by field;
``resolve --json`` failing as JSON; no Python class names in any message."""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "builder"))

from tiny_recipes import tiny_recipe, write

from cli_runner import run_cli
from registry_server import free_port
from test_cli_errors import assert_error

# Exception classes a message must never show (the CLI prints messages, not Python)
CLASS_NAME = re.compile(
    r"\b(?:[A-Z][A-Za-z]*(?:Error|Exception|Timeout)|KeyError|ValueError|TypeError|"
    r"ValidationError|FileNotFoundError|ImageConfig|Recipe[A-Z][a-z]+|Traceback)\b"
)

IMAGE_CONFIG = "contents:\n  packages: [tiny]\nentrypoint:\n  command: /usr/bin/tiny\n"


def _keygen(root: Path, name: str = "msg", out: str = "keys") -> Path:
    made = run_cli(root, "keygen", "--name", name, "--out", out, "--bits", "2048", "--json")
    assert made.returncode == 0, made.stderr
    return root / json.loads(made.stdout)["private_key"]


# --- folders alike ----------------------------------------------------------------------------


def test_build_lint_and_graph_read_a_folder_alike(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    write(recipes, tiny_recipe())
    (recipes / "tiny").mkdir()  # a source directory beside the recipe is not a recipe
    (recipes / "tiny" / "notes.yaml").write_text("not: a recipe\n")
    (tmp_path / "nanodistro.toml").write_text('[workspace]\nout = "out"\n[keys]\nname = "msg"\n')
    _keygen(tmp_path, "msg")

    lint = run_cli(tmp_path, "lint", ".", "recipes", "recipes/tiny.yaml", "--json")
    assert lint.returncode in (0, 1), lint.stderr
    assert {Path(f["file"]).name for f in json.loads(lint.stdout)} <= {"tiny.yaml"}
    assert "1 recipe(s)" in run_cli(tmp_path, "lint", ".").stderr  # each file once
    graph = run_cli(tmp_path, "graph", ".", "--order", "--no-cache")
    assert graph.returncode == 0, graph.stderr
    assert graph.stdout.strip() == "wave 1 (1): tiny"

    built = run_cli(tmp_path, "build", "recipes", "--no-test")
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out/packages/x86_64/tiny-0.1-r0.apk").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("build", "lint", "graph"):
        assert_error(run_cli(tmp_path, command, "empty"), "empty", "no recipe files (*.yaml)")


# --- recipes changed under a published version ------------------------------------------------


def test_a_changed_recipe_under_a_published_version_names_the_change(tmp_path: Path) -> None:
    key = _keygen(tmp_path)
    recipe = write(tmp_path / "src", tiny_recipe())
    common = ["--repo", "repo", "--key", key, "--no-test", "--no-workspace"]
    first = run_cli(tmp_path, "build", recipe, *common)
    assert first.returncode == 0, first.stderr
    recipe.write_text(
        recipe.read_text()
        .replace("description: a script", "description: a tiny script")
        .replace("echo tiny", "echo tiny too")
    )
    again = run_cli(tmp_path, "build", recipe, *common)
    line = assert_error(
        again, "tiny-0.1-r0.apk is already published from a different recipe", "bump --epoch"
    )
    changed = "changed since the published package's recipe: package.description, pipeline[0]"
    assert f"({changed} (install))" in line, line
    # the same recipe as published is skipped, as before
    recipe.write_text(tiny_recipe())
    same = run_cli(tmp_path, "build", recipe, *common)
    assert same.returncode == 0 and "skipped tiny-0.1-r0" in same.stdout, same.stderr


# --- missing things named as such -------------------------------------------------------------


def test_a_workspace_without_a_signing_key_points_at_keygen(tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text('[workspace]\nname = "acme"\n[keys]\nname = "acme"\n')
    write(tmp_path / "recipes", tiny_recipe())
    result = run_cli(tmp_path, "build", "recipes/tiny.yaml")
    assert_error(
        result, "needs a signing key", "nanodistro keygen --name acme --out keys", "keys/acme-*"
    )
    missing_file = run_cli(
        tmp_path, "build", "recipes/tiny.yaml", "--key", "nope.rsa", "--repo", "r"
    )
    assert_error(missing_file, "nope.rsa", "no such signing key", "nanodistro keygen")
    assert not (tmp_path / "r").exists()


def test_a_missing_repository_is_named_not_a_missing_package(tmp_path: Path) -> None:
    _keygen(tmp_path)
    (tmp_path / "empty-repo").mkdir()
    for repo, says in (("no-such-repo", "repository does not exist"),
                       ("empty-repo", "repository has no x86_64/APKINDEX.tar.gz")):  # fmt: skip
        result = run_cli(
            tmp_path, "resolve", "--repo", repo, "--keyring", "keys", "tiny", "--arch", "x86_64"
        )
        line = assert_error(result, repo, says)
        assert "no such package" not in line
    recipe = write(tmp_path, tiny_recipe())
    built = run_cli(tmp_path, "build", recipe, "-X", "no-such-repo", "--no-workspace")
    assert_error(built, "no-such-repo", "--repository", "repository does not exist")


def test_resolve_json_fails_with_a_json_error_object(tmp_path: Path) -> None:
    _keygen(tmp_path)
    result = run_cli(tmp_path, "resolve", "--repo", "gone", "--keyring", "keys", "x", "--json")
    assert_error(result, "gone", "repository does not exist")
    assert json.loads(result.stdout) == {
        "error": "repository does not exist",
        "where": "gone",
        "line": None,
        "field": None,
    }


@pytest.mark.parametrize("source", ["./gone", "out/images/gone", "gone.tar", "gone"])
def test_image_diff_of_a_missing_path_says_it_does_not_exist(tmp_path: Path, source: str) -> None:
    result = run_cli(tmp_path, "image", "diff", source, source)
    line = assert_error(result, f"{source}: path does not exist")
    assert "registry host" not in line


def test_image_build_of_a_recipe_and_build_of_an_image_config(tmp_path: Path) -> None:
    recipe = write(tmp_path, tiny_recipe())
    result = run_cli(tmp_path, "image", "build", recipe, "--out", "layout")
    assert_error(result, "tiny.yaml:1", "a melange recipe", "not an apko image config",
                 "nanodistro build")  # fmt: skip
    assert not (tmp_path / "layout").exists()
    (tmp_path / "img.yaml").write_text(IMAGE_CONFIG)
    result = run_cli(tmp_path, "build", "img.yaml", "--no-workspace")
    assert_error(result, "img.yaml:1", "an apko image config", "nanodistro image build")


def test_lint_reports_each_finding_once_and_suggests_the_key_meant(tmp_path: Path) -> None:
    typo = tiny_recipe().replace("  description:", "  descripton:")
    write(tmp_path, typo, "typo.yaml")
    result = run_cli(tmp_path, "lint", "typo.yaml", "typo.yaml", ".")
    assert result.returncode == 2
    finding = "typo.yaml:5: error: package.descripton: unknown key (did you mean 'description'?)"
    assert result.stdout.count(finding) == 1, result.stdout
    assert (result.stdout + result.stderr).count("did you mean") == 1
    assert_error(result, "typo.yaml:5: the recipe does not load (1 problem listed above)")
    (tmp_path / "img.yaml").write_text(IMAGE_CONFIG.replace("entrypoint", "entrypont"))
    image = run_cli(tmp_path, "image", "lock", "img.yaml", "--no-workspace")
    assert_error(image, "img.yaml:3", "entrypont: unknown key (did you mean 'entrypoint'?)")


# --- no Python class names ----------------------------------------------------------------------


@pytest.mark.slow  # ~10 s: two dozen processes, two at a time
def test_bad_invocations_show_no_python_class_names(tmp_path: Path) -> None:
    _keygen(tmp_path)
    closed = f"http://127.0.0.1:{free_port()}/repo"
    (tmp_path / "garbage.apk").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "wrong.yaml").write_text("contents:\n  packages: hello\n")
    (tmp_path / "nested.yaml").write_text("package: {name: [x]}\npipeline: 3\n")
    write(tmp_path, tiny_recipe())
    invocations: list[list[str]] = [
        ["resolve", "--repo", closed, "--keyring", "keys", "x"],
        ["resolve", "--repo", closed, "--keyring", "keys", "x", "--json"],
        ["resolve", "--repo", "gone", "--keyring", "keys", "x"],
        ["resolve", "--repo", "gone", "--keyring", "garbage.apk", "x"],
        ["apk", "info", "garbage.apk"],
        ["apk", "verify", "garbage.apk", "--keyring", "keys"],
        ["image", "build", "list.yaml", "--out", "o"],
        ["image", "build", "wrong.yaml", "--out", "o"],
        ["image", "build", "tiny.yaml", "--out", "o"],
        ["image", "diff", "gone", "gone"],
        ["image", "push", "gone", "127.0.0.1:1/x:y"],
        ["build", "nested.yaml", "--no-workspace"],
        ["build", "list.yaml", "--no-workspace"],
        ["build", "tiny.yaml", "--key", "gone.rsa", "--repo", "r", "--no-workspace"],
        ["lint", "nested.yaml", "list.yaml", "gone.yaml"],
        ["graph", "gone"],
        ["monitor", "gone.yaml"],
        ["keygen", "--kind", "dsa"],
        ["publish", "garbage.apk", "--repo", "r", "--key", "gone.rsa"],
        ["sbom", "gone"],
        ["scan", "gone"],
        ["verify", "gone"],
        ["build", "--no-such-option"],
    ]
    # two at a time (the machine's 2 cores): each is a process start plus one failing check
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: run_cli(tmp_path, *args, timeout=120), invocations))
    for args, result in zip(invocations, results, strict=True):
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"{args}: {output}"
        leaked = CLASS_NAME.findall(output)
        assert not leaked, f"nanodistro {' '.join(args)} shows {leaked}:\n{output}"
