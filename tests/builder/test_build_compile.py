"""Built-in pipelines as data and recipe compilation (uses, with, if, inheritance, needs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanodistro.builder.compile import (
    BUILTIN_PIPELINES_DIR,
    builtin_pipeline_names,
    compile_recipe,
    load_pipeline,
)
from nanodistro.errors import BuildError, RecipeError
from nanodistro.recipe.model import load_recipe_text

SHA = "a" * 64

REQUIRED_NAMES = [
    "fetch",
    "git-checkout",
    "patch",
    "strip",
    "autoconf/configure",
    "autoconf/make",
    "autoconf/make-install",
    "cmake/configure",
    "cmake/build",
    "cmake/install",
    "meson/configure",
    "meson/compile",
    "meson/install",
    "split/dev",
    "split/static",
    "split/manpages",
    "split/alldocs",
    "split/infodir",
    "split/locales",
    "split/lib",
    "split/bin",
    "split/debug",
    "python/build",
    "python/build-wheel",
    "python/install",
    "python/import",
    "python/test",
    "go/build",
    "go/install",
    "cargo/build",
    "perl/make",
    "perl/cleanup",
    "ruby/build",
    "ruby/install",
    "ruby/clean",
    "npm/install",
]


def recipe(body: str) -> str:
    return (
        "package:\n  name: demo\n  version: 1.2.3\n  epoch: 4\n"
        "  copyright:\n    - license: MIT\n" + body
    )


def compiled(body: str, arch: str = "x86_64", pipeline_dirs: list[Path] | None = None):  # type: ignore[no-untyped-def]
    return compile_recipe(
        load_recipe_text(recipe(body), "demo.yaml"), arch, pipeline_dirs=pipeline_dirs or []
    )


def test_every_melange_builtin_exists_and_loads() -> None:
    names = builtin_pipeline_names()
    assert set(REQUIRED_NAMES) <= set(names)
    for name in names:
        definition = load_pipeline(name)
        assert definition.pipeline, name
        for key, spec in definition.inputs.items():
            assert spec.description, f"{name}: input {key} has no description"


def test_builtin_inputs_follow_melange() -> None:
    fetch = load_pipeline("fetch")
    assert fetch.inputs["uri"].required
    assert fetch.inputs["strip-components"].default == "1"
    assert fetch.needs is not None and fetch.needs.packages == ["wget"]
    assert load_pipeline("autoconf/make-install").inputs["targets"].default == "install"
    assert load_pipeline("go/build").inputs["toolchaintags"].default == "netgo,osusergo"


def test_uses_expansion_substitution_and_needs() -> None:
    build = compiled(
        f"""
environment:
  contents:
    packages: [busybox]
pipeline:
  - uses: fetch
    with:
      uri: https://example.org/demo-${{{{package.version}}}}.tar.gz
      expected-sha256: {SHA}
  - uses: autoconf/configure
    with:
      opts: --enable-foo
  - uses: autoconf/make-install
subpackages:
  - name: demo-dev
    pipeline:
      - uses: split/dev
"""
    )
    main, dev = build.packages
    fetch, configure, install = main.steps
    assert fetch.kind == "fetch"
    assert fetch.inputs["uri"] == "https://example.org/demo-1.2.3.tar.gz"
    assert fetch.inputs["strip-components"] == "1"  # default filled in
    assert fetch.inputs["purl-name"] == "demo"  # default that itself uses a variable
    assert configure.kind == "runs" and configure.name == "autoconf/configure"
    assert "--host=x86_64-pc-linux-gnu" in configure.script
    assert "--enable-foo" in configure.script
    assert "${{" not in configure.script
    assert "DESTDIR='/home/build/melange-out/demo'" in install.script
    assert dev.name == "demo-dev"
    assert 'PACKAGE_DIR="/home/build/melange-out/demo"' in dev.steps[0].script
    assert "/home/build/melange-out/demo-dev" in dev.steps[0].script
    assert build.environment_packages == [
        "busybox",
        "wget",
        "autoconf",
        "automake",
        "libtool",
        "make",
    ]
    assert build.env["HOME"] == "/home/build"


def test_if_working_directory_and_environment_inherit() -> None:
    build = compiled(
        """
