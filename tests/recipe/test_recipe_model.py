"""Loading melange recipes: strings stay strings, every key of formats.md §5, errors with lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanodistro.recipe.model import (
    RecipeLoadError,
    load_recipe,
    load_recipe_text,
    with_melange_defaults,
)
from nanodistro.recipe.update import UpdateConfig

FULL = """\
package:
  name: hello
  version: 1.10
  epoch: 3
  description: "hello world"
  url: https://example.org/hello
  commit: 0123456789abcdef0123456789abcdef01234567
  annotations: {team: core}
  target-architecture: [x86_64, aarch64]
  copyright:
    - license: GPL-3.0-or-later
      paths: ["*"]
      attestation: Copyright the hello authors
      license-path: COPYING
      detection-override: GPL-3.0-or-later
  dependencies:
    runtime: [libc]
    provides: ["greeter=${{package.full-version}}"]
    replaces: [hello-old]
    provider-priority: 10
    replaces-priority: "5"
  options: {no-provides: false, no-depends: false, no-commands: true, no-versioned-shlib-deps: true}
  scriptlets:
    trigger: {script: "#!/bin/sh\\necho", paths: [/usr/lib/hello]}
    pre-install: "#!/bin/sh"
    post-install: "#!/bin/sh"
    pre-deinstall: "#!/bin/sh"
    post-deinstall: "#!/bin/sh"
    pre-upgrade: "#!/bin/sh"
    post-upgrade: "#!/bin/sh"
  checks: {disabled: [empty]}
  cpe: {vendor: gnu, product: hello}
  setcap:
    - path: /usr/bin/hello
      add: {cap_net_bind_service: "+ep"}
      reason: binds :80
  timeout: 1h30m
  resources: {cpu: "4", memory: 8Gi}
  test-resources: {cpu: "1"}
