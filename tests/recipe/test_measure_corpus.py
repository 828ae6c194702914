"""scripts/measure-corpus.py, the Wolfi corpus measurement, on a checkout-shaped folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fixture_paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "measure-corpus.py"

RECIPE = """\
package:
  name: {name}
  version: "1.10"
  epoch: 0
  description: demo
  copyright:
    - license: MIT
pipeline:
  - uses: fetch
    with:
      uri: https://example.org/{name}-${{{{package.version}}}}.tar.gz
      expected-sha256: {sha}
  - uses: local/step
update:
  enabled: true
  release-monitor:
    identifier: 1
"""


def measure(directory: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(directory), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_counts_load_and_lint_using_the_checkouts_pipelines(tmp_path: Path) -> None:
    """Like a wolfi-dev/os checkout: recipes at the top, the distro's pipelines in pipelines/."""
    (tmp_path / "good.yaml").write_text(RECIPE.format(name="good", sha="a" * 64))
    (tmp_path / "broken.yaml").write_text("package: [not, a, mapping]\n")
    without = measure(tmp_path)
    assert (without["recipes"], without["load"], without["lint_clean"]) == (2, 1, 0)
    assert without["recipes_failing_by_rule"]["unknown-pipeline"] == 1

    (tmp_path / "pipelines" / "local").mkdir(parents=True)
    (tmp_path / "pipelines" / "local" / "step.yaml").write_text(
        "name: local step\npipeline:\n  - runs: 'true'\n"
    )
    with_pipelines = measure(tmp_path)
    assert (with_pipelines["load"], with_pipelines["lint_clean"]) == (1, 1)
    assert with_pipelines["pipeline_dirs"] == [str(tmp_path / "pipelines")]
    assert len(with_pipelines["load_failures"]) == 1


def test_the_wolfi_sample_loads(fixtures_dir: Path) -> None:
    summary = measure(fixtures_dir / "wolfi-os-sample")
    assert summary["recipes"] == summary["load"] == 150
