"""Lint parity with wolfictl (pkg/lint): ``#nolint`` directives, rule semantics where the names are
shared, ``network-in-runs`` reading shell commands, and the ``--summary`` corpus report.

Each fixed semantic has a snippet that fired before and must not now, next to one that must still
fire.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli_runner import run_cli
from nanodistro.recipe.lint import lint_text
from nanodistro.recipe.pipelines import MELANGE_BUILTIN_PIPELINES

NAMES = set(MELANGE_BUILTIN_PIPELINES)
COMMIT = "b" * 40

BASE: dict[str, Any] = {
    "package": {
        "name": "hello",
        "version": "2.12.1",
        "epoch": 0,
        "description": "GNU hello",
        "copyright": [{"license": "GPL-3.0-or-later"}],
    },
    "environment": {"contents": {"packages": ["build-base", "busybox"]}},
    "pipeline": [
        {
            "uses": "fetch",
            "with": {
                "uri": "https://ftp.gnu.org/gnu/hello/hello-${{package.version}}.tar.gz",
                "expected-sha256": "a" * 64,
            },
        },
        {"runs": "make\n"},
    ],
    "test": {"pipeline": [{"runs": "hello --version\n"}]},
    "update": {"enabled": True, "release-monitor": {"identifier": 1371}},
}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, the way recipes write ``runs:``."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False)


def _findings(data: dict[str, Any] | str) -> list[tuple[str, int | None]]:
    text = data if isinstance(data, str) else _dump(data)
    result = lint_text(text, "hello.yaml", pipeline_names=NAMES)
    return [(finding.rule, finding.line) for finding in result.findings]


def _rules(data: dict[str, Any] | str) -> set[str]:
    return {rule for rule, _line in _findings(data)}


def _with_runs(script: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["pipeline"][1]["runs"] = script
    return data


def test_base_recipe_is_clean() -> None:
    assert _findings(BASE) == []


# --- bad-template-var: the literal texts, build steps only --------------------------------------


@pytest.mark.parametrize(
    ("script", "fires"),
    [
        ("make DESTDIR=$pkgdir install", True),
        ('cp -r build/* "$pkgdir"/usr', True),
        ("echo $pkgname-$pkgver", True),
        ("pkgname=hello\necho ${pkgname}", False),  # a shell variable the script set (fired before)
        ('srcdir="$(pwd)"; cd "${srcdir}"', False),  # fired before
    ],
)
def test_bad_template_var_only_on_literal_text(script: str, fires: bool) -> None:
    assert ("bad-template-var" in _rules(_with_runs(script))) is fires


def test_bad_template_var_not_in_test_pipelines() -> None:
    data = copy.deepcopy(BASE)
    data["test"]["pipeline"][0]["runs"] = "ls $pkgdir || true\n"  # fired before
    assert _rules(data) == set()


# --- environment rules: the build environment only ---------------------------------------------

_WOLFI_REPO = "https://packages.wolfi.dev/os"
_WOLFI_KEY = "https://packages.wolfi.dev/os/wolfi-signing.rsa.pub"


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("repositories", _WOLFI_REPO, "forbidden-repository-used"),
        ("runtime_repositories", _WOLFI_REPO, "forbidden-repository-used"),
        ("keyring", _WOLFI_KEY, "forbidden-keyring-used"),
        ("repositories", "@local /home/build/packages", "tagged-repository-in-environment-repos"),
    ],
)
def test_environment_rules_apply_to_the_build_environment_only(
    key: str, value: str, rule: str
) -> None:
    in_test = copy.deepcopy(BASE)
    in_test["test"]["environment"] = {"contents": {key: [value], "packages": ["hello"]}}
    assert _rules(in_test) == set()  # fired before
    sub_test = copy.deepcopy(BASE)
    sub_test["subpackages"] = [
        {
            "name": "hello-doc",
            "test": {
                "environment": {"contents": {key: [value]}},
                "pipeline": [{"runs": "true"}],
            },
        }
    ]
    assert _rules(sub_test) == set()  # fired before
    in_build = copy.deepcopy(BASE)
    in_build["environment"]["contents"][key] = [value]
    assert _rules(in_build) == {rule}


# --- update rules --------------------------------------------------------------------------------


def _github_checkout(repository: str, identifier: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["vars"] = {"owner": "gnu", "project": "hello"}
    data["pipeline"][0] = {
        "uses": "git-checkout",
        "with": {
            "repository": repository,
            "tag": "v${{package.version}}",
            "expected-commit": COMMIT,
        },
    }
    data["update"] = {"enabled": True, "github": {"identifier": identifier}}
    return data


def test_update_identifier_compared_after_substitution() -> None:
    templated = "https://github.com/${{vars.owner}}/${{package.name}}"
    assert _rules(_github_checkout(templated, "gnu/hello")) == set()  # fired before
    assert _rules(_github_checkout(templated, "GNU/Hello.git")) == set()  # as wolfictl: any case
    assert (
        _rules(_github_checkout("https://github.com/gnu/hello", "${{vars.owner}}/hello")) == set()
    )
    assert _rules(_github_checkout(templated, "other/hello")) == {
        "update-identifier-must-match-git-repository"
    }


def test_github_checkout_needs_github_or_git_monitor_even_with_release_monitor() -> None:
    data = _github_checkout("https://github.com/gnu/hello", "gnu/hello")
    assert _rules(data) == set()
    data["update"] = {"enabled": True, "release-monitor": {"identifier": 1371}}
    assert _rules(data) == {"git-checkout-must-use-github-updates"}  # wolfictl fires; we did not
    data["update"] = {"enabled": True, "git": {}}
    assert _rules(data) == set()
    data["update"] = {"enabled": False, "exclude-reason": "frozen"}
    assert _rules(data) == set()


@pytest.mark.parametrize(
    ("repository", "fires"),
    [
        ("https://github.com/gnu/hello", False),
        ("file:///home/build/hello.git", False),
        ("https://gіthub.com/gnu/hello", True),  # Cyrillic і: a homograph of github.com
        ("https://github_com/gnu/hello", True),
    ],
)
def test_git_checkout_repository_host_is_checked(repository: str, fires: bool) -> None:
    # wolfictl's valid-pipeline-fetch-uri also reads git-checkout repositories (did not fire)
    rules = _rules(_github_checkout(repository, "gnu/hello"))
    assert ("valid-pipeline-fetch-uri" in rules) is fires


def test_contains_epoch_asks_for_the_key_only() -> None:
    text = _dump(BASE)
    assert "contains-epoch" not in _rules(text.replace("epoch: 0", "epoch:"))  # fired before
    assert "contains-epoch" in _rules(text.replace("  epoch: 0\n", ""))


def test_copyright_entry_without_license_is_reported() -> None:
    data = copy.deepcopy(BASE)
    data["package"]["copyright"] = [{"license": "GPL-3.0-or-later"}, {"license": ""}]
    assert "valid-copyright-header" in _rules(data)  # wolfictl "license is missing"; we did not


# --- version-not-in-fetch-uri: as wolfictl's fetch-templating -------------------------------------


def _two_sources(second_uri: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["pipeline"].insert(
        1,
        {
            "uses": "fetch",
            "with": {"uri": second_uri, "expected-sha256": "c" * 64, "extract": "false"},
        },
    )
    return data


def test_version_rule_accepts_a_pinned_second_source() -> None:
    pinned = _two_sources("https://example.org/helper-0.9.tar.gz")
    assert _rules(pinned) == set()  # fired before: the main source follows the version
    assert _rules(_two_sources("https://example.org/hello-doc-2.12.1.tar.gz")) == {
        "version-not-in-fetch-uri"  # spells out the package version
    }
    pinned["pipeline"][0]["with"]["uri"] = "https://ftp.gnu.org/gnu/hello/hello-2.12.tar.gz"
    # no source follows the version: each is reported, on its uri line
    text = _dump(pinned)
    findings = _findings(text)
    assert [rule for rule, _ in findings] == ["version-not-in-fetch-uri"] * 2
    assert [text.splitlines()[line - 1].split("/")[-1] for _, line in findings] == [  # type: ignore[operator]
        "hello-2.12.tar.gz",
        "helper-0.9.tar.gz",
    ]
    pinned["update"]["manual"] = True
    assert _rules(pinned) == set()  # not bumped automatically (fired before)


# --- network-in-runs: shell commands, not words ------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        "git clone . /tmp/copy",
        "git clone --depth 1 ./vendor/lib build/lib",
        "git clone file:///home/build/mirror.git src",
        "git fetch ../upstream.git main",
        'echo "now curl the file and git clone the repo"',
        'die "download failed: wget returned $?"',
        "printf '%s\\n' 'run: npm install' > hint.txt",
        "cat > notes.txt <<EOF\ncurl -LO https://example.org/x.tgz\nwget https://example.org/y\nEOF",
        "make  # then curl the results elsewhere",
        "npm install --offline",
        'case "$tool" in\n  curl|wget) echo "fetch with curl later" ;;\n  *) true ;;\nesac',
    ],
)
def test_network_rule_ignores_local_git_and_words_in_strings(script: str) -> None:
    assert _rules(_with_runs(script)) == set()  # each fired before


@pytest.mark.parametrize(
    "script",
    [
        "curl -LO https://example.org/x.tgz",
        "cd src && wget https://example.org/x.tgz",
        'VERSION="$(curl -s https://example.org/latest)"',
        "git clone https://github.com/gnu/hello",
        "git clone --depth 1 git@github.com:gnu/hello.git",
        "git fetch origin",
        "git submodule update --init",
        "python${{vars.py}} -m pip install requests",
        "sudo pip3 install requests",
        "bash -c 'go mod download'",
        "npm ci",
        "make &&\\\n  cargo fetch",
        "(cd sub && curl -O https://example.org/x)",
    ],
)
def test_network_rule_still_fires_on_commands(script: str) -> None:
    data = _with_runs(script)
    data["vars"] = {"py": "3.12"}
    assert _rules(data) == {"network-in-runs"}


def test_network_finding_points_at_the_continued_command_line() -> None:
    script = "pip install --upgrade pip --no-index\npip install \\\n  requests\n"
    text = _dump(_with_runs(script))
    ((rule, line),) = _findings(text)
    assert rule == "network-in-runs"
    assert text.splitlines()[line - 1].strip() == "pip install \\"  # type: ignore[operator]


# --- #nolint -------------------------------------------------------------------------------------

NETWORK_RECIPE = _dump(_with_runs("curl -LO https://example.org/x.tgz\n"))


def test_nolint_file_directive_as_wolfictl() -> None:
    assert _rules(NETWORK_RECIPE) == {"network-in-runs"}
    assert _findings("#nolint:network-in-runs\n" + NETWORK_RECIPE) == []
    # wolfictl reads any line that starts with #nolint:, not only the first one
    assert _findings("# a recipe\n#nolint:documentation,network-in-runs\n" + NETWORK_RECIPE) == []
    # another rule named: the finding stays
    assert _rules("#nolint:bad-template-var\n" + NETWORK_RECIPE) == {"network-in-runs"}


def test_nolint_wolfictl_rule_names_waive_ours() -> None:
    data = copy.deepcopy(BASE)
    data["pipeline"][0] = {
        "uses": "git-checkout",
        "with": {"repository": "https://gitlab.com/gnu/hello", "expected-commit": COMMIT},
    }
    text = _dump(data)
    assert _rules(text) == {"valid-pipeline-git-checkout-tag-or-branch"}
    assert _findings("#nolint:valid-pipeline-git-checkout-tag\n" + text) == []


def test_nolint_on_a_line_waives_that_line_only() -> None:
    script = (
        "curl -LO https://example.org/a.tgz  # nolint:network-in-runs\n"
        "wget https://example.org/b.tgz\n"
    )
    text = _dump(_with_runs(script))
    findings = _findings(text)
    assert [rule for rule, _ in findings] == ["network-in-runs"]
    assert "wget" in text.splitlines()[findings[0][1] - 1]  # type: ignore[operator]


def test_nolint_on_the_rules_key_waives_that_key_only() -> None:
    text = _dump(BASE).replace(
        "  contents:\n    packages:",
        "  contents:\n    repositories: # nolint:forbidden-repository-used\n"
        f"    - {_WOLFI_REPO}\n    keyring:\n    - {_WOLFI_KEY}\n    packages:",
    )
    assert _rules(text) == {"forbidden-keyring-used"}
    # a comment line of its own above the key waives the key below it
    text = text.replace("    keyring:", "    # nolint:forbidden-keyring-used\n    keyring:")
    assert _findings(text) == []
    # the same waiver elsewhere does not reach the repository
    assert _rules(text.replace(" # nolint:forbidden-repository-used", "")) == {
        "forbidden-repository-used"
    }


def test_nolint_never_waives_load_errors() -> None:
    assert _rules("#nolint:load-error\npackage: [\n") == {"load-error"}


# --- --summary ----------------------------------------------------------------------------------

# Pipeline rules depend on the built-in pipeline set, which changes on its own; they are left out.
_PIPELINE_RULES = ("unknown-pipeline", "unknown-pipeline-input", "missing-required-input")
SAMPLE_COUNTS = {
    "network-in-runs": {"severity": "error", "findings": 31, "recipes": 10},
    "update-disabled-reason": {"severity": "warning", "findings": 2, "recipes": 2},
    "missing-expected-commit": {"severity": "error", "findings": 1, "recipes": 1},
}


def _disable_pipeline_rules() -> list[str]:
    return [arg for rule in _PIPELINE_RULES for arg in ("--disable", rule)]


def test_summary_counts_on_the_wolfi_sample(fixtures_dir: Path, tmp_path: Path) -> None:
    sample = fixtures_dir / "wolfi-os-sample"
    args = ["lint", "--no-git", "--summary", *_disable_pipeline_rules(), sample]
    done = run_cli(tmp_path, *args, "--json")
    assert done.returncode == 1, done.stderr  # network-in-runs errors
    summary = json.loads(done.stdout)
    assert summary["recipes"] == 150 and summary["loaded"] == 150
    assert summary["rules"] == SAMPLE_COUNTS
    assert summary["clean"] == 140  # 10 recipes with an error finding
    text = run_cli(tmp_path, *args)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["rule", "severity", "findings", "recipes"]
    assert lines[1].split() == ["network-in-runs", "error", "31", "10"]
    assert lines[-1] == "150 recipe(s): 150 load, 140 clean"
    assert "unknown-pipeline" not in text.stdout


def test_summary_of_a_clean_folder_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(_dump(BASE))
    done = run_cli(tmp_path, "lint", "--no-git", "--summary", "--json", tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"recipes": 1, "loaded": 1, "clean": 1, "rules": {}}
