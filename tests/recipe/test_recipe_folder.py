"""Real-world recipe folders: keys left empty mean "none" (melange decodes a YAML null into the
zero value), and YAML that is not a recipe (``.yam.yaml``, dot files, no ``package:``) is skipped
with one note by ``lint``, ``graph``, ``build`` and the corpus loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cli_runner import run_cli
from fixture_paths import FIXTURES
from nanodistro.graph.corpus import load_corpus
from nanodistro.recipe.folder import skip_reason
from nanodistro.recipe.model import load_recipe, load_recipe_text
from nanodistro.recipe.yamlsource import load_data

SAMPLE = FIXTURES / "wolfi-os-sample"

EMPTY_KEYS = """\
package:
  name: empty-keys
  version: 1.0.0
  epoch: 0
  description: every list/map key left empty
  dependencies:
    runtime:
    provides:
    replaces:
environment:
  contents:
    repositories:
    keyring:
    packages:
  environment:
pipeline:
  - uses: autoconf/make
    with:
  - runs: make install
subpackages:
  - name: empty-keys-dev
    dependencies:
      runtime:
    pipeline:
test:
  environment:
    contents:
      packages:
  pipeline:
    - runs: true
update:
  enabled: true
  ignore-regex-patterns:
  release-monitor:
    identifier: 1234
