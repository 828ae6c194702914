"""Bootstrap edges (cycles broken by the published package) and rebuild vs re-test dependents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nanodistro.graph.bootstrap import load_published
from nanodistro.graph.corpus import load_corpus
from nanodistro.graph.graph import DependencyGraph, build_graph

WOLFICTL_DAG = Path("third_party/wolfi-dev+wolfictl/pkg/dag/testdata")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nanodistro", "graph", *map(str, args), "--no-cache"]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def write(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(body)


def recipe(name: str, build: list[str], runtime: list[str] | None = None, extra: str = "") -> str:
    return (
        f"package:\n  name: {name}\n  version: 1.0\n  epoch: 0\n"
        f"  dependencies:\n    runtime: {json.dumps(runtime or [])}\n{extra}"
        f"environment:\n  contents:\n    packages: {json.dumps(build)}\n"
    )


def cuts(graph: DependencyGraph) -> list[tuple[str, str]]:
    return [(e.recipe, e.target) for e in graph.order().bootstrap]


# --- wolfictl's pkg/dag test data ------------------------------------------------------------


def test_wolfictl_resolve_cycle_with_the_upstream_repository(fixtures_dir: Path) -> None:
    """graph_test.go "resolve cycle": a, b and c take d 1.0.0 from testdata/cycle/packages, d
    builds against the local a (the only a there is)."""
    testdata = fixtures_dir / WOLFICTL_DAG / "cycle"
    published = load_published(testdata / "packages")  # x86_64/APKINDEX.tar.gz
    assert {"b", "c", "d"} <= published.names and "a" not in published.names
    graph = build_graph(load_corpus(testdata), published=published)
    expected_local = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a"}}
    assert {name: graph.order_deps[name] for name in "abcd"} == expected_local
    assert cuts(graph) == [("a", "d"), ("b", "d"), ("c", "d")]
    order = graph.order()
    assert order.waves == [["c"], ["b"], ["a"], ["d"]] and order.cycles == []
    assert [e.cycle for e in order.bootstrap] == [("a", "d"), ("b", "d", "a"), ("c", "d", "a")]
    assert all(e.published == "repository" for e in order.bootstrap)

    cli = run(testdata, "--order", "--repo", testdata / "APKINDEX", "--json")
    assert cli.returncode == 0, cli.stderr
    document = json.loads(cli.stdout)
    assert document["waves"] == [["c"], ["b"], ["a"], ["d"]]
    assert [(e["recipe"], e["target"]) for e in document["bootstrap_edges"]] == cuts(graph)
    assert (
        "b builds with the published d (from the repository)"
        in (document["bootstrap_edges"][1]["reason"])
    )
    assert "cycle b -> d -> a -> b" in document["bootstrap_edges"][1]["reason"]


def test_wolfictl_cycle_without_a_repository_assumes_the_package_published(
    fixtures_dir: Path,
) -> None:
    # With every package assumed published, d's edge to a is the first to close a cycle.
    graph = build_graph(load_corpus(fixtures_dir / WOLFICTL_DAG / "cycle"))
    assert cuts(graph) == [("d", "a")]
    assert graph.order().waves == [["d"], ["c"], ["b"], ["a"]]
    assert graph.order().bootstrap[0].published == "assumed"


@pytest.mark.parametrize(
    ("folder", "deps"),
    [
        ("multiple", {"one": set(), "two": {"one"}, "three-other": {"one", "two"}}),
        ("subpackages", {"one": set(), "two": {"one"}, "three": {"two"}}),
    ],
)
def test_wolfictl_internal_edges_and_order(
    fixtures_dir: Path, folder: str, deps: dict[str, set[str]]
) -> None:
    """graph_test.go "internal and external dependencies": local packages are the edges, the
    rest (busybox, build-base… from testdata/packages) come from the repository, no cut."""
    testdata = fixtures_dir / WOLFICTL_DAG
    published = load_published(testdata / "packages")
    assert {"busybox", "build-base", "wolfi-baselayout"} <= published.names
    graph = build_graph(load_corpus(testdata / folder), published=published)
    assert graph.build_deps == deps
    assert cuts(graph) == []
    assert [len(w) for w in graph.order().waves] == [1, 1, 1]


# --- a toolchain cycle ---------------------------------------------------------------------


@pytest.fixture
def toolchain(tmp_path: Path) -> Path:
    recipes = tmp_path / "recipes"
    glibc_subs = "subpackages:\n  - name: glibc-dev\n"
    write(recipes, "binutils", recipe("binutils", ["gcc", "glibc-dev"]))
    write(recipes, "gcc", recipe("gcc", ["glibc-dev", "binutils"]))
    write(recipes, "glibc", recipe("glibc", ["gcc", "binutils"]) + glibc_subs)
    write(recipes, "zlib", recipe("zlib", ["gcc", "glibc-dev"]))
    return recipes


def test_toolchain_cycle_is_ordered_with_the_cut_edges_listed(toolchain: Path) -> None:
    graph = build_graph(load_corpus(toolchain))
    assert graph.cycles() == [["binutils", "gcc", "glibc"]]
    order = graph.order()
    assert order.cycles == [] and order.blocked == []
    # binutils (first by name) keeps its edges; gcc -> binutils and glibc -> gcc/binutils
    # would close the loop, so gcc and glibc build with the published toolchain.
    assert cuts(graph) == [("gcc", "binutils"), ("glibc", "gcc"), ("glibc", "binutils")]
    assert order.waves == [["glibc"], ["gcc"], ["binutils", "zlib"]]
    cli = run(toolchain, "--order")
    assert cli.returncode == 0, cli.stderr
    assert "bootstrap edges (3" in cli.stdout
    assert (
        "glibc builds with the published gcc (assumed published); building gcc first would "
        "close the cycle glibc -> gcc -> glibc"
    ) in cli.stdout
    assert "not ordered" not in cli.stdout


def test_repo_cuts_only_edges_to_published_packages(toolchain: Path, tmp_path: Path) -> None:
    index = tmp_path / "APKINDEX"
    index.write_text("P:gcc\nV:13.2.0-r0\n\nP:libstdc++\nV:13.2.0-r0\no:gcc\n\n")
    graph = build_graph(load_corpus(toolchain), published=load_published(index))
    edges = graph.order().bootstrap
    assert edges and {e.target for e in edges} == {"gcc"}
    assert {e.published for e in edges} == {"repository"}
    # binutils <-> glibc has no published side: it stays a cycle and is reported
    assert graph.remaining_cycles() == [["binutils", "glibc"]]
    cli = run(toolchain, "--order", "--repo", index)
    assert cli.returncode == 1
    assert "binutils -> glibc -> binutils" in cli.stderr
    assert "Traceback" not in cli.stderr
    # with glibc published too, every cycle breaks
    index.write_text(index.read_text() + "P:glibc-dev\nV:2.38-r0\no:glibc\n\n")
    graph = build_graph(load_corpus(toolchain), published=load_published(index))
    assert graph.remaining_cycles() == [] and len(graph.order().waves) == 4
    missing = run(toolchain, "--order", "--repo", tmp_path / "nowhere")
    assert missing.returncode == 1 and "no APKINDEX.tar.gz" in missing.stderr


# --- dependents: rebuild versus re-test ---------------------------------------------------


@pytest.fixture
def library_set(tmp_path: Path) -> Path:
    recipes = tmp_path / "recipes"
    subs = (
        "subpackages:\n"
        "  - name: libfoo-dev\n    dependencies:\n      provides: ['pc:foo=1']\n"
        "  - name: libfoo-static\n"
    )
    provides = "    provides: ['so:libfoo.so.1=1']\n"
    write(recipes, "libfoo", recipe("libfoo", [], extra=provides) + subs)
    write(recipes, "app", recipe("app", ["libfoo-dev"]))  # links it
    write(recipes, "viapc", recipe("viapc", ["pc:foo"]))  # links it
    write(recipes, "linked", recipe("linked", [], ["so:libfoo.so.1"]))  # soname at run time
    write(
        recipes,
        "embed",
        recipe("embed", ["libfoo-static"]) + "subpackages:\n  - name: embed-static\n",
    )
    write(recipes, "embed2", recipe("embed2", ["embed-static"]))  # embeds the embedder
    write(recipes, "svc", recipe("svc", [], ["app"]))  # runs app: re-test
    write(recipes, "deeper", recipe("deeper", [], ["svc"]))  # re-test through svc
    write(recipes, "docs", recipe("docs", ["libfoo"]))  # a build tool use only
    write(recipes, "optin", recipe("optin", ["libfoo"]))  # opts in below
    write(recipes, "plugin", recipe("plugin", ["app"]))  # app's soname did not change
    (tmp_path / "nanodistro.toml").write_text(
        '[workspace]\nname = "w"\n\n[rebuild-on]\noptin = ["libfoo"]\n'
    )
    return tmp_path


def test_dependents_rebuild_versus_retest_with_rules(library_set: Path) -> None:
    graph = build_graph(load_corpus(library_set / "recipes"))
    impact = graph.dependents("libfoo", rebuild_on={"optin": ["libfoo"]})
    rules = {n: (r.category, r.rule, r.via) for n, r in impact.reasons.items()}
    assert rules == {
        "libfoo": ("rebuild", "changed", "libfoo"),
        "app": ("rebuild", "dev", "libfoo-dev"),
        "viapc": ("rebuild", "dev", "pc:foo"),
        "linked": ("rebuild", "soname", "so:libfoo.so.1"),
        "embed": ("rebuild", "static", "libfoo-static"),
        "embed2": ("rebuild", "static", "embed-static"),
        "optin": ("rebuild", "rebuild-on", "libfoo"),
        "svc": ("retest", "runtime", "app"),
        "deeper": ("retest", "runtime", "svc"),
        "docs": ("build-only", "build-only", "libfoo"),
    }
    assert impact.rebuild[0] == ["libfoo", "linked"]  # linked has no build edge to it
    assert impact.runtime_dependents == ["deeper", "svc"]
    assert impact.build_only == ["docs"]
    waves = {name: i for i, wave in enumerate(impact.rebuild) for name in wave}
    assert waves["embed"] < waves["embed2"]
    assert "plugin" not in waves and "plugin" not in impact.reasons


def test_dependents_cli_reads_the_workspace_rebuild_on(library_set: Path) -> None:
    document = json.loads(run(library_set, "--dependents", "libfoo", "--json").stdout)
    assert document["reasons"]["optin"]["rule"] == "rebuild-on"
    assert document["reasons"]["optin"]["why"] == "[rebuild-on] lists libfoo"
    assert document["retest"] == ["deeper", "svc"]
    text = run(library_set, "--dependents", "libfoo")
    assert text.returncode == 0, text.stderr
    assert "must be rebuilt (7):" in text.stdout
    assert "  embed2  [static] builds against embed-static (embeds it statically)" in text.stdout
    assert "re-test only (runtime closure; no rebuild) (2):" in text.stdout
    assert "  svc  [runtime] needs app at run time: re-test, no rebuild" in text.stdout
    # without the workspace, optin only uses libfoo at build time
    plain = json.loads(run(library_set / "recipes", "--dependents", "libfoo", "--json").stdout)
    assert plain["reasons"]["optin"]["rule"] == "rebuild-on"  # recipes dir finds the workspace
    (library_set / "nanodistro.toml").unlink()
    plain = json.loads(run(library_set / "recipes", "--dependents", "libfoo", "--json").stdout)
    assert plain["reasons"]["optin"]["category"] == "build-only"


def test_dependents_soname_from_the_published_index(library_set: Path, tmp_path: Path) -> None:
    """melange records linked sonames as so: depends of the published package: with --repo,
    a recipe whose published package depends on so:libfoo.so.1 links it."""
    write(library_set / "recipes", "tool", recipe("tool", ["libfoo"]))
    index = tmp_path / "APKINDEX"
    index.write_text(
        "P:libfoo\nV:1.0-r0\np:so:libfoo.so.1=1\n\nP:tool\nV:1.0-r0\nD:so:libfoo.so.1 so:libc.so.6\n\n"
    )
    graph = build_graph(load_corpus(library_set / "recipes"), published=load_published(index))
    reason = graph.dependents("libfoo").reasons["tool"]
    assert (reason.category, reason.rule, reason.via) == ("rebuild", "soname", "so:libfoo.so.1")


# --- caches -------------------------------------------------------------------------------


def test_warm_load_trusts_stats_and_rereads_a_changed_file(toolchain: Path, tmp_path: Path) -> None:
    import os

    cache = tmp_path / "cache"
    assert load_corpus(toolchain, cache_dir=cache).cache_hits == 0
    assert load_corpus(toolchain, cache_dir=cache).cache_hits == 4
    # same size, new bytes, new mtime: re-read and re-parsed
    path = toolchain / "zlib.yaml"
    before = path.stat()
    path.write_text(path.read_text().replace('"gcc", ', '"gxx", '))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert path.stat().st_size == before.st_size
    changed = load_corpus(toolchain, cache_dir=cache)
    assert changed.cache_hits == 3
    assert next(r for r in changed.recipes if r.name == "zlib").build == ("gxx", "glibc-dev")
    # touched only: the digest still matches, the node is reused and the stat recorded
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000))
    assert load_corpus(toolchain, cache_dir=cache).cache_hits == 4


def test_bootstrap_cuts_are_cached_by_their_inputs(toolchain: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = build_graph(load_corpus(toolchain), cache_dir=cache).bootstrap_edges
    assert list(cache.glob("graph-cuts-v*.pickle"))
    again = build_graph(load_corpus(toolchain), cache_dir=cache).bootstrap_edges
    assert again == first
    # the cached answer is not reused for other inputs: a repository changes the cuts
    index = tmp_path / "APKINDEX"
    index.write_text("P:gcc\nV:1-r0\n\n")
    published = load_published(index)
    with_repo = build_graph(load_corpus(toolchain), published=published, cache_dir=cache)
    assert with_repo.bootstrap_edges != first
    assert {e.target for e in with_repo.bootstrap_edges} == {"gcc"}


def test_self_dependency_is_listed_as_a_bootstrap_edge(tmp_path: Path) -> None:
    recipes = tmp_path / "r"
    write(recipes, "go", recipe("go", ["go", "busybox"]))
    write(recipes, "app", recipe("app", ["go"]))
    graph = build_graph(load_corpus(recipes))
    assert graph.order().waves == [["go"], ["app"]]
    (edge,) = graph.order().bootstrap
    assert (edge.recipe, edge.target, edge.names, edge.published) == (
        "go",
        "go",
        ("go",),
        "assumed",
    )
    cli = run(recipes, "--order")
    assert "go builds with its own published go (assumed; self-dependency)" in cli.stdout
    index = tmp_path / "APKINDEX"
    index.write_text("P:busybox\nV:1-r0\n\n")
    missing = build_graph(load_corpus(recipes), published=load_published(index))
    assert "cannot be built from this set" in missing.bootstrap_edges[0].reason()
