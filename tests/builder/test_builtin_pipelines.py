"""The built-in pipelines are melange's whole set, each loads and validates its inputs; lint reports
``unknown-pipeline`` only for recipe-local (Wolfi) pipelines and says ``--pipeline-dir`` only when
that fixes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nanodistro.builder.compile import (
    BUILTIN_PIPELINES_DIR,
    builtin_pipeline_names,
    compile_recipe,
    load_pipeline,
)
from nanodistro.errors import BuildError
from nanodistro.recipe.lint import lint_path, lint_text
from nanodistro.recipe.model import load_recipe_text
from nanodistro.recipe.pipelines import MELANGE_BUILTIN_PIPELINES, known_pipeline_names

# chainguard-dev/melange pkg/build/pipelines/**/*.yaml, read through the search index near the
# commit the reference cites (MEL 2043d30b, ../shared/reference/formats.md §0 and §6); meson/compile
# is named by §6 of the reference (the index holds no copy of it).
MELANGE_VERSION = "2043d30b"
MELANGE_NAMES = frozenset(
    [
        "R/build",
        "autoconf/configure",
        "autoconf/make",
        "autoconf/make-install",
        "cargo/build",
        "cmake/build",
        "cmake/configure",
        "cmake/install",
        "copy",
        "cran/build",
        "cran/fetch",
        "cran/install",
        "ecosystems/maven",
        "fetch",
        "git-am",
        "git-archive",
        "git-checkout",
        "go/build",
        "go/build/v2",
        "go/bump",
        "go/covdata",
        "go/deps",
        "go/install",
        "goreleaser/build",
        "llvm/covreport",
        "maven/configure-mirror",
        "maven/pombump",
        "meson/compile",
        "meson/configure",
        "meson/install",
        "meson/test",
        "move",
        "npm/install",
        "patch",
        "pecl/install",
        "pecl/phpize",
        "pecl/phpize-8.1",
        "pecl/phpize-8.2",
        "perl/cleanup",
        "perl/cpan-install",
        "perl/make",
        "php/composer-install",
        "python/build",
        "python/build-gpep517",
        "python/build-wheel",
        "python/import",
        "python/install",
        "python/pipinstall",
        "python/test",
        "redis-valkey/make",
        "redis-valkey/subpackage-benchmark",
        "redis-valkey/subpackage-cli",
        "redis-valkey/tests",
        "ruby/build",
        "ruby/clean",
        "ruby/install",
        "ruby/install_runtime_deps",
        "ruby/require",
        "ruby/test",
        "split/alldocs",
        "split/bin",
        "split/debug",
        "split/dev",
        "split/docs",
        "split/infodir",
        "split/lib",
        "split/locales",
        "split/manpages",
        "split/static",
        "strip",
        "xcover/profile",
        "xcover/status",
        "xcover/stop",
        "xcover/wait",
    ]
)

# wolfi-dev/os pipelines/**/*.yaml (search index): the distribution's own pipelines, which melange
# gets from `--pipeline-dir ./pipelines`. The ones the 150-recipe sample uses are all here.
WOLFI_LOCAL = frozenset(
    [
        "auth/github",
        "auth/gradle",
        "auth/guarded-repo",
        "auth/libraries",
        "auth/maven",
        "auth/npm",
        "auth/pip",
        "auth/uv",
        "auth/uv/v2",
        "bitnami/compat",
        "bitnami/validate-welcome-message",
        "bump",
        "compiler/disable-openssf-flags",
        "compiler/filter-openssf-flags",
        "compiler/undisable-openssf-flags",
        "ecosystems/auth",
        "ecosystems/gradle",
        "fonts/gftools-build",
        "git/gnulib-bootstrap",
        "glibc/ld-so-conf",
        "go-fips/build",
        "go-fips/install",
        "go/assert-no-crypto",
        "go/bump-golang-x",
        "iamguarded/build-compat",
        "iamguarded/finalize-compat",
        "iamguarded/test-compat",
        "java/fetch-jar",
        "java/replace-jar",
        "ocaml/dune",
        "perl/dzil",
        "py/build-installer",
        "py/bump-vendored",
        "py/bundle",
        "py/collect-wheels",
        "py/compile-requirements",
        "py/install-compile",
        "py/install",
        "py/numpy-migration-check",
        "py/one-python",
        "py/pip-build-install-bootstrap",
        "py/pip-build-install",
        "py/pip-check",
        "py/pip-vendor-bump",
        "py/tw/bump-constraints",
        "py/venv",
        "ruby/unlock-spec",
        "rust/cargo-build",
        "rust/cargobump",
        "sccache/enable",
        "sed",
        "test/apko/build",
        "test/compiler-hardening-check",
        "test/compiler/asan",
        "test/compiler/clang",
        "test/compiler/fortran-hardening-check",
        "test/compiler/hardening-check",
        "test/compiler/smoke",
        "test/daemon-check-output",
        "test/docker",
        "test/docs",
        "test/emptypackage",
        "test/execs",
        "test/font-family",
        "test/fonts-compare",
        "test/fonts",
        "test/glibc/ld-so-conf",
        "test/hardening-check",
        "test/headers",
        "test/install-cypress",
        "test/jar-check",
        "test/k3s",
        "test/kwok/cluster",
        "test/ldd-check",
        "test/libraries-coverage",
        "test/metapackage",
        "test/no-docs",
        "test/perl-module-check",
        "test/php-tidy",
        "test/pkgconf",
        "test/populated-etc-passwd",
        "test/py-bundled-crypto-check",
        "test/python/import",
        "test/qackage",
        "test/staticpackage",
        "test/systemd-tmpfiles",
        "test/tw/byproductpackage",
        "test/tw/configpackage",
        "test/tw/contains-files",
        "test/tw/debugpackage",
        "test/tw/devpackage",
        "test/tw/docs",
        "test/tw/emptypackage",
        "test/tw/gem-check",
        "test/tw/gem-installed",
        "test/tw/header-check",
        "test/tw/help-check",
        "test/tw/langpackage",
        "test/tw/ldd-check",
        "test/tw/lua-syntax-check",
        "test/tw/metapackage",
        "test/tw/no-docs",
        "test/tw/pip-check",
        "test/tw/shell-deps-check-packages",
        "test/tw/shell-deps-check",
        "test/tw/shell-syntax-check",
        "test/tw/srcpackage",
        "test/tw/staticpackage",
        "test/tw/symlink-check",
        "test/tw/ver-check",
        "test/tw/verify-service",
        "test/tw/virtualpackage",
        "test/tw/xml-syntax-check",
        "test/valgrind/ensure",
        "test/valgrind/profile",
        "test/valgrind/status",
        "test/valgrind/stop",
        "test/vercheck",
        "test/verify-service",
        "test/virtualpackage",
        "uv/bump",
        "uv/install",
        "uv/venv",
        "xcover/ensure",
        "xcover/profile",
        "xcover/stop",
        "xcover/wait",
    ]
)

ALL = builtin_pipeline_names()


def test_the_builtins_are_melanges_set() -> None:
    names = set(ALL)
    assert names == MELANGE_NAMES, (
        f"missing vs melange {MELANGE_VERSION}: {sorted(MELANGE_NAMES - names)}; "
        f"not in melange: {sorted(names - MELANGE_NAMES)}"
    )
    assert MELANGE_BUILTIN_PIPELINES == MELANGE_NAMES
    assert known_pipeline_names() == set(MELANGE_NAMES)


def _recipe(name: str, with_: dict[str, str]) -> str:
    # the step runs in a subpackage, so split/* and subpackage pipelines have a package to split
    given = "".join(f"          {key}: {value}\n" for key, value in with_.items())
    return (
        "package:\n  name: demo\n  version: 1.2.3\n  epoch: 0\n"
        "  copyright:\n    - license: MIT\n"
        "pipeline:\n  - runs: 'true'\n"
        "subpackages:\n  - name: demo-part\n    pipeline:\n"
        f"      - uses: {name}\n" + (f"        with:\n{given}" if given else "")
    )


def _required(name: str) -> dict[str, str]:
    definition = load_pipeline(name)
    return {key: "x" for key, spec in definition.inputs.items() if spec.required}


@pytest.mark.parametrize("name", ALL)
def test_each_builtin_loads_compiles_and_validates_its_inputs(name: str) -> None:
    definition = load_pipeline(name)
    assert definition.name, f"{name}: no name"
    assert definition.pipeline, f"{name}: no steps"
    for key, spec in definition.inputs.items():
        assert spec.description, f"{name}: input {key} has no description"

    # with its required inputs set it compiles: every ${{...}} in it resolves, needs are added
    build = compile_recipe(load_recipe_text(_recipe(name, _required(name)), "d.yaml"), "x86_64")
    steps = build.packages[1].steps
    assert steps and steps[0].uses == name
    for step in steps:
        assert "${{" not in step.script, f"{name}: unsubstituted variable in {step.script!r}"

    # an input it does not declare is refused, as melange refuses it
    bad = {**_required(name), "no-such-input": "1"}
    with pytest.raises(BuildError, match="has no input 'no-such-input'"):
        compile_recipe(load_recipe_text(_recipe(name, bad), "d.yaml"), "x86_64")

    # and a required input left out is refused
    for key, spec in definition.inputs.items():
        if spec.required and not spec.default:
            partial = {k: v for k, v in _required(name).items() if k != key}
            with pytest.raises(BuildError, match=f"required input '{key}'"):
                compile_recipe(load_recipe_text(_recipe(name, partial), "d.yaml"), "x86_64")


def test_inputs_follow_melange() -> None:
    """Spot checks of names, defaults and required flags read from melange's files."""
    v2 = load_pipeline("go/build/v2").inputs
    assert v2["packages"].default == "." and not v2["packages"].required
    assert v2["toolchaintags"].default == "netgo,osusergo" and v2["buildmode"].default == "default"
    assert load_pipeline("go/build/v2").pipeline[-1].uses == "strip"
    assert load_pipeline("go/install").inputs["go-package"].default == "go"
    assert load_pipeline("pecl/phpize").inputs["php-config"].default == "php-config"
    assert load_pipeline("pecl/install").inputs["extension"].required
    r_build = load_pipeline("R/build").inputs
    assert r_build["package"].required and r_build["version"].required
    assert r_build["path"].default == "."
    profile = load_pipeline("xcover/profile").inputs
    assert profile["executable-path"].required and profile["package"].default == "xcover"
    assert load_pipeline("npm/install").inputs["version"].required
    assert load_pipeline("npm/install").inputs["prefix"].default == "${{targets.contextdir}}/usr/"
    assert not load_pipeline("ruby/install").inputs["gem"].required
    assert load_pipeline("ruby/install").inputs["version"].required
    assert load_pipeline("python/import").inputs["python"].default == "DEFAULT"
    # melange's python/build*, python/install and perl/make take no inputs
    for name in ("python/build", "python/build-wheel", "python/install", "perl/make"):
        assert load_pipeline(name).inputs == {}, name
    assert load_pipeline("cran/fetch").inputs["strip-components"].default == "1"
    assert (BUILTIN_PIPELINES_DIR / "go" / "build" / "v2.yaml").is_file()


