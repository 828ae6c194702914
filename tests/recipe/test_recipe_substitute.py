"""${{…}} substitution, var-transforms, if: conditions and per-arch subpackage expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanodistro.errors import RecipeError
from nanodistro.recipe.conditions import evaluate_condition
from nanodistro.recipe.expand import builds_for_arch, expand_subpackages, main_substitutions
from nanodistro.recipe.model import load_recipe, load_recipe_text
from nanodistro.recipe.pipelines import known_pipeline_names, recipe_uses
from nanodistro.recipe.substitute import (
    apply_go_template,
    build_substitutions,
    go_regex_replace,
    substitute,
)

RECIPE = """\
package:
  name: hello
  version: 1.7.17
  epoch: 2
  description: greeter
  target-architecture: [x86_64, aarch64]
vars:
  base: /opt/${{package.name}}
  nested: ${{vars.base}}/lib
var-transforms:
  - from: ${{package.version}}
    match: ^(.+)\\.(\\d+)$
    replace: $1-$2
    to: mangled
  - from: ${{vars.mangled}}
    match: '-'
    replace: _
    to: underscored
data:
  - name: pythons
    items:
      "3.12": py312
      "3.11": py311
      "3.10": py310
options:
  fast:
    vars: {opt: "-O3"}
pipeline:
  - runs: echo ${{targets.destdir}} ${{targets.contextdir}} ${{targets.package.hello-doc}}
subpackages:
  - name: py${{range.key}}-hello
    range: pythons
    if: '"${{range.key}}" != "3.10"'
    description: for ${{range.value}}
    dependencies:
      runtime: ["python-${{range.key}}"]
    pipeline:
      - runs: mkdir -p ${{targets.subpkgdir}}
  - name: ${{package.name}}-doc
  - name: hello-x86-only
    if: ${{build.arch}} == 'x86_64'