environment:
  contents:
    repositories: [https://example.org/os]
    build_repositories: [./packages]
    keyring: [https://example.org/key.rsa.pub]
    packages: [build-base, busybox]
  accounts:
    users: [{username: build, uid: 1000}]
    groups: [{groupname: build, gid: 1000}]
    run-as: build
  environment: {CFLAGS: -O2}
capabilities: {add: [CAP_NET_ADMIN], drop: [CAP_SYS_ADMIN]}
vars:
  py-version: 3.10
var-transforms:
  - from: ${{package.version}}
    match: \\.(\\d+)$
    replace: _$1
    to: mangled
data:
  - name: pythons
    items: {"3.12": py312, 3.11: py311}
options:
  fast:
    vars: {opt: -O3}
    environment: {contents: {packages: {add: [clang], remove: [gcc]}}}
pipeline:
  - uses: fetch
    with:
      uri: https://example.org/hello-${{package.version}}.tar.gz
      expected-sha256: 31a2be7bb8b4ea5c8e8cb73ae1b6a0b4ec5b2d1e6fb4cdf7a2d0b3b57e3e4c4c
  - name: build
    if: ${{build.arch}} == 'x86_64'
    working-directory: src
    environment: {CC: gcc}
    needs: {packages: [make]}
    label: compile
    assertions: {required-steps: 1}
    pipeline:
      - runs: make
subpackages:
  - name: py${{range.key}}-hello
    range: pythons
    if: ${{range.key}} != '3.9'
    description: for ${{range.value}}
    url: https://example.org
    commit: abc
    dependencies: {runtime: ["python-${{range.key}}"]}
    options: {no-provides: true}
    scriptlets: {post-install: "#!/bin/sh"}
    checks: {disabled: [dev]}
    setcap: [{path: /usr/bin/x, add: {cap_chown: "+ep"}}]
    pipeline: [{runs: "mkdir -p ${{targets.subpkgdir}}"}]
    test:
      environment: {contents: {packages: ["python-${{range.key}}"]}}
      pipeline: [{runs: "true"}]
test:
  environment: {contents: {packages: [bash]}}
  pipeline:
    - runs: hello --version
update:
  enabled: true
  github: {identifier: example/hello, strip-prefix: v, use-tag: true}
"""


def test_every_documented_key_loads_and_scalars_stay_strings() -> None:
    recipe = load_recipe_text(FULL, "hello.yaml")
    pkg = recipe.package
    assert pkg.version == "1.10"
    assert pkg.epoch == 3
    assert pkg.full_version == "1.10-r3"
    assert pkg.dependencies.provider_priority == "10"
    assert pkg.scriptlets is not None and pkg.scriptlets.trigger is not None
    assert pkg.scriptlets.trigger.paths == ["/usr/lib/hello"]
    assert pkg.options is not None and pkg.options.no_versioned_shlib_deps is True
    assert pkg.setcap[0].add == {"cap_net_bind_service": "+ep"}
    assert pkg.timeout_seconds == 5400
    assert pkg.resources is not None and pkg.resources.cpu == "4"
    assert recipe.vars == {"py-version": "3.10"}
    assert recipe.data[0].items == {"3.12": "py312", "3.11": "py311"}
    assert recipe.options["fast"].environment.contents.packages.add == ["clang"]
    assert recipe.environment.contents.build_repositories == ["./packages"]
    assert recipe.environment.accounts.run_as == "build"
    assert recipe.capabilities is not None and recipe.capabilities.drop == ["CAP_SYS_ADMIN"]
    step = recipe.pipeline[1]
    assert step.if_ == "${{build.arch}} == 'x86_64'"
    assert step.needs is not None and step.needs.packages == ["make"]
    assert step.assertions is not None and step.assertions.required_steps == 1
    assert step.pipeline[0].runs == "make"
    assert recipe.subpackages[0].range_ == "pythons"
    assert isinstance(recipe.update, UpdateConfig)
    assert recipe.update.github is not None and recipe.update.github.identifier == "example/hello"
    assert recipe.line_of(("pipeline", 1, "if")) == 72
    assert len(recipe.all_steps()) == 6


def test_melange_parse_time_defaults() -> None:
    recipe = load_recipe_text(FULL)
    env = with_melange_defaults(recipe.environment)
    assert env.environment["HOME"] == "/home/build"
    assert env.environment["CFLAGS"] == "-O2"
    assert [g.groupname for g in env.accounts.groups] == ["build"]
    assert recipe.environment.environment == {"CFLAGS": "-O2"}


def _error(text: str) -> RecipeLoadError:
    with pytest.raises(RecipeLoadError) as info:
        load_recipe_text(text, "recipes/foo.yaml")
    return info.value


def test_bad_digest_names_file_line_and_key_path() -> None:
    error = _error(
        "package: {name: foo, version: 1.0}\n"
        "pipeline:\n"
        "  - uses: git-checkout\n"
        "    with: {repository: https://x, expected-commit: abc}\n"
        "  - uses: fetch\n"
        "    with:\n"
        "      uri: https://x/foo.tgz\n"
        "      expected-sha256: nothex\n"
    )
    assert str(error).startswith(
        "recipes/foo.yaml:4: pipeline[0].with.expected-commit: expected 40"
    )
    assert (8, "pipeline[1].with.expected-sha256", "expected 64 lowercase hex characters") in (
        error.problems
    )


def test_unknown_key_is_an_error_like_melange_knownfields() -> None:
    error = _error("package: {name: foo, version: 1.0}\npipeline:\n  - runs: make\n    run: x\n")
    assert error.line == 4
    assert error.field == "pipeline[0].run"
    assert "unknown key" in error.message and "runs" in error.message


def test_missing_required_and_wrong_types() -> None:
    error = _error("package:\n  name: foo\n  epoch: -1\nsubpackages:\n  - description: x\n")
    fields = {field for _, field, _ in error.problems}
    assert fields == {"package.version", "package.epoch", "subpackages[0].name"}
    error = _error(
        "package: {name: foo, version: 1}\nenvironment:\n  contents:\n    packages: busybox\n"
    )
    assert error.field == "environment.contents.packages"
    assert error.message == "expected a list"


def test_structural_errors() -> None:
    assert (
        "both"
        in _error("package: {name: foo, version: 1}\npipeline: [{uses: strip, runs: x}]\n").message
    )
    assert (
        "'with' needs 'uses'"
        in _error("package: {name: foo, version: 1}\npipeline: [{with: {a: b}}]\n").message
    )
    assert (
        "undefined range"
        in _error(
            "package: {name: foo, version: 1}\nsubpackages: [{name: x, range: nope}]\n"
        ).message
    )
    assert _error("package: {name: foo, version: 1}\npackage: {}\n").line == 2
    assert "invalid YAML" in _error("package: [\n").message
    assert "mapping" in _error("- a\n- b\n").message
    assert (
        "priority"
        in _error(
            "package: {name: foo, version: 1, dependencies: {provider-priority: high}}\n"
        ).message
    )


def test_null_values_behave_like_go_zero_values() -> None:
    recipe = load_recipe_text(
        "package:\n  name: foo\n  version: 1\n  description:\n"
        "pipeline:\n  - uses: fetch\n    with:\n      uri: x\n      extract:\n"
    )
    assert recipe.package.description == ""
    assert recipe.pipeline[0].with_ == {"uri": "x", "extract": ""}


def test_load_recipe_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeLoadError, match="file not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"package: \xff\n")
    with pytest.raises(RecipeLoadError, match="UTF-8"):
        load_recipe(bad)


def test_wolfi_sample_all_load(fixtures_dir: Path, scoreboard: Callable[[str], None]) -> None:
    files = sorted((fixtures_dir / "wolfi-os-sample").glob("*.yaml"))
    assert len(files) >= 150
    start = time.perf_counter()
    loaded = [load_recipe(path) for path in files]
    elapsed = time.perf_counter() - start
    scoreboard(f"wolfi recipe sample: {len(loaded)}/{len(files)} recipes load ({elapsed:.2f} s)")
    assert len(loaded) == len(files)
    python = next(r for r in loaded if r.package.name == "python-3.13")
    assert python.package.version.count(".") == 2


def test_alias_bombs_and_recursion_are_errors() -> None:
    assert "recursive" in _error("a: &a [*a]\n").message
    levels = "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    assert "alias bomb" in _error("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + levels).message
    merged = load_recipe_text(
        "x-base: &b {name: x, version: '1'}\n".replace("x-base", "vars") + "package:\n  <<: *b\n"
    )
    assert merged.package.name == "x"


@given(st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"#\n ,?%@`01.")), max_size=80))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_gives_recipe_errors_only(text: str) -> None:
    try:
        load_recipe_text(text, "fuzz.yaml")
    except RecipeLoadError as error:
        assert str(error).startswith("fuzz.yaml")


def test_unknown_key_hint_inside_named_maps() -> None:
    error = _error("package: {name: a, version: '1'}\noptions:\n  fast:\n    varz: {}\n")
    assert error.field == "options.fast.varz"
    assert error.message == "unknown key (did you mean 'vars'?)"  # a misspelling: the key meant
    error = _error("package: {name: a, version: '1'}\noptions:\n  fast:\n    colour: {}\n")
    assert error.message == "unknown key (expected one of: environment, vars)"  # else the list
    error = _error("package: {name: a, version: '1'}\nupdate: {enabled: true, githb: {}}\n")
    assert error.field == "update.githb" and "github" in error.message
