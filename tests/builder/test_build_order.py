"""Recipe order for `nanodistro build`: environment needs first, runtime needs where possible."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanodistro.builder.orchestrate import build_order
from nanodistro.errors import GraphError


def recipe(name: str, *, env: list[str] = (), runtime: list[str] = ()) -> str:  # type: ignore[assignment]
    lines = [
        "package:",
        f"  name: {name}",
        "  version: 1.0.0",
        "  epoch: 0",
        "  copyright: [{license: MIT}]",
    ]
    if runtime:
        lines += ["  dependencies:", "    runtime:", *(f"      - {r}" for r in runtime)]
    if env:
        lines += ["environment:", "  contents:", "    packages:", *(f"      - {e}" for e in env)]
    lines += ["pipeline:", "  - runs: 'true'", "update:", "  enabled: false"]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, recipes: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in recipes.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        paths.append(path)
    return sorted(paths)


def names(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_runtime_dependency_built_first_for_the_tests(tmp_path: Path) -> None:
    # "a-layout" sorts first but its test installs "z-certs": the certs must be built before it.
    paths = write(
        tmp_path,
        {"a-layout": recipe("a-layout", runtime=["z-certs"]), "z-certs": recipe("z-certs")},
    )
    assert names(build_order(paths, "x86_64")) == ["z-certs", "a-layout"]


def test_runtime_loop_is_not_an_error(tmp_path: Path) -> None:
    paths = write(tmp_path, {"a": recipe("a", runtime=["b"]), "b": recipe("b", runtime=["a"])})
    assert sorted(names(build_order(paths, "x86_64"))) == ["a", "b"]


def test_environment_edges_win_over_runtime_loops(tmp_path: Path) -> None:
    # b needs a to build; a only runs with b: a must come first whatever the names say.
    paths = write(tmp_path, {"a": recipe("a", runtime=["b"]), "b": recipe("b", env=["a"])})
    assert names(build_order(paths, "x86_64")) == ["a", "b"]


def test_build_cycle_is_named(tmp_path: Path) -> None:
    paths = write(tmp_path, {"a": recipe("a", env=["b"]), "b": recipe("b", env=["a"])})
    with pytest.raises(GraphError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        build_order(paths, "x86_64")
