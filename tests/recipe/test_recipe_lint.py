"""Every lint rule fires on a small bad recipe and stays quiet on a good one; CLI exit codes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from nanodistro.recipe.lint import RULES, license_problem, lint_path, lint_text
from nanodistro.recipe.pipelines import MELANGE_BUILTIN_PIPELINES

SHA = "a" * 64
COMMIT = "b" * 40
NAMES = set(MELANGE_BUILTIN_PIPELINES)

GOOD: dict[str, Any] = {
    "package": {
        "name": "hello",
        "version": "2.12.1",
        "epoch": 0,
        "description": "GNU hello",
        "copyright": [{"license": "GPL-3.0-or-later"}],
    },
    "environment": {"contents": {"packages": ["build-base", "busybox"]}},
    "vars": {"sha": SHA},
    "var-transforms": [
        {"from": "${{package.version}}", "match": r"\.", "replace": "_", "to": "under"}
    ],
    "pipeline": [
        {
            "uses": "fetch",
            "with": {
                "uri": "https://ftp.gnu.org/gnu/hello/hello-${{package.version}}.tar.gz",
                "expected-sha256": "${{vars.sha}}",
            },
        },
        {"uses": "autoconf/configure"},
        {"uses": "autoconf/make"},
        {"uses": "autoconf/make-install"},
        {"runs": "echo ${{vars.under}}\npython3 -m pip install --no-index --no-deps .\n"},
    ],
    "subpackages": [
        {"name": "${{package.name}}-doc", "pipeline": [{"uses": "split/manpages"}]},
    ],
    "test": {"pipeline": [{"runs": "hello --version\ncurl -sf http://localhost:8080/"}]},
    "update": {"enabled": True, "release-monitor": {"identifier": 1371}},
}


def _text(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def _lint(data: dict[str, Any] | str) -> set[str]:
    text = data if isinstance(data, str) else _text(data)
    result = lint_text(text, "hello.yaml", pipeline_names=NAMES)
    return {finding.rule for finding in result.findings}


def test_good_recipe_is_clean() -> None:
    result = lint_text(_text(GOOD), "hello.yaml", pipeline_names=NAMES)
    assert result.findings == []
    assert result.clean


def _git_checkout(**with_: str) -> dict[str, Any]:
    return {"uses": "git-checkout", "with": {"repository": "https://github.com/gnu/hello", **with_}}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        node: Any = data
        parts = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parts[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value

    return apply


_DELETE = object()

MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "missing-checksum": _set("pipeline.0.with.expected-sha256", _DELETE),
    "valid-pipeline-fetch-digest": _set("vars.sha", "abc"),
    "missing-expected-commit": _set("pipeline.0", _git_checkout(tag="v${{package.version}}")),
    "valid-pipeline-git-checkout-tag-or-branch": _set(
        "pipeline.0", _git_checkout(**{"expected-commit": COMMIT})
    ),
    "valid-pipeline-fetch-uri": _set(
        "pipeline.0.with.uri", "https://bad_host/hello-${{package.version}}.tgz"
    ),
    "version-not-in-fetch-uri": _set("pipeline.0.with.uri", "https://ftp.gnu.org/hello.tgz"),
    "network-in-runs": _set(
        "pipeline.4.runs", "echo ${{vars.under}}\ncurl -LO https://example.org/x.tgz\n"
    ),
    "bad-template-var": _set("pipeline.4.runs", "make DESTDIR=$pkgdir install"),
    "sccache-enabled": _set("pipeline.1", {"uses": "sccache/enable"}),
    "unknown-pipeline": _set("pipeline.1", {"uses": "nope/nope"}),
    "unknown-pipeline-input": _set("pipeline.2", {"uses": "autoconf/make", "with": {"opt": "-j4"}}),
    "missing-required-input": _set(
        "pipeline.2", {"uses": "go/build", "with": {"packages": "./cmd/hello"}}
    ),
    "undefined-variable": _set("pipeline.4.runs", "echo ${{vars.nope}}"),
    "invalid-version": _set("package.version", "2.12.1-beta"),
    "invalid-license": _set("package.copyright", [{"license": "GPL-3.0-or-later AND Foo-1.0"}]),
    "valid-copyright-header": _set("package.copyright", _DELETE),
    "contains-epoch": _set("package.epoch", _DELETE),
    "duplicate-subpackage-name": _set(
        "subpackages", [{"name": "hello-doc"}, {"name": "${{package.name}}-doc"}]
    ),
    "no-repeated-deps": _set("environment.contents.packages", ["busybox", "make", "busybox"]),
    "forbidden-repository-used": _set(
        "environment.contents.repositories", ["https://packages.wolfi.dev/os"]
    ),
    "forbidden-keyring-used": _set(
        "environment.contents.keyring", ["https://packages.wolfi.dev/os/wolfi-signing.rsa.pub"]
    ),
    "tagged-repository-in-environment-repos": _set(
        "environment.contents.repositories", ["@local /home/build/packages"]
    ),
    "missing-update-block": _set("update", _DELETE),
    "update-disabled-reason": _set("update", {"enabled": False}),
    "valid-update-schedule": _set(
        "update.schedule", {"period": "hourly", "reason": "upstream is fast"}
    ),
    "git-checkout-must-use-github-updates": lambda d: (
        _set(
            "pipeline.0", _git_checkout(tag="v${{package.version}}", **{"expected-commit": COMMIT})
        )(d),
        _set("update", {"enabled": True})(d),
    ),
    "update-identifier-must-match-git-repository": lambda d: (
        _set(
            "pipeline.0", _git_checkout(tag="v${{package.version}}", **{"expected-commit": COMMIT})
        )(d),
        _set("update", {"enabled": True, "github": {"identifier": "other/hello"}})(d),
    ),
    "unused-var-transform": _set("pipeline.4.runs", "make check"),
    "valid-package-or-subpackage-test": _set("test", _DELETE),
}


def test_every_rule_has_a_bad_example() -> None:
    untested = (
        {rule.name for rule in RULES}
        - set(MUTATIONS)
        - {
            "epoch-not-reset",
            "check-when-version-changes",
        }
    )
    assert untested == set()


# Findings a mutation legitimately brings along (the vars transform loses its only use; an
# unknown pipeline is also unknown; a bad schedule also fails to load).
ALSO_FIRES = {
    # a GitHub git-checkout with a release-monitor update: block (wolfictl fires on it too)
    "missing-expected-commit": {"git-checkout-must-use-github-updates"},
    "valid-pipeline-git-checkout-tag-or-branch": {"git-checkout-must-use-github-updates"},
    "bad-template-var": {"unused-var-transform"},
    "sccache-enabled": {"unknown-pipeline"},
    "undefined-variable": {"unused-var-transform"},
    "valid-update-schedule": {"load-error"},
}


@pytest.mark.parametrize("rule", sorted(MUTATIONS))
def test_rule_fires_on_bad_recipe(rule: str) -> None:
    data = copy.deepcopy(GOOD)
    MUTATIONS[rule](data)
    assert _lint(data) == {rule} | ALSO_FIRES.get(rule, set())  # that rule, and no stray finding


def test_rule_finding_has_line_and_disable_works() -> None:
    data = copy.deepcopy(GOOD)
    MUTATIONS["network-in-runs"](data)
    text = _text(data)
    result = lint_text(text, "hello.yaml", pipeline_names=NAMES)
    (finding,) = result.findings
    assert text.splitlines()[finding.line - 1].strip() == "curl -LO https://example.org/x.tgz"  # type: ignore[operator]
    assert finding.to_json()["severity"] == "error"
    assert lint_text(text, "h", pipeline_names=NAMES, disabled=["network-in-runs"]).findings == []


def test_check_when_version_changes() -> None:
    # as wolfictl: the marker is a comment line in a build step's runs:
    data = copy.deepcopy(GOOD)
    data["pipeline"][4]["runs"] += "# CHECK-WHEN-VERSION-CHANGES: 2.11\n"
    text = _text(data)
    assert _lint(text) == {"check-when-version-changes"}
    assert _lint(text.replace("2.11", "2.12.1")) == set()
    data["subpackages"][0]["pipeline"].append({"runs": "# CHECK-WHEN-VERSION-CHANGES: 1\n"})
    data["pipeline"][4]["runs"] = GOOD["pipeline"][4]["runs"]
    assert _lint(data) == {"check-when-version-changes"}
    # a YAML comment outside runs: melange drops it, wolfictl never sees it (fired before)
    assert _lint(_text(GOOD) + "# CHECK-WHEN-VERSION-CHANGES: 2.11\n") == set()


def test_network_rule_ignores_tests_comments_and_offline_pip() -> None:
    data = copy.deepcopy(GOOD)
    data["pipeline"][4]["runs"] = (
        "# curl https://x\npip install --no-index --find-links dist foo\necho ${{vars.under}}\n"
    )
    assert _lint(data) == set()
    for line in (
        "wget https://x",
        "git clone https://x",
        "go get ./...",
        "npm ci",
        "pip install x",
    ):
        data["pipeline"][4]["runs"] = f"cd src && {line}\necho ${{{{vars.under}}}}"
        assert _lint(data) == {"network-in-runs"}, line


def test_unloadable_recipe_reports_load_error_and_raw_rules() -> None:
    data = copy.deepcopy(GOOD)
    MUTATIONS["valid-update-schedule"](data)
    result = lint_text(_text(data), "hello.yaml", pipeline_names=NAMES)
    assert not result.loaded
    assert {f.rule for f in result.findings} == {"load-error", "valid-update-schedule"}
    broken = lint_text("package: [", "broken.yaml")
    assert [f.rule for f in broken.findings] == ["load-error"]


@pytest.mark.parametrize(
    ("expression", "ok"),
    [
        ("MIT", True),
        ("GPL-2.0-only OR GPL-3.0-only", True),
        ("Apache-2.0 WITH LLVM-exception", True),
        ("LicenseRef-xorg-font-misc", True),
        ("MIT AND LicenseRef-foo", True),
        ("custom", True),
        ("PROPRIETARY", True),
        ("Foo-1.0", False),
        ("MIT OR", False),
        ("MIT AND", False),
    ],
)
def test_license_expressions(expression: str, ok: bool) -> None:
    assert (license_problem(expression) is None) is ok


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_epoch_not_reset_uses_git_history(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    recipe = tmp_path / "hello.yaml"
    old = copy.deepcopy(GOOD)
    old["package"]["version"] = "2.12.0"
    old["package"]["epoch"] = 3
    recipe.write_text(_text(old))
    _git(tmp_path, "add", "hello.yaml")
    _git(tmp_path, "commit", "-q", "-m", "2.12.0")
    # A bump being prepared in the working tree, epoch not reset.
    bumped = copy.deepcopy(GOOD)
    bumped["package"]["epoch"] = 3
    recipe.write_text(_text(bumped))
    rules = {f.rule for f in lint_path(recipe, pipeline_names=NAMES).findings}
    assert rules == {"epoch-not-reset"}
    # The same bump once committed: compared with HEAD~1.
    _git(tmp_path, "commit", "-q", "-am", "2.12.1")
    assert {f.rule for f in lint_path(recipe, pipeline_names=NAMES).findings} == {"epoch-not-reset"}
    (tmp_path / "other.txt").write_text("unrelated")
    _git(tmp_path, "add", "other.txt")
    _git(tmp_path, "commit", "-q", "-m", "unrelated change")
    assert {f.rule for f in lint_path(recipe, pipeline_names=NAMES).findings} == {"epoch-not-reset"}
    # Epoch reset: clean. A rebuild at the same version may raise the epoch.
    recipe.write_text(_text(GOOD))
    assert lint_path(recipe, pipeline_names=NAMES).findings == []
    old["package"]["epoch"] = 4
    recipe.write_text(_text(old))
    _git(tmp_path, "commit", "-q", "-am", "back")
    recipe.write_text(_text({**old, "package": {**old["package"], "epoch": 5}}))
    assert lint_path(recipe, pipeline_names=NAMES).findings == []
    # Outside git: skipped.
    outside = tmp_path.parent / f"{tmp_path.name}-plain.yaml"
    outside.write_text(_text(bumped))
    assert lint_path(outside, pipeline_names=NAMES, use_git=True).findings == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", "lint", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(_text(GOOD))
    warn = tmp_path / "warn.yaml"
    data = copy.deepcopy(GOOD)
    MUTATIONS["update-disabled-reason"](data)
    warn.write_text(_text(data))
    bad = tmp_path / "bad.yaml"
    data = copy.deepcopy(GOOD)
    MUTATIONS["missing-checksum"](data)
    bad.write_text(_text(data))
    broken = tmp_path / "broken.yaml"
    broken.write_text("package:\n  name: x\n  versoin: 1\n")

    clean = _cli("--no-git", str(good))
    assert (clean.returncode, clean.stdout) == (0, "")
    assert "1 clean, 0 failed to load, 0 error(s), 0 warning(s)" in clean.stderr
    warned = _cli("--no-git", str(warn))
    assert warned.returncode == 0  # warnings alone do not fail
    assert warned.stdout == (
        f"{warn}:43: warning: update disabled without exclude-reason [update-disabled-reason]\n"
    )
    result = _cli("--no-git", "--json", str(bad), str(warn))
    assert result.returncode == 1
    findings = json.loads(result.stdout)
    assert {f["rule"] for f in findings} == {"missing-checksum", "update-disabled-reason"}
    assert set(findings[0]) == {"file", "line", "rule", "severity", "message"}
    result = _cli("--no-git", str(broken))
    assert result.returncode == 2
    assert "broken.yaml:3: error: package.versoin: unknown key" in result.stdout
    assert "Traceback" not in result.stderr
    disabled = _cli("--no-git", "--disable", "missing-checksum", str(bad))
    assert (disabled.returncode, disabled.stdout) == (0, "")
    unknown = _cli("--disable", "no-such-rule", str(good))
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: unknown lint rule(s): no-such-rule")
    local = tmp_path / "pipelines" / "my"
    local.mkdir(parents=True)
    (local / "step.yaml").write_text("name: my step\npipeline: [{runs: 'true'}]\n")
    data = copy.deepcopy(GOOD)
    data["pipeline"][1] = {"uses": "my/step"}
    custom = tmp_path / "custom.yaml"
    custom.write_text(_text(data))
    assert _cli("--no-git", str(custom)).returncode == 1
    assert (
        _cli("--no-git", "--pipeline-dir", str(tmp_path / "pipelines"), str(custom)).returncode == 0
    )


def test_wolfi_sample_lint_counts(fixtures_dir: Path, scoreboard: Callable[[str], None]) -> None:
    files = sorted((fixtures_dir / "wolfi-os-sample").glob("*.yaml"))
    assert len(files) >= 150
    results = [lint_path(path, use_git=False, pipeline_names=NAMES) for path in files]
    loaded = sum(r.loaded for r in results)
    clean = sum(r.clean for r in results)
    without_unknown = sum(
        r.loaded and not [f for f in r.errors if f.rule != "unknown-pipeline"] for r in results
    )
    scoreboard(
        f"wolfi recipe sample lint: {len(files)} recipes, {loaded} load, {clean} lint clean, "
        f"{without_unknown} clean apart from Wolfi-local pipelines (unknown-pipeline)"
    )
    assert loaded == len(files)
    assert without_unknown >= len(files) - 15


def test_undefined_variable_in_subpackage_fields() -> None:
    data = copy.deepcopy(GOOD)
    data["subpackages"][0]["dependencies"] = {"runtime": ["${{vars.nope}}"]}
    result = lint_text(_text(data), "hello.yaml", pipeline_names=NAMES)
    (finding,) = result.findings
    assert finding.rule == "undefined-variable"
    assert finding.line is not None and "vars.nope" in finding.message


def test_network_rule_joins_continuation_lines_and_suggests_pipelines() -> None:
    data = copy.deepcopy(GOOD)
    data["pipeline"][4]["runs"] = (
        "echo ${{vars.under}}\npip install --no-deps \\\n  --no-index --find-links dist foo\n"
    )
    assert _lint(data) == set()
    data["pipeline"][4]["runs"] = "echo ${{vars.under}}\npip install \\\n  requests\n"
    result = lint_text(_text(data), "hello.yaml", pipeline_names=NAMES)
    (finding,) = result.findings
    assert finding.rule == "network-in-runs" and "requests" in finding.message
    data = copy.deepcopy(GOOD)
    data["pipeline"][1] = {"uses": "autoconf/configur"}
    result = lint_text(_text(data), "hello.yaml", pipeline_names=NAMES)
    assert "did you mean 'autoconf/configure'" in result.findings[0].message


@pytest.mark.parametrize(
    ("uri", "clean"),
    [
        ("mirror://debian/pool/main/h/hello/hello_${{package.version}}.orig.tar.gz", True),
        ("mirror://debian", False),
    ],
)
def test_mirror_uris_are_valid_fetch_uris(uri: str, clean: bool) -> None:
    data = copy.deepcopy(GOOD)
    _set("pipeline.0.with.uri", uri)(data)
    assert ("valid-pipeline-fetch-uri" not in _lint(data)) is clean


def test_pipeline_input_rules_name_the_with_key_line(tmp_path: Path) -> None:
    """An undeclared input is reported at its `with:` key; a required input without default at
    the step's `with:` (or `uses:`), also for pipelines of --pipeline-dir; melange refuses both."""
    text = """package:
  name: hello
  version: "1"
  epoch: 0
  copyright:
    - license: MIT
pipeline:
  - uses: autoconf/make
    with:
      dir: src
      opt: -j4
  - uses: local/build
  - uses: local/build
    with:
      target: all
update:
  enabled: false
  exclude-reason: test
"""
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "build.yaml").write_text(
        "inputs:\n  target:\n    required: true\n  mode:\n    required: true\n"
        "    default: fast\npipeline:\n  - runs: make ${{inputs.target}}\n"
    )
    result = lint_text(text, "hello.yaml", pipeline_dirs=[tmp_path])
    found = [(f.line, f.rule, f.message) for f in result.findings if "input" in f.rule]
    assert found == [
        (
            11,
            "unknown-pipeline-input",
            "pipeline 'autoconf/make' has no input 'opt' (declared: dir, opts, targets)",
        ),
        (12, "missing-required-input", "pipeline 'local/build' needs input 'target' "
         "(required, no default)"),
    ]  # fmt: skip
    assert text.splitlines()[10].strip() == "opt: -j4"
    assert text.splitlines()[11].strip() == "- uses: local/build"
    assert not result.clean
