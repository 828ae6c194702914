"""The dependency graph on the Wolfi sample and on small hand-made recipe sets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from nanodistro.errors import GraphError
from nanodistro.graph.bootstrap import load_published
from nanodistro.graph.corpus import load_corpus, load_recipes, recipe_files
from nanodistro.graph.graph import DependencyGraph, build_graph


@pytest.fixture(scope="module")
def sample(fixtures_dir: Path) -> DependencyGraph:
    corpus = load_corpus(fixtures_dir / "wolfi-os-sample")
    assert corpus.errors == []
    return build_graph(corpus)


def test_sample_order_respects_every_build_edge(sample: DependencyGraph) -> None:
    order = sample.order()
    assert order.cycles == [] and order.blocked == []
    wave_of = {name: i for i, wave in enumerate(order.waves) for name in wave}
    assert set(wave_of) == set(sample.recipes) and len(wave_of) == 150
    edges = [(dep, name) for name, deps in sample.build_deps.items() for dep in deps]
    assert len(edges) > 100
    for dep, name in edges:
        assert wave_of[dep] < wave_of[name], (dep, name)
    # An edge we know from the recipes themselves: xterm builds against libutempter.
    assert "libutempter" in sample.build_deps["xterm"]
    assert "ca-certificates" in sample.build_deps["cmake"]  # via ca-certificates-bundle


def test_sample_dependents_of_a_library(sample: DependencyGraph) -> None:
    impact = sample.dependents("libxext")
    assert impact.recipe == "libxext"
    # openjdk-8 builds against libxext-dev (links it); zbar and pdftk only build with the
    # JDK, whose soname did not change: no longer "rebuild everything downstream".
    assert impact.rebuild == [["libxext"], ["openjdk-8"]]
    assert impact.reasons["openjdk-8"].rule == "dev"
    assert impact.reasons["openjdk-8"].via == "libxext-dev"


def test_sample_shared_update_bumps_dependents(sample: DependencyGraph) -> None:
    impact = sample.dependents("python-3.13")
    assert sample.recipes["python-3.13"].shared
    assert {"jwt-tool", "sqlmap", "poppler"} <= set(impact.epoch_bump)


def test_sample_range_subpackages_and_provides(sample: DependencyGraph) -> None:
    packages = sample.recipes["mercurial"].packages
    assert len(packages) > 1
    assert all("${{" not in p.name for r in sample.recipes.values() for p in r.packages)
    assert sample.recipe_for("so:libdatadog-agent-rtloader.so.0.1.0") == "datadog-agent-7.81"


def write(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(body)


def recipe(
    name: str, build: Sequence[str] = (), runtime: Sequence[str] = (), extra: str = ""
) -> str:
    return (
        f"package:\n  name: {name}\n  version: 1.0\n  epoch: 0\n"
        f"  dependencies:\n    runtime: {json.dumps(list(runtime))}\n{extra}"
        f"environment:\n  contents:\n    packages: {json.dumps(list(build))}\n"
    )


@pytest.fixture
def small(tmp_path: Path) -> Path:
    recipes = tmp_path / "recipes"
    write(
        recipes,
        "libfoo",
        recipe("libfoo", ["build-base"], extra=("  options: {}\n")).replace(
            "runtime: []", "runtime: []\n    provides: ['so:libfoo.so.1=1.0']"
        )
        + (
            "subpackages:\n  - name: ${{package.name}}-dev\n"
            "    dependencies:\n      runtime: [libfoo]\n      provides: ['pc:foo=1.0']\n"
        ),
    )
    write(recipes, "app", recipe("app", ["libfoo-dev", "pkgconf"], ["so:libfoo.so.1"]))
    write(recipes, "tool", recipe("tool", ["pc:foo"]))
    write(recipes, "plugin", recipe("plugin", ["app"]))
    write(recipes, "unrelated", recipe("unrelated", ["busybox"]))
    images = tmp_path / "images"
    write(images, "app-image", "contents:\n  packages:\n    - app\n    - wolfi-baselayout\n")
    write(images, "base", "contents:\n  packages: [busybox]\n")
    return tmp_path


def test_dependents_through_so_and_pc_provides_and_images(small: Path) -> None:
    graph = build_graph(load_corpus(small / "recipes", images_dir=small / "images"))
    impact = graph.dependents("libfoo-dev")
    assert impact.recipe == "libfoo"
    # app (runtime so:libfoo.so.1) and tool (pc:foo) link libfoo; plugin builds with app,
    # whose own soname did not change, so it is not rebuilt
    assert impact.rebuild == [["libfoo"], ["app", "tool"]]
    assert {n: r.rule for n, r in impact.reasons.items()} == {
        "libfoo": "changed",
        "app": "soname",
        "tool": "dev",
    }
    assert impact.images == ["app-image"]  # app -> so:libfoo.so.1 -> libfoo
    assert graph.dependents("plugin").images == []
    assert graph.dependents("app").images == ["app-image"]
    assert "busybox" in graph.external


def test_cycle_is_named_and_acyclic_part_still_ordered(tmp_path: Path) -> None:
    recipes = tmp_path / "r"
    write(recipes, "a", recipe("a", ["c"]))
    write(recipes, "b", recipe("b", ["a"]))
    write(recipes, "c", recipe("c", ["b", "base"]))
    write(recipes, "base", recipe("base"))
    write(recipes, "d", recipe("d", ["a"]))
    # A repository that publishes none of them: no edge can be cut, the cycle stays.
    (tmp_path / "APKINDEX").write_text("P:base\nV:1-r0\n\n")
    published = load_published(tmp_path / "APKINDEX")
    graph = build_graph(load_corpus(recipes), published=published)
    order = graph.order()
    assert order.cycles == [["a", "b", "c"]] and order.bootstrap == []
    assert order.waves == [["base"]] and order.blocked == ["d"]
    with pytest.raises(GraphError, match="a -> b -> c -> a"):
        graph.strict_order()
    command = [sys.executable, "-m", "nanodistro", "graph", str(recipes), "--order", "--no-cache"]
    cli = subprocess.run(
        [*command, "--repo", str(tmp_path / "APKINDEX")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1
    assert "wave 1 (1): base" in cli.stdout
    assert "a -> b -> c -> a" in cli.stderr and "Traceback" not in cli.stderr
    assert "none of its build dependencies is published in" in cli.stderr
    # Without a repository the edge closing the cycle is assumed published and cut:
    # a -> c kept, b -> a kept, c -> b closes the cycle (b is visited before c).
    assumed = build_graph(load_corpus(recipes)).order()
    assert assumed.cycles == [] and assumed.blocked == []
    assert assumed.waves == [["base"], ["c"], ["a"], ["b", "d"]]
    assert [(e.recipe, e.target, e.cycle) for e in assumed.bootstrap] == [
        ("c", "b", ("c", "b", "a"))
    ]
    cli = subprocess.run(command, capture_output=True, text=True, check=False)
    assert cli.returncode == 0, cli.stderr
    assert "bootstrap edges (1" in cli.stdout
    assert "c builds with the published b (assumed published)" in cli.stdout


def test_shared_group_moves_together(tmp_path: Path) -> None:
    shared = "update:\n  enabled: true\n  shared: true\n  github: {identifier: org/go}\n"
    recipes = tmp_path / "r"
    write(recipes, "go-1.22", recipe("go-1.22") + shared)
    write(recipes, "go-1.23", recipe("go-1.23") + shared)
    write(recipes, "svc", recipe("svc", ["go-1.23"]))
    write(recipes, "cli", recipe("cli", [], ["go-1.22"]))
    graph = build_graph(load_corpus(recipes))
    impact = graph.dependents("go-1.22")
    assert impact.shared_group == ["go-1.22", "go-1.23"]
    assert impact.epoch_bump == ["cli", "svc"]
    assert impact.rebuild == [["cli", "go-1.22", "go-1.23"], ["svc"]]


def test_shared_upstream_with_other_tag_filters_moves_alone(tmp_path: Path) -> None:
    # Wolfi's python-3.12 and python-3.13 both watch python/cpython, one release line each
    def shared(line: str) -> str:
        return (
            "update:\n  enabled: true\n  shared: true\n"
            f"  github: {{identifier: python/cpython, tag-filter: v{line}, use-tag: true}}\n"
        )

    recipes = tmp_path / "r"
    write(recipes, "python-3.12", recipe("python-3.12") + shared("3.12"))
    write(recipes, "python-3.13", recipe("python-3.13") + shared("3.13"))
    write(recipes, "py-old", recipe("py-old", ["python-3.12"]))
    write(recipes, "py-new", recipe("py-new", ["python-3.13"]))
    impact = build_graph(load_corpus(recipes)).dependents("python-3.13")
    assert impact.shared_group == ["python-3.13"]
    assert impact.epoch_bump == ["py-new"]
    assert impact.rebuild == [["python-3.13"], ["py-new"]]


def test_parse_cache_reuses_unchanged_files(small: Path, tmp_path: Path) -> None:
    files = recipe_files(small / "recipes")
    cache = tmp_path / "cache"
    cold = load_recipes(files, cache_dir=cache)
    warm = load_recipes(files, cache_dir=cache)
    assert (cold.cache_hits, warm.cache_hits) == (0, len(files))
    assert warm.recipes == cold.recipes
    (small / "recipes" / "app.yaml").write_text(recipe("app", ["busybox"]))
    changed = load_recipes(files, cache_dir=cache)
    assert changed.cache_hits == len(files) - 1
    assert next(r for r in changed.recipes if r.name == "app").build == ("busybox",)


def test_parallel_parse_matches_serial(fixtures_dir: Path) -> None:
    files = recipe_files(fixtures_dir / "wolfi-os-sample") * 2
    serial = load_recipes(files, workers=1)
    parallel = load_recipes(files, workers=2)
    assert serial.recipes == parallel.recipes


def test_cli_json_dot_and_dependents(small: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "nanodistro",
                "graph",
                str(small / "recipes"),
                "--no-cache",
                "--images",
                str(small / "images"),
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    document = json.loads(run("--json").stdout)
    assert document["recipes"]["app"]["build_deps"] == ["libfoo"]
    assert document["images"]["app-image"] == ["app"]
    assert '"libfoo" -> "app";' in run("--dot").stdout
    impact = json.loads(run("--dependents", "so:libfoo.so.1", "--json").stdout)
    assert impact["images"] == ["app-image"]
    missing = run("--dependents", "nothing")
    assert missing.returncode == 1 and "no recipe in the set provides 'nothing'" in missing.stderr


def test_section_cut_parse_equals_full_parse(fixtures_dir: Path) -> None:
    from nanodistro.graph.corpus import _UNUSED_SECTIONS, recipe_node
    from nanodistro.graph.scan import load_yaml_without
    from nanodistro.recipe.yamlsource import load_data

    files = recipe_files(fixtures_dir / "wolfi-os-sample")
    assert len(files) == 150
    for path in files:
        data = path.read_bytes()
        full = recipe_node(load_data(data, str(path)), str(path))
        cut = recipe_node(load_yaml_without(data, str(path), _UNUSED_SECTIONS), str(path))
        assert cut == full, path


def test_cli_on_a_workspace_uses_its_recipes_and_images(small: Path, tmp_path: Path) -> None:
    (small / "nanodistro.toml").write_text('[workspace]\nname = "w"\n')

    def run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "nanodistro", "graph", str(directory), "--no-cache"]
        return subprocess.run([*command, *args], capture_output=True, text=True, check=False)

    order = run(small, "--order")
    assert order.returncode == 0, order.stderr
    assert order.stdout.splitlines()[0].startswith("wave 1 (2): libfoo unrelated")
    for directory in (small, small / "recipes"):  # the recipes dir brings the workspace's images
        impact = json.loads(run(directory, "--dependents", "libfoo", "--json").stdout)
        assert impact["images"] == ["app-image"]
    (tmp_path / "empty").mkdir()
    empty = run(tmp_path / "empty", "--order")
    assert empty.returncode == 1 and "no recipe files" in empty.stderr
