"""nanodistro.toml: defaults, relative paths, and typos that must not fall back to defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanodistro.errors import ConfigError
from nanodistro.factory.workspace import load_workspace


def test_empty_file_is_a_workspace_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text("")
    workspace = load_workspace(tmp_path)
    assert workspace.recipes_dir == tmp_path.resolve() / "recipes"
    assert workspace.packages_dir == tmp_path.resolve() / "out" / "packages"
    assert workspace.archs


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text(
        '[workspace]\nout = "build/out"\narchs = ["aarch64"]\n[mirrors]\ndebian = "http://127.0.0.1:1/debian"\n'
    )
    workspace = load_workspace(tmp_path / "nanodistro.toml")
    assert workspace.out_dir == tmp_path.resolve() / "build" / "out"
    assert workspace.archs == ["aarch64"]
    assert workspace.mirrors == {"debian": "http://127.0.0.1:1/debian"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[workspace]\narhcs = ["x86_64"]\n',
            r"workspace\.arhcs: unknown key 'arhcs' \(did you mean 'archs'\?\)",
        ),
        ('[keyz]\ndir = "k"\n', r"keyz: unknown key 'keyz' \(did you mean 'keys'\?\)"),
        ('[workspace]\narchs = "x86_64"\n', r"workspace\.archs: expected a list of strings"),
        ("[workspace\n", r"invalid TOML"),
    ],
)
def test_mistakes_are_errors_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "nanodistro.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_workspace(tmp_path)


def test_recipe_files_skip_yaml_that_is_not_a_recipe(tmp_path: Path) -> None:
    from nanodistro.factory.workspace import load_workspace

    (tmp_path / "nanodistro.toml").write_text("")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "zlib.yaml").write_text("package:\n  name: zlib\n  version: 1.3\n")
    (recipes / ".yam.yaml").write_text("formatting: {indent: 2}\n")
    (recipes / ".hidden.yaml").write_text("package:\n  name: hidden\n")
    (recipes / "notes.yaml").write_text("todo: [a, b]\n")
    assert load_workspace(tmp_path).recipe_files() == [recipes / "zlib.yaml"]