def _unknown_names(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [
        re.search(r"'([^']+)'", f.message).group(1)  # type: ignore[union-attr]
        for f in findings
        if f.rule == "unknown-pipeline"
    ]


def test_wolfi_sample_unknown_pipeline_only_for_wolfi_local(fixtures_dir: Path) -> None:
    sample = sorted((fixtures_dir / "wolfi-os-sample").glob("*.yaml"))
    assert len(sample) >= 150
    unknown: set[str] = set()
    input_findings = []
    for path in sample:
        result = lint_path(path, use_git=False)
        unknown |= set(_unknown_names(result.findings))
        input_findings += [
            f
            for f in result.findings
            if f.rule in {"unknown-pipeline-input", "missing-required-input"}
        ]
    assert unknown, "the sample uses Wolfi-local pipelines"
    assert unknown <= WOLFI_LOCAL, sorted(unknown - WOLFI_LOCAL)
    assert not unknown & MELANGE_NAMES
    # the melange built-ins the sample uses (go/build/v2, R/build, pecl/*, xcover/*, ...) are known
    for name in ("go/build/v2", "R/build", "pecl/phpize", "pecl/install", "xcover/profile"):
        assert name not in unknown
    # and every with: key real recipes give them is a declared input, every required one is set
    assert not input_findings, [str(f) for f in input_findings]


def _write(folder: Path, uses: str) -> Path:
    recipe = folder / "demo.yaml"
    recipe.write_text(
        "package:\n  name: demo\n  version: 1.0.0\n  epoch: 0\n  description: d\n"
        "  copyright:\n    - license: MIT\n"
        f"pipeline:\n  - uses: {uses}\n"
    )
    return recipe


def _unknown_messages(path: Path, dirs: list[Path] | None = None) -> list[str]:
    result = lint_path(path, use_git=False, pipeline_dirs=dirs or [])
    return [f.message for f in result.findings if f.rule == "unknown-pipeline"]


def test_pipeline_dir_hint_names_the_folder_beside_the_recipe(tmp_path: Path) -> None:
    """Wolfi's layout: os/*.yaml and os/pipelines/test/docs.yaml."""
    recipe = _write(tmp_path, "test/docs")
    (tmp_path / "pipelines" / "test").mkdir(parents=True)
    (tmp_path / "pipelines" / "test" / "docs.yaml").write_text("pipeline:\n  - runs: 'true'\n")
    (message,) = _unknown_messages(recipe)
    assert f"pass --pipeline-dir {tmp_path / 'pipelines'}" in message
    # given that folder, the name is known
    assert _unknown_messages(recipe, [tmp_path / "pipelines"]) == []


def test_no_pipeline_dir_hint_for_a_typo_of_a_builtin(tmp_path: Path) -> None:
    (message,) = _unknown_messages(_write(tmp_path, "autoconf/mak"))
    assert "did you mean 'autoconf/make'?" in message
    assert "--pipeline-dir" not in message


def test_no_pipeline_dir_hint_when_the_given_dirs_lack_it(tmp_path: Path) -> None:
    local = tmp_path / "mine"
    local.mkdir()
    (message,) = _unknown_messages(_write(tmp_path, "test/tw/ldd-check"), [local])
    assert "not a melange built-in and not defined in --pipeline-dir" in message
    assert "pass --pipeline-dir" not in message and "needs --pipeline-dir" not in message


def test_pipeline_dir_hint_when_nothing_was_given(tmp_path: Path) -> None:
    (message,) = _unknown_messages(_write(tmp_path, "py/pip-build-install"))
    assert "not a melange built-in" in message
    assert "--pipeline-dir DIR (the directory holding py/pip-build-install.yaml)" in message


def test_lint_text_without_a_path_still_reports(tmp_path: Path) -> None:
    text = _write(tmp_path, "local/thing").read_text()
    result = lint_text(text, "demo.yaml")
    (finding,) = [f for f in result.findings if f.rule == "unknown-pipeline"]
    assert "local/thing" in finding.message
