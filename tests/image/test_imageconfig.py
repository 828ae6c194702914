"""The apko image config model: every fixture config loads; errors name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixture_paths import THIRD_PARTY
from nanodistro.errors import ConfigError
from nanodistro.imageconfig import Arch, load_config, load_config_text

APKO = THIRD_PARTY / "chainguard-dev+apko"
APKO_CONFIGS = sorted(
    p
    for sub in ("examples", "internal/cli/testdata", "pkg/build/types/testdata")
    for p in (APKO / sub).rglob("*.yaml")
    if not p.name.endswith(".melange.yaml")
)


def test_fixture_set_is_present() -> None:
    assert len(APKO_CONFIGS) >= 25


@pytest.mark.parametrize("path", APKO_CONFIGS, ids=lambda p: str(p.relative_to(APKO)))
def test_every_apko_fixture_config_loads(path: Path) -> None:
    loaded = load_config(path)
    assert loaded.config.target_archs()


def test_include_deep_merges_lists_in_order() -> None:
    loaded = load_config(APKO / "pkg/build/types/testdata/overlay/overlay_with_package.apko.yaml")
    contents = loaded.config.contents
    assert contents.packages == ["package", "other_package"]
    assert contents.build_repositories == ["secret repository", "other_secret repository"]
    assert loaded.config.runtime_repositories() == [
        "other runtime repository",
        "repository",
        "runtime repository",
    ]


def test_nginx_example_values() -> None:
    config = load_config(APKO / "examples/nginx.yaml").config
    assert config.entrypoint.argv() == ["/bin/s6-svscan", "/sv"]
    assert "s6" in config.all_packages()
    assert config.paths[0].mode == 0o755
    assert config.paths[1].type == "hardlink"
    assert config.work_dir == "/usr/share/nginx"
    assert [a.apk for a in config.target_archs()] == ["x86_64"]


def test_user_defaults() -> None:
    config = load_config(APKO / "pkg/build/types/testdata/users.apko.yaml").config
    first, second = config.accounts.users
    assert (first.effective_gid, first.effective_homedir) == (1, "/not/home")
    assert (second.effective_gid, second.effective_homedir, second.effective_shell) == (
        3,
        "/home/user",
        "/bin/sh",
    )


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("contents:\n  packages: [a]\nentrypiont:\n  command: x\n", 3, "entrypiont", "unknown key"),
        (
            "accounts:\n  users:\n    - username: root2\n      uid: 0\n",
            3,
            "accounts.users[0]",
            "uid 0",
        ),
        ("accounts:\n  users:\n    - uid: 5\n", 3, "accounts.users[0]", "username"),
        ("archs: [amd64, sparc]\n", 1, "archs", "sparc"),
        ("paths:\n  - path: /x\n    type: sideways\n", 3, "paths[0].type", "directory"),
        ("paths:\n  - path: /x\n    type: symlink\n", 2, "paths[0]", "source"),
        ("contents: [1, 2]\n", 1, "contents", "dictionary"),
    ],
)
def test_errors_name_line_and_key(text: str, line: int, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, where="img.yaml")
    error = caught.value
    assert (error.where, error.line, error.field) == ("img.yaml", line, field)
    assert fragment in str(error)


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("contents:\n  packages: [a\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.where == str(path)
    assert caught.value.line == 3  # where the YAML parser met the end of the unclosed list
    assert "invalid YAML: expected ',' or ']'" in str(caught.value)


def test_include_missing_is_clear(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("include: nope.yaml\n")
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_config(path)


def test_arch_mapping() -> None:
    assert {Arch.parse(n).apk for n in ("386", "arm/v6", "arm/v7", "loong64", "arm64")} == {
        "x86",
        "armhf",
        "armv7",
        "loongarch64",
        "aarch64",
    }
    assert Arch.parse("aarch64").oci == "arm64"
    assert Arch.parse("arm/v7").variant == "v7"
    assert len(load_config_text("{}\n").config.target_archs()) == 9