pipeline:
  - working-directory: src
    environment: {A: "1", B: "${{package.name}}"}
    pipeline:
      - runs: echo one
      - if: ${{build.arch}} == 'aarch64'
        runs: echo arm-only
      - working-directory: /abs
        environment: {A: "2"}
        runs: echo two
  - if: ${{build.arch}} == 'x86_64' && ${{package.name}} != 'x'
    runs: echo x86
"""
    )
    steps = build.main.steps
    assert [s.script for s in steps] == ["echo one", "echo two", "echo x86"]
    assert steps[0].workdir == "/home/build/src"
    assert steps[0].env == {"A": "1", "B": "demo"}
    assert steps[1].workdir == "/abs" and steps[1].env == {"A": "2", "B": "demo"}
    assert steps[2].workdir == "/home/build"
    arm = compiled(
        "pipeline:\n  - working-directory: src\n    pipeline:\n"
        "      - if: ${{build.arch}} == 'aarch64'\n        runs: echo arm-only\n",
        arch="aarch64",
    )
    assert [s.script for s in arm.main.steps] == ["echo arm-only"]


def test_missing_required_input_names_the_step() -> None:
    with pytest.raises(BuildError) as error:
        compiled("pipeline:\n  - uses: fetch\n    with:\n      expected-sha256: " + SHA + "\n")
    assert str(error.value) == (
        "demo.yaml:9: pipeline[0].with: step pipeline[0]: required input 'uri' of pipeline "
        "'fetch' is not set (no value and no default)"
    )


def test_required_input_without_default_in_a_user_pipeline(tmp_path: Path) -> None:
    """A required input with no default and no value is refused; a default satisfies it."""
    (tmp_path / "needs-target.yaml").write_text(
        "inputs:\n  target:\n    required: true\n  mode:\n    required: true\n"
        "    default: fast\npipeline:\n  - runs: make ${{inputs.target}} ${{inputs.mode}}\n"
    )
    body = "pipeline:\n  - name: build it\n    uses: needs-target\n"
    with pytest.raises(BuildError) as error:
        compiled(body, pipeline_dirs=[tmp_path])
    assert str(error.value) == (
        "demo.yaml:9: pipeline[0].uses: step 'build it' (pipeline[0]): required input 'target' "
        "of pipeline 'needs-target' is not set (no value and no default)"
    )
    ok = compiled(body + "    with:\n      target: all\n", pipeline_dirs=[tmp_path])
    assert [s.script for s in ok.main.steps] == ["make all fast"]


def test_unknown_input_is_an_error_naming_file_step_pipeline_and_input() -> None:
    """melange refuses `with:` keys the pipeline does not declare ("undefined input");
    nanodistro used to warn at the end of the build."""
    body = "pipeline:\n  - runs: 'true'\n  - uses: autoconf/make\n    with:\n      opt: -j4\n"
    with pytest.raises(BuildError) as error:
        compiled(body)
    message = str(error.value)
    assert message.startswith(
        "demo.yaml:11: pipeline[1].with.opt: step pipeline[1]: pipeline 'autoconf/make' has no "
        "input 'opt' (declared inputs: "
    )
    assert "melange refuses undefined inputs" in message
    # in a subpackage and in a test pipeline too
    sub = (
        "pipeline:\n  - runs: 'true'\nsubpackages:\n  - name: demo-dev\n    pipeline:\n"
        "      - uses: split/dev\n        with:\n          bogus: x\n"
    )
    with pytest.raises(
        BuildError, match=r"subpackages\[0\].pipeline\[0\].with.bogus: .*'split/dev'"
    ):
        compiled(sub)
    test = "pipeline:\n  - runs: 'true'\ntest:\n  pipeline:\n    - uses: strip\n      with:\n        x: y\n"
    with pytest.raises(BuildError, match=r"test.pipeline\[0\].with.x: .*'strip' has no input 'x'"):
        compiled(test)


def test_bad_pin_length_is_rejected() -> None:
    body = (
        "pipeline:\n  - uses: git-checkout\n    with:\n      repository: https://x/y\n"
        "      expected-commit: ${{vars.c}}\nvars:\n  c: abc123\n"
    )
    with pytest.raises(RecipeError, match="expected-commit must be 40 lowercase hex"):
        compiled(body)


def test_unknown_pipeline_lists_searched_dirs(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as error:
        compiled("pipeline:\n  - uses: no/such-thing\n", pipeline_dirs=[tmp_path])
    message = str(error.value)
    assert "unknown pipeline 'uses: no/such-thing'" in message
    assert str(tmp_path) in message and str(BUILTIN_PIPELINES_DIR) in message
    assert "pipeline[0].uses" in message


def test_user_pipeline_dir_is_searched_first(tmp_path: Path) -> None:
    (tmp_path / "autoconf").mkdir()
    (tmp_path / "autoconf" / "make.yaml").write_text(
        "name: custom make\ninputs:\n  who:\n    description: who\n    default: world\n"
        "needs:\n  packages: [custom-make]\n"
        "pipeline:\n  - runs: echo hello ${{inputs.who}} from ${{package.name}}\n"
        "  - uses: mine/inner\n"
    )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "inner.yaml").write_text(
        "inputs:\n  x:\n    description: x\n    default: inner\n"
        "pipeline:\n  - runs: echo ${{inputs.x}}\n"
    )
    build = compiled("pipeline:\n  - uses: autoconf/make\n", pipeline_dirs=[tmp_path])
    assert [s.script for s in build.main.steps] == ["echo hello world from demo", "echo inner"]
    assert "custom-make" in build.environment_packages


def test_unknown_variable_in_runs_names_the_line() -> None:
    with pytest.raises(RecipeError) as error:
        compiled("pipeline:\n  - runs: echo ${{vars.nope}}\n")
    assert str(error.value) == "demo.yaml:8: pipeline[0].runs: unknown variable ${{vars.nope}}"
    assert (error.value.line, error.value.field) == (8, "pipeline[0].runs")


def test_tests_are_compiled_with_their_environment() -> None:
    build = compiled(
        """