"""


def test_empty_keys_mean_none() -> None:
    recipe = load_recipe_text(EMPTY_KEYS, "empty-keys.yaml")
    assert recipe.package.dependencies.runtime == []
    assert recipe.package.dependencies.provides == []
    assert recipe.environment.contents.repositories == []
    assert recipe.environment.contents.packages == []
    assert recipe.environment.environment == {}
    assert recipe.pipeline[0].with_ == {}
    assert recipe.subpackages[0].dependencies.runtime == []
    assert recipe.subpackages[0].pipeline == []
    assert recipe.test is not None and recipe.test.environment.contents.packages == []


def test_null_spellings_and_quoted_text() -> None:
    # `key:`, `key: ~` and `key: null` are null; a quoted "~" or "" is the text itself
    data = load_data('a:\nb: ~\nc: null\nd: "~"\ne: ""\nf: [~, x]\n', "x.yaml")
    assert data == {"a": None, "b": None, "c": None, "d": "~", "e": "", "f": [None, "x"]}


def _blank_keys(source: Path, target: Path) -> None:
    """A real recipe with its list/map keys emptied as Wolfi recipes sometimes leave them."""
    document = yaml.safe_load(source.read_text())
    package = document["package"]
    package["dependencies"] = {"runtime": None, "provides": None}
    environment = document.setdefault("environment", {}) or {}
    document["environment"] = environment
    environment["contents"] = {**(environment.get("contents") or {}), "repositories": None}
    for step in document.get("pipeline") or []:
        if "uses" in step and "with" not in step:
            step["with"] = None
    for sub in document.get("subpackages") or []:
        sub.setdefault("dependencies", {})["runtime"] = None
    text = yaml.safe_dump(document, sort_keys=False).replace(": null\n", ":\n")
    target.write_text(text)


@pytest.mark.parametrize("name", ["bison", "bzip3", "R-e1071", "aws-cli-2"])
def test_real_recipes_with_empty_keys_load(tmp_path: Path, name: str) -> None:
    target = tmp_path / f"{name}.yaml"
    _blank_keys(SAMPLE / f"{name}.yaml", target)
    assert "    runtime:\n" in target.read_text()
    recipe = load_recipe(target)
    assert recipe.package.dependencies.runtime == []
    assert recipe.environment.contents.repositories == []
    assert all(sub.dependencies.runtime == [] for sub in recipe.subpackages)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "os"
    folder.mkdir()
    for name in ("bison", "bzip3"):
        shutil.copy(SAMPLE / f"{name}.yaml", folder)
    (folder / "empty-keys.yaml").write_text(EMPTY_KEYS)
    (folder / ".yam.yaml").write_text("formatIndent: 2\nnoSort: true\n")
    (folder / "melange.yam.yaml").write_text("formatIndent: 2\n")
    (folder / ".hidden.yaml").write_text("package:\n  name: hidden\n")
    (folder / "pipelines-config.yaml").write_text("settings:\n  timeout: 30\n")
    (folder / "flow.yaml").write_text("{package: {name: flow, version: 1, epoch: 0}}\n")
    return folder


SKIPPED = {
    ".hidden.yaml": "dot file",
    ".yam.yaml": "yam formatter config",
    "melange.yam.yaml": "yam formatter config",
    "pipelines-config.yaml": "no top-level package:",
}


def test_skip_reasons(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    reasons = {p.name: skip_reason(p) for p in sorted(folder.iterdir())}
    assert {k: v for k, v in reasons.items() if v} == SKIPPED
    # a flow-style recipe and real recipes are recipes; broken YAML is a (broken) recipe
    assert reasons["flow.yaml"] is None and reasons["bison.yaml"] is None
    broken = folder / "broken.yaml"
    broken.write_text("package: [\n")
    assert skip_reason(broken) is None


def test_corpus_loader_skips_non_recipe_yaml(tmp_path: Path) -> None:
    corpus = load_corpus(_folder(tmp_path))
    assert corpus.errors == []
    assert sorted(n.name for n in corpus.recipes) == ["bison", "bzip3", "empty-keys", "flow"]
    assert {Path(p).name: why for p, why in corpus.skipped} == SKIPPED


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "non-recipe YAML" in line]


def test_graph_skips_non_recipe_yaml_with_one_note(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    result = run_cli(tmp_path, "graph", folder, "--no-cache")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("4 recipes,")
    (note,) = _notes(result.stderr)
    assert note.startswith("note: skipped 4 non-recipe YAML files:")
    assert ".yam.yaml (yam formatter config)" in note
    assert "pipelines-config.yaml (no top-level package:)" in note


def test_lint_skips_non_recipe_yaml_with_one_note(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    result = run_cli(tmp_path, "lint", folder, "--no-git", "--json")
    assert result.returncode in (0, 1), result.stderr  # findings, but everything loads
    assert len(_notes(result.stderr)) == 1
    assert "load-error" not in result.stdout
    assert ".yam.yaml" not in result.stdout and "pipelines-config" not in result.stdout
    text = run_cli(tmp_path, "lint", folder, "--no-git")
    assert "4 recipe(s):" in text.stderr and "0 failed to load" in text.stderr


def test_a_file_named_explicitly_is_still_read_as_a_recipe(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    result = run_cli(tmp_path, "lint", folder / "pipelines-config.yaml", "--no-git")
    assert result.returncode == 2
    assert "pipelines-config.yaml" in result.stderr and not _notes(result.stderr)


def test_build_skips_non_recipe_yaml_with_one_note(tmp_path: Path) -> None:
    # An unknown architecture stops the build right after the recipes are read: what matters
    # is that the folder's other YAML did not stop it first.
    folder = _folder(tmp_path)
    result = run_cli(tmp_path, "build", folder, "--out", tmp_path / "out", "--arch", "nosucharch")
    assert result.returncode != 0
    (note,) = _notes(result.stderr)
    assert "melange.yam.yaml (yam formatter config)" in note
    last = result.stderr.strip().splitlines()[-1]
    assert "unknown architecture 'nosucharch'" in last
    assert ".yam.yaml" not in last and "pipelines-config" not in last


def test_a_folder_of_only_other_yaml_has_no_recipes(tmp_path: Path) -> None:
    (tmp_path / ".yam.yaml").write_text("formatIndent: 2\n")
    result = run_cli(tmp_path, "lint", tmp_path, "--no-git")
    assert result.returncode != 0
    assert "no recipe files" in result.stderr


def test_monitor_of_a_folder_skips_non_recipe_yaml(tmp_path: Path) -> None:
    from nanodistro.monitor.recipes import find_recipes

    folder = _folder(tmp_path)
    names = [p.name for p in find_recipes([folder])]
    assert names == ["bison.yaml", "bzip3.yaml", "empty-keys.yaml", "flow.yaml"]
