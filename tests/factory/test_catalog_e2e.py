"""``run_catalog`` end to end on a miniature catalog, offline.

The test makes the upstream release tarballs itself (a baselayout, a CA bundle, a static C
library with a pkg-config file, a C program using it), serves them on 127.0.0.1 as the
``mirror://upstream/`` of the workspace, writes melange recipes and apko image configs, and lets
the catalog build everything with the host's gcc in the bubblewrap sandbox. The images' smoke
tests run under runc; a second run must rebuild nothing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mini_catalog import RECIPES, serve_upstream, write_workspace
from nanodistro.cli import app
from nanodistro.factory.catalog import CatalogReport, run_catalog
from nanodistro.factory.workspace import load_workspace
from nanodistro.formats.apk import read_apk
from needs_tools import require_tools

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _tools() -> None:
    # scripts/install-system-deps.sh installs them
    require_tools("bwrap", "gcc", "umoci", "runc")


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Release tarballs served on 127.0.0.1; yields (base URL, sha256 by release)."""
    with serve_upstream(tmp_path) as served:
        yield served


def _by_name(report: CatalogReport) -> tuple[dict[str, str], dict[str, str]]:
    return (
        {r.name: r.status for r in report.recipes},
        {i.name: i.status for i in report.images},
    )


def test_mini_catalog_builds_runs_and_rebuilds_nothing(
    tmp_path: Path, upstream: tuple[str, dict[str, str]]
) -> None:
    base_url, digests = upstream
    root = write_workspace(tmp_path / "ws", base_url, digests)
    workspace = load_workspace(root)
    messages: list[str] = []

    first = run_catalog(workspace, progress=messages.append)

    failures = [(r.name, r.error) for r in first.recipes if r.status == "failed"]
    assert not failures, failures
    assert first.key_generated and workspace.signing_key() is not None
    recipes, images = _by_name(first)
    assert recipes == dict.fromkeys(RECIPES, "built")
    # libgreet is built before hello, which needs it in its build environment
    order = [r.name for r in first.recipes]
    assert order.index("libgreet") < order.index("hello")
    assert images == {"hello": "built", "static": "built"}, [i.error for i in first.images]
    for image in first.images:
        assert image.smoke.status == "passed", (image.name, image.smoke)
        assert image.smoke.runtime == "runc"
        assert image.digest.startswith("sha256:") and image.size > 0
        assert (Path(image.layout) / "index.json").is_file()
        assert image.sboms and all(Path(s).is_file() for s in image.sboms)
    # the static image's closure is the base layout and the certificates, nothing else
    static = next(i for i in first.images if i.name == "static")
    assert sorted(p.rsplit("-", 2)[0] for p in static.packages) == ["ca-certs", "mini-baselayout"]
    hello_image = next(i for i in first.images if i.name == "hello")
    assert sorted(p.rsplit("-", 2)[0] for p in hello_image.packages) == [
        "hello",
        "mini-baselayout",
    ]

    # the signed repository holds every package, and libgreet carries a pc: provide
    arch_dir = workspace.packages_dir / "x86_64"
    assert (arch_dir / "APKINDEX.tar.gz").is_file()
    names = {p.name: p for p in first.packages}
    assert set(names) == set(RECIPES)
    greet = read_apk((arch_dir / "libgreet-1.2.0-r0.apk").read_bytes(), where="libgreet")
    assert "pc:greet=1.2.0-r0" in greet.info.provides  # as melange: the package version
    # sources were fetched through the mirror, and the SBOM names the URL [mirrors] resolved
    # the mirror:// URI to (downloadLocation and the purl's download_url), never mirror://
    assert any("downloading http://127.0.0.1" in m for m in messages)
    hello_apk = read_apk((arch_dir / "hello-2.0-r0.apk").read_bytes(), where="hello")
    sbom = next(e for e in hello_apk.entries if e.path.startswith("var/lib/db/sbom/"))
    source = next(
        p for p in json.loads(sbom.data)["packages"] if p.get("primaryPackagePurpose") == "SOURCE"
    )
    assert source["downloadLocation"].startswith("http://127.0.0.1:"), sbom.data.decode()
    assert source["downloadLocation"].endswith("/hello-2.0.tar.gz")
    assert b"mirror:" not in sbom.data and b"mirror%3A" not in sbom.data

    # second run: nothing rebuilt, same digests, smoke tests still pass
    layouts_before = {i.name: (Path(i.layout) / "index.json").read_bytes() for i in first.images}
    apks_before = {p.name: (arch_dir / p.name).stat().st_mtime_ns for p in arch_dir.glob("*.apk")}
    result = CliRunner().invoke(app, ["catalog", "build", str(root), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout)
    assert {r["name"]: r["status"] for r in second["recipes"]} == dict.fromkeys(
        RECIPES, "unchanged"
    )
    assert {i["name"]: i["status"] for i in second["images"]} == {
        "hello": "unchanged",
        "static": "unchanged",
    }
    assert {i["name"]: i["digest"] for i in second["images"]} == {
        i.name: i.digest for i in first.images
    }
    assert all(i["smoke"]["status"] == "passed" for i in second["images"])
    assert {i.name: (Path(i.layout) / "index.json").read_bytes() for i in first.images} == (
        layouts_before
    )
    assert {
        p.name: (arch_dir / p.name).stat().st_mtime_ns for p in arch_dir.glob("*.apk")
    } == apks_before

    # from scratch again (same key, cached sources): byte-identical packages and images
    apk_bytes = {p.name: p.read_bytes() for p in arch_dir.glob("*.apk")}
    shutil.rmtree(workspace.out_dir)
    third = run_catalog(workspace)
    assert _by_name(third) == _by_name(first)
    assert {i.name: i.digest for i in third.images} == {i.name: i.digest for i in first.images}
    assert {p.name: p.read_bytes() for p in arch_dir.glob("*.apk")} == apk_bytes


def test_failed_recipe_skips_the_images_that_need_it(
    tmp_path: Path, upstream: tuple[str, dict[str, str]]
) -> None:
    base_url, digests = upstream
    digests = {**digests, "hello-2.0": "0" * 64}  # a wrong pin: the fetch must fail
    root = write_workspace(tmp_path / "ws", base_url, digests)
    (root / "recipes" / "libgreet.yaml").unlink()
    (root / "recipes" / "ca-certs.yaml").unlink()
    (root / "images" / "static.yaml").unlink()
    (root / "recipes" / "broken.yaml").write_text("package:\n  name: broken\n  versoin: 1\n")

    report = run_catalog(load_workspace(root))

    recipes, images = _by_name(report)
    assert recipes == {"broken": "failed", "mini-baselayout": "built", "hello": "failed"}
    broken = next(r for r in report.recipes if r.name == "broken")
    assert "broken.yaml" in broken.error
    hello_recipe = next(r for r in report.recipes if r.name == "hello")
    assert "sha256" in hello_recipe.error
    assert images == {"hello": "skipped"}
    assert not report.ok
    result = CliRunner().invoke(app, ["catalog", "build", str(root), "--quiet"])
    assert result.exit_code == 1
    assert "hello" in result.stdout