pipeline:
  - runs: "true"
subpackages:
  - name: demo-extra
    pipeline:
      - runs: "true"
    test:
      environment:
        contents:
          packages: [bash]
      pipeline:
        - runs: demo-extra --version
test:
  environment:
    contents:
      packages: [python3]
  pipeline:
    - uses: python/import
      with:
        import: json
"""
    )
    main_test, sub_test = build.tests
    assert main_test.package == "demo" and sub_test.package == "demo-extra"
    assert main_test.environment_packages == ["python3", "wolfi-base"]
    assert 'single="json"' in main_test.steps[0].script  # python/import of 'json'
    assert sub_test.environment_packages == ["bash"]


def test_wolfi_recipe_sample_compiles(fixtures_dir: Path, tmp_path: Path) -> None:
    """Peer suite: every loadable Wolfi recipe compiles for x86_64.

    Wolfi-local pipelines (test/tw/*, py/pip-build-install, ...) are not melange built-ins and
    are not in the fixtures, so they are stubbed; everything else (uses expansion, with
    validation, substitution, if:, ranges) runs for real.
    """
    import re

    from nanodistro.errors import NanodistroError
    from nanodistro.recipe.model import load_recipe

    # every sample recipe loads (test_recipe_model.py::test_wolfi_sample_all_load)
    recipes = [load_recipe(p) for p in sorted((fixtures_dir / "wolfi-os-sample").glob("*.yaml"))]
    stubs = tmp_path / "pipelines"
    failures: dict[str, str] = {}
    stubbed: dict[str, set[str]] = {}  # stub pipeline -> the inputs recipes give it
    for _ in range(30):
        failures, changed = {}, False
        for recipe in recipes:
            try:
                compile_recipe(recipe, "x86_64", pipeline_dirs=[stubs])
            except NanodistroError as error:
                found = re.search(r"unknown pipeline 'uses: ([^']+)'", str(error))
                undeclared = re.search(r"pipeline '([^']+)' has no input '([^']+)'", str(error))
                if found:
                    stubbed.setdefault(found.group(1), set())
                    changed = True
                elif undeclared and undeclared.group(1) in stubbed:
                    stubbed[undeclared.group(1)].add(undeclared.group(2))
                    changed = True
                failures[recipe.where] = str(error)
        if not changed:
            break
        for name, inputs in stubbed.items():
            stub = stubs / f"{name}.yaml"
            stub.parent.mkdir(parents=True, exist_ok=True)
            declared = "".join(f"  {key}:\n    description: stub\n" for key in sorted(inputs))
            stub.write_text(
                (f"inputs:\n{declared}" if inputs else "") + "pipeline:\n  - runs: 'true'\n"
            )
    passed = len(recipes) - len(failures)
    print(f"wolfi recipe sample compile: {passed}/{len(recipes)}")
    assert len(recipes) >= 150
    assert not failures, failures
