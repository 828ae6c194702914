"""The shipped example catalog (examples/), checked offline: what `make run` builds must lint,
name its real upstream, pin its sources, and its images must have the closures they promise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nanodistro.factory.smoke import smoke_test_from_annotations
from nanodistro.graph.corpus import load_corpus
from nanodistro.graph.graph import build_graph
from nanodistro.imageconfig.load import load_config
from nanodistro.monitor.recipes import load_target
from nanodistro.recipe.yamlsource import load_data

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RECIPES = sorted((EXAMPLES / "recipes").glob("*.yaml"))
IMAGES = sorted((EXAMPLES / "images").glob("*.yaml"))


def test_examples_are_present() -> None:
    # the parametrized tests below pass vacuously when a glob matches nothing
    assert [p.stem for p in IMAGES] == ["base", "lua", "static"]
    assert len(RECIPES) >= 6
    assert "busybox" in {p.stem for p in RECIPES}


def test_every_example_recipe_lints_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nanodistro", "lint", "--json", *map(str, RECIPES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []  # no problem at warning level or above


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_example_recipe_names_upstream_license_and_pins(path: Path) -> None:
    document = load_data(path.read_text(), str(path))
    assert [c["license"] for c in document["package"]["copyright"]]
    update = load_target(path).update
    assert update is not None
    if update.enabled:
        assert update.monitor_kind() is not None, "enabled without an upstream to watch"
    else:
        assert update.exclude_reason, "disabled without exclude-reason"
    for step in document["pipeline"]:
        if step.get("uses") == "fetch":
            assert {"expected-sha256", "expected-sha512"} & set(step["with"]), step


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.stem)
def test_every_example_image_is_apko_config_with_a_smoke_test(path: Path) -> None:
    config = load_config(path).config
    smoke = smoke_test_from_annotations(dict(config.annotations or {}), str(path))
    assert smoke is not None and smoke.expect
    assert config.accounts is not None and config.accounts.run_as == "nonroot"


def test_example_image_closures() -> None:
    graph = build_graph(load_corpus(EXAMPLES / "recipes", images_dir=EXAMPLES / "images"))
    closures = {image.name: graph.image_packages(image) for image in graph.images}
    assert closures["static"] == {"nanodistro-baselayout", "ca-certificates-bundle"}
    assert "busybox" in closures["base"]
    assert "lua5.4" in closures["lua"] and "busybox" not in closures["lua"]
    # an image per application beyond the bases
    assert set(closures) >= {"static", "base", "lua"}
    first = graph.order().waves[0]
    assert "musl" in first and not {"busybox", "lua5.4", "zlib"} & set(first)
