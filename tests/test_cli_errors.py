"""Bad and hostile input to every command: one ``error:`` line naming the culprit, no traceback.

The contract (README "Command line"): an error prints one line on stderr, ``error: <file>[:<line>]:
<what>``, and exits non-zero; progress lines may come before it, partial output may not be left
behind. ``lint`` adds that line when a recipe does not load; its findings stay a report on stdout.
``monitor`` is a report: a failing upstream is an error for its recipe, not for the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_runner import run_cli
from registry_server import free_port

EPOCH = "1700000000"


def assert_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 1 or 2, exactly one ``error:`` line (the last on stderr) containing ``expected``."""
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode in (1, 2), output  # 1: failure, 2: usage; not a crash or signal
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    for text in expected:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"
    return errors[0]


@dataclass
class Workdir:
    root: Path
    key: Path  # private
    keyring: Path  # directory holding the public key
    good_apk: Path
    truncated_apk: Path
    repo: Path


RECIPE_WITH_BAD_KEY = """\
package:
  name: hello
  version: 1.0.0
  epoch: 0
  description: hello
  colour: blue
  copyright:
    - license: MIT
pipeline:
  - runs: echo hello
update:
  enabled: false
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    root = tmp_path_factory.mktemp("errors")
    keygen = run_cli(root, "keygen", "--name", "err", "--out", "keys", "--bits", "2048", "--json")
    assert keygen.returncode == 0, keygen.stderr
    paths = json.loads(keygen.stdout)
    (root / "tree/usr/bin").mkdir(parents=True)
    (root / "tree/usr/bin/hello").write_text("#!/bin/sh\necho hello\n")
    good = root / "hello-1.0-r0.apk"
    packed = run_cli(root, "apk", "pack", "tree", "--name", "hello", "--version", "1.0-r0",
                     "--depends", "libmissing", "--key", paths["private_key"], "--out", good,
                     "--source-date-epoch", EPOCH)  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    truncated = root / "truncated.apk"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    # a repository with a package whose dependency nothing provides, on purpose (resolve errors)
    published = run_cli(
        root, "publish", good, "--repo", "repo", "--key", paths["private_key"], "--allow-missing"
    )
    assert published.returncode == 0, published.stderr
    (root / "not-a-recipe.yaml").write_text("foo: bar\nlist: [1, 2]\n")
    (root / "bad-key.yaml").write_text(RECIPE_WITH_BAD_KEY)
    (root / "garbage.txt").write_text("not a key, not a package\n")
    return Workdir(root, root / paths["private_key"], root / "keys", good, truncated, root / "repo")


# --- packages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["apk", "info"], ["apk", "verify", "--keyring", "keys"], ["publish", "--repo", "new-repo"]],
    ids=["apk info", "apk verify", "publish"],
)
def test_truncated_apk(work: Workdir, command: list[str]) -> None:
    extra = ["--key", str(work.key)] if command[0] == "publish" else []
    result = run_cli(work.root, *command, work.truncated_apk, *extra)
    assert_error(result, "truncated.apk", "truncated")
    assert not (work.root / "new-repo" / "x86_64").exists(), "publish left a partial repository"


@pytest.mark.parametrize(
    "command",
    [
        ["apk", "info", "missing.apk"],
        ["apk", "verify", "missing.apk", "--keyring", "keys"],
        ["publish", "missing.apk", "--repo", "new-repo", "--key", "KEY"],
        [
            "apk",
            "pack",
            "missing-dir",
            "--name",
            "x",
            "--version",
            "1-r0",
            "--key",
            "KEY",
            "--out",
            "x.apk",
        ],
        ["index", "missing-dir/x86_64", "--key", "KEY"],
        ["build", "missing.yaml", "--out", "packages"],
        ["test", "missing.yaml"],
        ["bump", "missing.yaml", "2.0"],
        ["image", "build", "missing.yaml", "--out", "layout"],
        ["image", "lock", "missing.yaml"],
        ["image", "diff", "missing-a", "missing-b"],
        ["image", "push", "missing-layout", "127.0.0.1:5000/x:y"],
        ["graph", "missing-dir", "--order"],
        ["monitor", "missing.yaml"],
        ["resolve", "--repo", "repo", "--keyring", "missing-keys", "hello"],
        ["catalog", "build", "missing-dir"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_missing_file(work: Workdir, command: list[str]) -> None:
    args = [str(work.key) if word == "KEY" else word for word in command]
    result = run_cli(work.root, *args)
    missing = next(word for word in command if word.startswith("missing"))
    assert_error(result, missing.split("/")[0])


def test_wrong_kind_of_key_file(work: Workdir) -> None:
    for args in (
        ["publish", work.good_apk, "--repo", "new-repo", "--key", "garbage.txt"],
        ["apk", "verify", work.good_apk, "--keyring", "garbage.txt"],
        ["resolve", "--repo", "repo", "--keyring", "garbage.txt", "hello"],
    ):
        assert_error(run_cli(work.root, *args), "garbage.txt")


def test_output_below_a_regular_file(work: Workdir) -> None:
    """An --out that cannot be created is an error naming it, not an OSError traceback."""
    for args in (
        ["keygen", "--out", "garbage.txt/keys", "--bits", "2048"],
        [
            "apk",
            "pack",
            "tree",
            "--name",
            "x",
            "--version",
            "1-r0",
            "--key",
            work.key,
            "--out",
            "garbage.txt/x.apk",
        ],
    ):
        assert_error(run_cli(work.root, *args), "garbage.txt")


# --- recipes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["build", "--out", "packages"], ["test"]])
def test_build_rejects_non_recipe_and_unknown_key(work: Workdir, command: list[str]) -> None:
    line = assert_error(run_cli(work.root, command[0], "not-a-recipe.yaml", *command[1:]))
    assert "not-a-recipe.yaml:1" in line and "foo" in line and "unknown key" in line
    line = assert_error(run_cli(work.root, command[0], "bad-key.yaml", *command[1:]))
    assert "bad-key.yaml:6" in line and "package.colour" in line
    assert not (work.root / "packages").exists()


def test_build_unreachable_source(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/fetchy-1.0.0.tar.gz"
    (tmp_path / "fetchy.yaml").write_text(
        "package:\n  name: fetchy\n  version: 1.0.0\n  epoch: 0\n  description: f\n"
        "  copyright:\n    - license: MIT\n"
        f"pipeline:\n  - uses: fetch\n    with:\n      uri: {url}\n"
        f"      expected-sha256: {'0' * 64}\n"
        "update:\n  enabled: false\n"
    )
    result = run_cli(
        tmp_path, "build", "fetchy.yaml", "--out", "packages", "--source-cache", "sources"
    )
    assert_error(result, url)
    assert not (tmp_path / "packages").exists()


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("not-a-recipe.yaml", ["not-a-recipe.yaml:1", "foo", "unknown key"]),
        ("bad-key.yaml", ["bad-key.yaml:6", "package.colour", "unknown key"]),
        ("missing.yaml", ["missing.yaml"]),
    ],
)
def test_lint_of_an_unloadable_recipe(work: Workdir, recipe: str, expected: list[str]) -> None:
    # the findings are the report (stdout, FILE:LINE: severity: message [rule]); a recipe that
    # does not load also gets the one error: line and exit 2 (documented in `lint --help`),
    # which points at the findings instead of repeating one (each finding is reported once)
    result = run_cli(work.root, "lint", recipe)
    assert result.returncode == 2
    assert_error(result, expected[0], "the recipe does not load", "listed above")
    finding = next(line for line in result.stdout.splitlines() if line.startswith(expected[0]))
    assert all(text in finding for text in expected), finding
    assert (result.stdout + result.stderr).count(finding.split(": error: ")[1]) == 1


def test_lint_json_names_file_line_and_key(work: Workdir) -> None:
    result = run_cli(work.root, "lint", "not-a-recipe.yaml", "bad-key.yaml", "--json")
    assert_error(result, "2 recipes do not load", "not-a-recipe.yaml", "bad-key.yaml")
    assert result.returncode == 2
    by_file: dict[str, list[dict[str, object]]] = {}
    for finding in json.loads(result.stdout):
        by_file.setdefault(Path(str(finding["file"])).name, []).append(finding)
    assert any(
        f["line"] == 1 and "foo" in str(f["message"]) and f["severity"] == "error"
        for f in by_file["not-a-recipe.yaml"]
    )
    assert any(
        f["line"] == 6 and "package.colour" in str(f["message"]) for f in by_file["bad-key.yaml"]
    )


def test_graph_order_names_the_cycle(work: Workdir, tmp_path: Path) -> None:
    for name, needs in (("alpha", "beta"), ("beta", "gamma"), ("gamma", "alpha")):
        (tmp_path / f"{name}.yaml").write_text(
            f"package:\n  name: {name}\n  version: 1.0.0\n  epoch: 0\n  description: {name}\n"
            "  copyright:\n    - license: MIT\n"
            f"environment:\n  contents:\n    packages: [{needs}-dev]\n"
            "pipeline:\n  - runs: make\n"
            f"subpackages:\n  - name: {name}-dev\n    pipeline:\n      - runs: make install\n"
            "update:\n  enabled: false\n"
        )
    # a repository without any of them: no build edge can be cut (without --repo the
    # packages are assumed published and the cycle is broken, graph/bootstrap.py)
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "APKINDEX").write_text("P:busybox\nV:1-r0\n\n")
    result = run_cli(tmp_path, "graph", ".", "--order", "--no-cache", "--repo", "published")
    line = assert_error(result, "cycle")
    assert all(name in line for name in ("alpha", "beta", "gamma")), line


def test_monitor_reports_a_closed_upstream_for_its_recipe(tmp_path: Path) -> None:
    port = free_port()
    # "[/x]" in the URL: the report must print it, not parse it as Rich markup
    recipe = (
        "package:\n  name: NAME\n  version: 1.0.0\n  epoch: 0\n  description: d\n"
        "  copyright:\n    - license: MIT\npipeline:\n  - runs: make\n"
        "update:\n  enabled: ENABLED\n  http-regex:\n"
        f"    url: http://127.0.0.1:{port}/[/x]/\n    pattern: NAME-([0-9.]+)\\.tar\\.gz\n"
    )
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "closed.yaml").write_text(
        recipe.replace("NAME", "closed").replace("ENABLED", "true")
    )
    (recipes / "quiet.yaml").write_text(recipe.replace("NAME", "quiet").replace("ENABLED", "false"))
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "nanodistro", "monitor", "recipes", "--cache-dir"]
    # both forms at once: each waits out the client's retries against the closed port
    runs = [
        subprocess.Popen(
            [*command, str(tmp_path / f"cache-{n}"), *extra],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, extra in enumerate((["--json"], []))
    ]
    (json_out, json_err), (text_out, text_err) = (run.communicate(timeout=120) for run in runs)
    assert [run.returncode for run in runs] == [1, 1], json_err + text_err
    assert "Traceback" not in json_err + text_err
    report = json.loads(json_out)
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["closed"]["status"] == "error"
    assert f"127.0.0.1:{port}/[/x]/" in by_name["closed"]["message"]
    assert by_name["quiet"]["status"] == "disabled"  # the other recipe is still reported
    assert report["errors"] == 1
    assert f"closed: http://127.0.0.1:{port}/[/x]/" in text_out


# --- repositories and resolution ----------------------------------------------------------------


def test_resolve_unreachable_repository(work: Workdir) -> None:
    url = f"http://127.0.0.1:{free_port()}/repo"
    result = run_cli(work.root, "resolve", "--repo", url, "--keyring", "keys", "hello")
    assert_error(result, url)


@pytest.mark.parametrize(
    ("atom", "explains"),
    [
        ("nosuch", ["nosuch", "no such package"]),
        ("hello", ["libmissing", "nothing provides"]),
        ("hello>=9", ["hello>=9", "1.0-r0"]),
    ],
)
def test_resolve_unsatisfiable_explains_what_is_missing(
    work: Workdir, atom: str, explains: list[str]
) -> None:
    result = run_cli(work.root, "resolve", "--repo", "repo", "--keyring", "keys", atom)
    assert_error(result, *explains)
    assert result.stdout == "", "partial output on an unsatisfiable world"


def test_resolve_untrusted_index(work: Workdir, tmp_path: Path) -> None:
    stranger = run_cli(tmp_path, "keygen", "--name", "stranger", "--out", "k", "--bits", "2048")
    assert stranger.returncode == 0
    result = run_cli(work.root, "resolve", "--repo", "repo", "--keyring", tmp_path / "k", "hello")
    assert_error(result, "APKINDEX.tar.gz", "UNTRUSTED")


# --- images ------------------------------------------------------------------------------------


BAD_CONFIGS = {
    "wrong-type.yaml": ("contents:\n  packages: hello\n", ":2", "contents.packages"),
    "unknown-key.yaml": ("contents:\n  packages: [hello]\nentrypont: {}\n", ":3", "entrypont"),
    "broken.yaml": ("contents: [\n", "broken.yaml", "YAML"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("command", ["build", "lock"])
def test_image_bad_config(work: Workdir, tmp_path: Path, name: str, command: str) -> None:
    text, *expected = BAD_CONFIGS[name]
    config = tmp_path / name
    config.write_text(text)
    result = run_cli(work.root, "image", command, config, "--out", tmp_path / "out")
    assert_error(result, name, *expected)
    assert not (tmp_path / "out").exists(), "partial output left behind"


def test_image_build_unsatisfiable_package(work: Workdir, tmp_path: Path) -> None:
    config = tmp_path / "img.yaml"
    keyfile = next(work.keyring.glob("*.pub"))
    config.write_text(
        f"contents:\n  keyring: [{keyfile}]\n  repositories: [{work.repo}]\n"
        "  packages: [nosuch]\narchs: [x86_64]\n"
    )
    result = run_cli(work.root, "image", "build", config, "--out", tmp_path / "out")
    assert_error(result, "nosuch")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ("  keyring: [KEY]\n  repositories: [http://127.0.0.1:PORT/repo]\n", ["127.0.0.1:PORT"]),
        ("  keyring: [./no-such-key.pub]\n  repositories: [REPO]\n", ["no-such-key.pub"]),
        ("  keyring: [KEY]\n  repositories: [REPO]\narchs: [mips]\n", ["archs", "mips"]),
    ],
    ids=["unreachable repository", "missing key", "unknown arch"],
)
def test_image_build_bad_sources(
    work: Workdir, tmp_path: Path, contents: str, expected: list[str]
) -> None:
    port = str(free_port())
    keyfile = str(next(work.keyring.glob("*.pub")))
    text = contents.replace("KEY", keyfile).replace("REPO", str(work.repo)).replace("PORT", port)
    config = tmp_path / "img.yaml"
    config.write_text("contents:\n  packages: [lone]\n" + text)
    result = run_cli(tmp_path, "image", "build", config, "--out", "out")
    assert_error(result, *[e.replace("PORT", port) for e in expected])
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def layout(work: Workdir) -> Path:
    """A real OCI layout (a package without dependencies), to push with bad references."""
    (work.root / "lone/usr/share").mkdir(parents=True)
    (work.root / "lone/usr/share/lone").write_text("lone\n")
    pack: list[str | Path] = ["apk", "pack", "lone", "--name", "lone", "--version", "1-r0"]
    pack += ["--key", work.key, "--out", "lone-1-r0.apk", "--source-date-epoch", EPOCH]
    publish: list[str | Path] = ["publish", "lone-1-r0.apk", "--repo", "repo", "--key", work.key]
    for args in (pack, publish):
        assert run_cli(work.root, *args).returncode == 0
    keyfile = next(work.keyring.glob("*.pub"))
    (work.root / "lone.yaml").write_text(
        f"contents:\n  keyring: [{keyfile}]\n  repositories: [{work.repo}]\n"
        "  packages: [lone]\narchs: [x86_64]\n"
    )
    built = run_cli(work.root, "image", "build", "lone.yaml", "--out", "lone-layout", "-q")
    assert built.returncode == 0, built.stderr
    return work.root / "lone-layout"


@pytest.mark.parametrize(
    "reference",
    ["UPPER/case:tag", "127.0.0.1:5000/repo:bad tag!", "127.0.0.1:5000/repo@sha256:short", ""],
)
def test_image_push_bad_reference(work: Workdir, layout: Path, reference: str) -> None:
    result = run_cli(work.root, "image", "push", layout, reference)
    assert_error(result, reference)


def test_image_push_to_closed_port(work: Workdir, layout: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    result = run_cli(work.root, "image", "push", layout, f"{host}/x:y")
    assert_error(result, host)


def test_image_diff_of_non_images(work: Workdir) -> None:
    result = run_cli(work.root, "image", "diff", "garbage.txt", work.truncated_apk)
    assert_error(result, "garbage.txt")


# --- workspace -------------------------------------------------------------------------------


def test_catalog_broken_workspace_file(tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text("arches = [\n")
    result = run_cli(tmp_path, "catalog", "build", ".")
    assert_error(result, "nanodistro.toml", "TOML")


# --- hostile YAML --------------------------------------------------------------------------------


def alias_bomb(levels: int = 8) -> str:
    """A ~1 KB YAML file that expands to 9**levels scalars ("billion laughs")."""
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]")
    return "\n".join(lines) + f"\npackage: *l{levels}\ncontents:\n  packages: *l{levels}\n"


@pytest.mark.parametrize(
    "command",
    [
        ["build", "--out", "packages"],
        ["test"],
        ["image", "build", "--out", "out"],
        ["image", "lock", "--out", "out.json"],
    ],
    ids=["build", "test", "image build", "image lock"],
)
def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    words = command.index("--out") if "--out" in command else len(command)
    args = [*command[:words], "bomb.yaml", *command[words:]]
    assert_error(run_cli(tmp_path, *args), "bomb.yaml", "alias bomb")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.json").exists()


def test_lint_reports_an_alias_bomb(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    result = run_cli(tmp_path, "lint", "bomb.yaml", "--json")
    assert_error(result, "bomb.yaml", "alias bomb")
    assert result.returncode == 2
    (finding,) = json.loads(result.stdout)
    assert finding["rule"] == "load-error" and "alias bomb" in finding["message"]


# --- text that looks like Rich markup ----------------------------------------------------------
# Output goes through Rich; user text such as "[/x]" must be printed, not parsed as a closing tag
# (which raised MarkupError with a traceback).


def test_markup_in_a_recipe_key_is_printed_by_lint(tmp_path: Path) -> None:
    (tmp_path / "markup.yaml").write_text(RECIPE_WITH_BAD_KEY.replace("colour", '"[/x]"'))
    result = run_cli(tmp_path, "lint", "markup.yaml")
    assert_error(result, "markup.yaml:6", "the recipe does not load")
    assert "markup.yaml:6: error: package.[/x]: unknown key" in result.stdout


def test_markup_in_a_repository_url_is_printed_by_resolve(work: Workdir) -> None:
    url = f"http://127.0.0.1:{free_port()}/[/x]"
    result = run_cli(work.root, "resolve", "--repo", url, "--keyring", "keys", "hello")
    assert_error(result, f"{url}/x86_64/APKINDEX.tar.gz")


def test_markup_in_a_package_name_is_printed_by_graph(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        'package:\n  name: "x[/y]"\n  version: 1.0.0\n  epoch: 0\n  description: x\n'
        "pipeline:\n  - runs: make\n"
    )
    order = run_cli(tmp_path, "graph", ".", "--order", "--no-cache")
    assert order.returncode == 0, order.stderr
    assert order.stdout.strip() == "wave 1 (1): x[/y]"
    (tmp_path / "broken.yaml").write_text("package: [\n")
    skipped = run_cli(tmp_path, "graph", ".", "--order", "--no-cache")
    assert_error(skipped, "broken.yaml:2", "invalid YAML")


def test_alias_bomb_to_graph_and_bump(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "bomb.yaml").write_text(alias_bomb())
    graph = run_cli(tmp_path, "graph", "recipes", "--order", "--no-cache")
    assert_error(graph, "bomb.yaml", "alias bomb")
    bump = run_cli(tmp_path, "bump", "recipes/bomb.yaml", "2.0", "--dry-run")
    assert_error(bump, "bomb.yaml", "alias bomb")


# --- usage errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["apk", "pack"], ["Missing argument", "apk pack --help"]),
        (["resolve", "hello"], ["--repo"]),
        (["no-such-command"], ["no-such-command"]),
        (["keygen", "--bits", "many"], ["--bits", "integer"]),
        (["apk", "verify", "x.apk", "--keyring"], ["--keyring"]),
        (["image", "build", "x.yaml", "--out", "o", "--no-such-flag"], ["--no-such-flag"]),
    ],
    ids=[
        "missing argument",
        "missing option",
        "unknown command",
        "bad value",
        "no value",
        "unknown option",
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    result = run_cli(tmp_path, *args)
    assert result.returncode == 2
    assert_error(result, *expected)
    assert list(tmp_path.iterdir()) == []