"""


@pytest.fixture
def recipe():  # type: ignore[no-untyped-def]
    return load_recipe_text(RECIPE, "hello.yaml")


def test_build_substitutions_main_package(recipe) -> None:  # type: ignore[no-untyped-def]
    names = ["hello-doc"]
    m = build_substitutions(recipe, "x86_64", package_names=names, build_options=["fast"])
    assert m["package.full-version"] == "1.7.17-r2"
    assert m["vars.base"] == "/opt/hello"
    assert m["vars.nested"] == "/opt/hello/lib"
    assert m["vars.mangled"] == "1.7-17"
    assert m["vars.underscored"] == "1.7_17"
    assert m["vars.opt"] == "-O3"
    assert m["options.fast.enabled"] == "true"
    assert m["targets.destdir"] == "/home/build/melange-out/hello"
    assert m["targets.contextdir"] == m["targets.destdir"]
    assert m["targets.package.hello-doc"] == "/home/build/melange-out/hello-doc"
    assert m["host.triplet.gnu"] == "x86_64-pc-linux-gnu"
    assert m["host.triplet.rust"] == "x86_64-unknown-linux-gnu"
    assert m["cross.triplet.gnu.musl"] == "x86_64-pc-linux-musl"
    assert m["build.goarch"] == "amd64"
    arm = build_substitutions(recipe, "aarch64")
    assert arm["host.triplet.gnu"] == "aarch64-unknown-linux-gnu"
    assert arm["build.goarch"] == "arm64"
    assert arm["options.fast.enabled"] == "false"
    with pytest.raises(RecipeError, match="unknown build option"):
        build_substitutions(recipe, "x86_64", build_options=["slow"])
    with pytest.raises(RecipeError, match="unknown architecture"):
        build_substitutions(recipe, "mips")


def test_substitute_and_unknown_variable() -> None:
    mapping = {"package.name": "hello", "vars.x": "1"}
    assert substitute("${{package.name}}-${{ vars.x }}", mapping) == "hello-1"
    with pytest.raises(RecipeError) as info:
        substitute("${{vars.y}}", mapping, "hello.yaml", "pipeline[0].runs")
    assert "vars.y" in str(info.value) and "vars.x" in str(info.value)
    assert str(info.value).startswith("hello.yaml: pipeline[0].runs: unknown variable")


def test_go_replacement_templates() -> None:
    assert go_regex_replace(r"(\d+)\.(\d+)", "${2}.$1", "1.2", "w", "f") == "2.1"
    assert go_regex_replace(r"(\d+)", "$1x", "5", "w", "f") == ""  # $1x means ${1x}
    assert go_regex_replace(r"(?P<maj>\d+)", "v$maj", "7", "w", "f") == "v7"
    assert go_regex_replace(r"a", "$$", "cab", "w", "f") == "c$b"
    assert go_regex_replace(r"\d", "#", "1٣", "w", "f") == "#٣"  # ASCII classes as RE2
    import re

    match = re.match(r"(a)(b)?", "a")
    assert match is not None
    assert apply_go_template("[$2]", match) == "[]"
    with pytest.raises(RecipeError, match="does not compile"):
        go_regex_replace("(", "x", "y", "w", "f")


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("'foo' == 'foo'", True),
        ("'foo' != 'foo'", False),
        ("${{build.arch}} == 'x86_64'", True),
        ('${{ build.arch }} != "x86_64"', False),
        ("'a' == 'b' || 'c' == 'c'", True),
        ("('a' == 'a' && 'b' != 'b') || 'c' == 'd'", False),
        ('"${{range.key}}" == "64"', True),
        ("'it\\'s' == \"it's\"", True),
        ("", True),
    ],
)
def test_conditions(expr: str, expected: bool) -> None:
    mapping = {"build.arch": "x86_64", "range.key": "64"}
    assert evaluate_condition(expr, mapping) is expected


@pytest.mark.parametrize("expr", ["'a' ==", "'a' = 'a'", "('a' == 'a'", "'a' == 'a' junk", "${{x"])
def test_condition_syntax_errors(expr: str) -> None:
    with pytest.raises(RecipeError, match="condition"):
        evaluate_condition(expr, {"x": "1"}, "r.yaml")


def test_condition_unknown_variable() -> None:
    with pytest.raises(RecipeError, match=r"unknown variable \$\{\{nope\}\}"):
        evaluate_condition("${{nope}} == 'x'", {})


def test_expand_subpackages(recipe) -> None:  # type: ignore[no-untyped-def]
    subs = expand_subpackages(recipe, "x86_64")
    assert [s.name for s in subs] == ["py3.11-hello", "py3.12-hello", "hello-doc", "hello-x86-only"]
    first = subs[0]
    assert first.description == "for py311"
    assert first.dependencies.runtime == ["python-3.11"]
    assert first.substitutions["targets.subpkgdir"] == "/home/build/melange-out/py3.11-hello"
    assert first.substitutions["targets.contextdir"] == first.substitutions["targets.subpkgdir"]
    assert first.substitutions["subpkg.name"] == "py3.11-hello"
    assert first.substitutions["range.value"] == "py311"
    assert substitute(first.spec.pipeline[0].runs, first.substitutions).endswith("py3.11-hello")
    assert [s.name for s in expand_subpackages(recipe, "aarch64")][-1] == "hello-doc"
    main = main_substitutions(recipe, "x86_64")
    assert (
        substitute(recipe.pipeline[0].runs, main).split()[-1] == "/home/build/melange-out/hello-doc"
    )
    assert builds_for_arch(recipe, "aarch64") and not builds_for_arch(recipe, "riscv64")


def test_duplicate_expanded_names_are_an_error() -> None:
    recipe = load_recipe_text(
        "package: {name: a, version: 1}\n"
        "data: [{name: d, items: {x: '1', y: '2'}}]\n"
        "subpackages:\n  - name: a-sub\n    range: d\n",
        "dup.yaml",
    )
    with pytest.raises(RecipeError, match="duplicate subpackage name 'a-sub'") as info:
        expand_subpackages(recipe, "x86_64")
    assert info.value.line == 4


def test_wolfi_sample_expands_for_both_arches(fixtures_dir: Path) -> None:
    count = 0
    for path in sorted((fixtures_dir / "wolfi-os-sample").glob("*.yaml")):
        recipe = load_recipe(path)
        for arch in ("x86_64", "aarch64"):
            subs = expand_subpackages(recipe, arch)
            main = main_substitutions(recipe, arch)
            for use in recipe_uses(recipe):
                mapping = dict(main)
                for key in use.with_:
                    mapping[f"inputs.{key}"] = ""
                for value in use.with_.values():
                    if use.path[0] != "subpackages":
                        substitute(value, mapping, recipe.where)
            count += len(subs)
    assert count > 300
    assert "git-checkout" in known_pipeline_names()


def test_substitution_errors_carry_line_and_key_path() -> None:
    recipe = load_recipe_text(
        "package: {name: a, version: '1'}\n"
        "subpackages:\n"
        "  - name: a-dev\n"
        "    dependencies:\n"
        "      runtime:\n"
        "        - ${{vars.missing}}\n",
        "a.yaml",
    )
    with pytest.raises(RecipeError) as info:
        expand_subpackages(recipe, "x86_64")
    assert str(info.value).startswith(
        "a.yaml:5: subpackages[0].dependencies.runtime: unknown variable ${{vars.missing}}"
    )
    with pytest.raises(RecipeError) as info:
        evaluate_condition("${{x}} == 'y'", {}, "a.yaml", "pipeline[0].if", line=7)
    assert str(info.value).startswith("a.yaml:7: pipeline[0].if: unknown variable")


def test_var_transforms_see_arch_values_and_option_vars() -> None:
    recipe = load_recipe_text(
        "package: {name: a, version: '1.2'}\n"
        "vars: {flavour: plain}\n"
        "var-transforms:\n"
        "  - {from: '${{build.arch}}-${{vars.flavour}}', match: '_64', replace: '', to: tag}\n"
        "options:\n"
        "  fancy: {vars: {flavour: fancy}}\n",
        "a.yaml",
    )
    assert build_substitutions(recipe, "x86_64")["vars.tag"] == "x86-plain"
    fancy = build_substitutions(recipe, "aarch64", build_options=["fancy"])
    assert fancy["vars.tag"] == "aarch64-fancy"
    assert fancy["vars.flavour"] == "fancy"
