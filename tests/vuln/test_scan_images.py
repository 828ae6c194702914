"""The scanner on real images built by our image builder, against a generated OSV set.

The miniature catalog (tests/mini_catalog.py, built once per session: tests/catalog_build.py) is
copied for the module and built again with one more recipe
(``py3-greeting``: a Python distribution's dist-info, built in the sandbox like any package) and
one more image holding it. After the build its ``hello`` recipe is given a GitHub archive fetch, so
the scanner maps ``hello`` to an upstream repository for GIT ranges. The OSV set plants records in
the workspace's ecosystem (``mini``: the workspace name, not the images' os-release ID
``minidistro``), a GIT range and a PyPI record, with decoys that must not match; scans of each
image (layout, oci-archive made by skopeo, the registry after a push), of a built ``.apk`` and of
the repository find exactly the planted (package, id) pairs, and advisories made with
``nanodistro advisory create`` change the result as grype would.

The example catalog's images (``examples/out``, made by ``make run``, read only here) are scanned
the same way when they exist; like tests/test_apk_reference_clients.py, the test is skipped when
they were not built (``make test`` does not build them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scan_fixture import _eco, _git, _record

from catalog_build import CatalogBuild, copy_catalog_build
from cli_runner import run_cli
from fixture_paths import REPO_ROOT
from nanodistro.advisory.triage import TriageEntry
from nanodistro.factory.catalog import run_catalog
from nanodistro.factory.workspace import Workspace, load_workspace
from nanodistro.formats.purl import distro_name
from nanodistro.vuln.osvdb import load_osv
from nanodistro.vuln.recipesources import git_sources_from_recipes
from nanodistro.vuln.scan import scan_inventory
from nanodistro.vuln.targets import load_targets
from needs_tools import require_tools
from registry_server import find_tool, start_docker_registry

pytestmark = pytest.mark.slow

ZERO = {"introduced": "0"}
SITE = "usr/lib/python3.12/site-packages"
HELLO_REPO = "https://github.com/example/hello"

PY3_GREETING = """
package:
  name: py3-greeting
  version: 0.9.0
  epoch: 0
  description: a Python distribution (metadata only) for the scanner tests
  copyright:
    - license: MIT
  options:
    no-depends: true  # metadata only: no python-3.12-base to depend on in this catalog
environment:
  contents:
    packages: [build-base]
pipeline:
  - runs: |
      d=${{targets.destdir}}/usr/lib/python3.12/site-packages/greeting-${{package.version}}.dist-info
      mkdir -p "$d"
      printf 'Metadata-Version: 2.1\\nName: greeting\\nVersion: ${{package.version}}\\n' > "$d/METADATA"
"""

PYAPP_IMAGE = """
contents:
  packages: [mini-baselayout, py3-greeting]
"""

# What each mini image holds that the OSV set below makes vulnerable, and nothing else.
PLANTED = {
    "static": {("mini-baselayout", "TEST-MINI-BASE"), ("ca-certs", "TEST-MINI-CA")},
    "hello": {("mini-baselayout", "TEST-MINI-BASE"), ("hello", "TEST-GIT-HELLO")},
    "pyapp": {("mini-baselayout", "TEST-MINI-BASE"), ("greeting", "PYSEC-GREETING")},
}


def mini_osv() -> dict[str, dict[str, Any]]:
    return {
        # planted
        "TEST-MINI-BASE": _record(
            "TEST-MINI-BASE",
            [_eco("mini", "mini-baselayout", [ZERO, {"fixed": "1.1-r0"}])],
            aliases=["CVE-2099-0001"],
        ),
        "TEST-MINI-CA": _record(
            "TEST-MINI-CA",
            [_eco("mini", "ca-certs", [ZERO, {"fixed": "2024.2-r0"}])],
            aliases=["CVE-2099-0002"],
        ),
        "TEST-GIT-HELLO": _record(
            "TEST-GIT-HELLO",
            [_git(f"{HELLO_REPO}.git", [ZERO, {"fixed": "v2.1"}])],
            aliases=["CVE-2099-0003"],
        ),
        "PYSEC-GREETING": _record(
            "PYSEC-GREETING",
            [_eco("PyPI", "greeting", [ZERO, {"fixed": "0.9.1"}])],
            aliases=["CVE-2099-0004"],
        ),
        # decoys: the images' os-release ID is not our ecosystem; another distro; fixed below;
        # a GIT range fixed before our tag; another repository; a PyPI range ending below
        "TEST-OS-RELEASE-ID": _record(
            "TEST-OS-RELEASE-ID",
            [_eco("minidistro", "mini-baselayout", [ZERO, {"fixed": "9-r0"}])],
        ),
        "TEST-WOLFI-CA": _record(
            "TEST-WOLFI-CA", [_eco("Wolfi", "ca-certs", [ZERO, {"fixed": "9999-r0"}])]
        ),
        "TEST-HELLO-OLD": _record(
            "TEST-HELLO-OLD", [_eco("mini", "hello", [ZERO, {"fixed": "1.0-r0"}])]
        ),
        "TEST-GIT-OLD": _record("TEST-GIT-OLD", [_git(HELLO_REPO, [ZERO, {"fixed": "v1.9"}])]),
        "TEST-GIT-ELSEWHERE": _record(
            "TEST-GIT-ELSEWHERE",
            [_git("https://github.com/example/not-hello", [ZERO, {"fixed": "v9"}])],
        ),
        "PYSEC-OLD": _record("PYSEC-OLD", [_eco("PyPI", "greeting", [ZERO, {"fixed": "0.8"}])]),
    }


def write_osv(directory: Path, records: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for record_id, record in records.items():
        (directory / f"{record_id}.json").write_text(json.dumps(record))
    return directory


@dataclass
class Mini:
    workspace: Workspace
    layouts: dict[str, Path]
    osv: Path


@pytest.fixture(scope="module")
def mini(catalog_build: CatalogBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mini]:
    require_tools("bwrap", "gcc")
    base = tmp_path_factory.mktemp("mini-scan")
    # a copy of the session's catalog build (tests/catalog_build.py): the catalog build then builds
    # only what is new here (py3-greeting; the images, whose repository path changed)
    root = copy_catalog_build(catalog_build, base)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NANODISTRO_INDEX_STATE", str(base / "index-state.json"))
        (root / "recipes" / "py3-greeting.yaml").write_text(PY3_GREETING.lstrip())
        (root / "images" / "pyapp.yaml").write_text(PYAPP_IMAGE.lstrip())
        report = run_catalog(load_workspace(root))
    failed = [(r.name, r.error) for r in report.recipes if r.status == "failed"]
    # hello and static: kept from the copied build when their inputs did not change
    failed += [(i.name, i.error) for i in report.images if i.status not in ("built", "unchanged")]
    if failed:
        pytest.fail(f"the miniature catalog did not build: {failed}")
    # The upstream, as the scanner sees it: a GitHub release archive of tag v<version>.
    recipe = root / "recipes" / "hello.yaml"
    text = recipe.read_text()
    assert "mirror://upstream/hello-${{package.version}}.tar.gz" in text
    recipe.write_text(
        text.replace(
            "mirror://upstream/hello-${{package.version}}.tar.gz",
            f"{HELLO_REPO}/archive/refs/tags/v${{{{package.version}}}}.tar.gz",
        )
    )
    osv = write_osv(base / "osv", mini_osv())
    with (root / "nanodistro.toml").open("a") as toml:
        toml.write(f'\n[vulnerabilities]\nosv = "{osv}"\n')
    layouts = {image.name: Path(image.layout) for image in report.images}
    assert set(layouts) == set(PLANTED)
    yield Mini(load_workspace(root), layouts, osv)


def _scan_cli(cwd: Path, *args: str | Path) -> dict[str, Any]:
    done = run_cli(cwd, "scan", *args, "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _pairs(target: dict[str, Any], active: bool = False) -> set[tuple[str, str]]:
    return {
        (f["package"]["name"], f["vulnerability"]["id"])
        for f in target["findings"]
        if not (active and f["suppressed"])
    }


def test_mini_images_show_exactly_the_planted_vulnerabilities(mini: Mini) -> None:
    ws = mini.workspace.root
    for name, layout in mini.layouts.items():
        [target] = _scan_cli(ws, layout)["targets"]
        assert _pairs(target) == PLANTED[name], name
        found = {f["vulnerability"]["id"]: f for f in target["findings"]}
        base = found["TEST-MINI-BASE"]["package"]
        assert base["purl"] == "pkg:apk/mini/mini-baselayout@1.0-r0?arch=x86_64"
        assert not any(f["suppressed"] for f in target["findings"])
        if name == "hello":
            assert found["TEST-GIT-HELLO"]["match"] == f"GIT {HELLO_REPO}.git"
            assert found["TEST-GIT-HELLO"]["vulnerability"]["fixed_in"] == "v2.1"
        if name == "pyapp":
            greeting = found["PYSEC-GREETING"]["package"]
            assert greeting["purl"] == "pkg:pypi/greeting@0.9.0"
            assert greeting["owner"] == "py3-greeting"  # from the image's installed db
            assert greeting["location"] == f"{SITE}/greeting-0.9.0.dist-info/METADATA"


def test_advisories_change_the_result_as_grype_would(mini: Mini, tmp_path: Path) -> None:
    # The advisories are written in a copy of the workspace (recipes, no out/) so the other
    # tests of the module see none; the scan reads them with --advisories.
    ws = tmp_path / "ws"
    shutil.copytree(
        mini.workspace.root, ws, symlinks=True, ignore=shutil.ignore_patterns("out", "cache")
    )
    for args in (
        # fixed at the installed version: suppressed in every image
        [
            "-p",
            "mini-baselayout",
            "-V",
            "CVE-2099-0001",
            "-t",
            "fixed",
            "--fixed-version",
            "1.0-r0",
        ],
        # fixed only in a later version: still reported, fixed-in from the advisory
        ["-p", "ca-certs", "-V", "CVE-2099-0002", "-t", "fixed", "--fixed-version", "2024.2-r0"],
        # a false positive on the apk owning the Python package
        [
            "-p",
            "py3-greeting",
            "-V",
            "CVE-2099-0004",
            "-t",
            "false-positive-determination",
            "--fp-type",
            "vulnerable-code-not-included-in-package",
            "--note",
            "metadata only",
        ],
        # fix-not-planned: reported, annotated
        ["-p", "hello", "-V", "CVE-2099-0003", "-t", "fix-not-planned", "--note", "frozen"],
    ):
        made = run_cli(ws, "advisory", "create", *args)
        assert made.returncode == 0, made.stderr
    for name, layout in mini.layouts.items():
        [target] = _scan_cli(mini.workspace.root, layout, "--advisories", ws / "advisories")[
            "targets"
        ]
        assert _pairs(target) == PLANTED[name]  # suppressed findings stay, flagged
        found = {f["vulnerability"]["id"]: f for f in target["findings"]}
        assert found["TEST-MINI-BASE"]["suppressed"]
        assert found["TEST-MINI-BASE"]["status"] == "fixed"
        if name == "static":
            ca = found["TEST-MINI-CA"]
            assert not ca["suppressed"] and ca["vulnerability"]["fixed_in"] == "2024.2-r0"
            assert _pairs(target, active=True) == {("ca-certs", "TEST-MINI-CA")}
        if name == "pyapp":
            fp = found["PYSEC-GREETING"]
            assert fp["suppressed"] and fp["status"] == "false-positive-determination"
            assert _pairs(target, active=True) == set()
        if name == "hello":
            kept = found["TEST-GIT-HELLO"]
            assert not kept["suppressed"] and kept["status"] == "fix-not-planned"
            assert "frozen" in kept["annotation"]
            assert _pairs(target, active=True) == {("hello", "TEST-GIT-HELLO")}


def test_the_built_apk_and_the_signed_repository(mini: Mini) -> None:
    ws = mini.workspace
    apk = ws.packages_dir / "x86_64" / "py3-greeting-0.9.0-r0.apk"
    [target] = _scan_cli(ws.root, apk)["targets"]
    assert _pairs(target) == {("greeting", "PYSEC-GREETING")}
    assert {(c["name"], c["ecosystem"]) for c in target["packages"]} == {
        ("py3-greeting", "apk"),
        ("greeting", "PyPI"),
    }
    assert target["findings"][0]["package"]["owner"] == "py3-greeting"
    done = run_cli(ws.root, "scan", ws.packages_dir, "--json")
    assert done.returncode == 0, done.stderr
    assert "not verified" not in done.stderr  # the workspace's keys checked the index
    [repo] = json.loads(done.stdout)["targets"]
    # an index lists apk packages only: the Python package inside one is seen in the .apk
    assert _pairs(repo) == set().union(*PLANTED.values()) - {("greeting", "PYSEC-GREETING")}


def test_oci_archive_and_registry_targets(mini: Mini, tmp_path: Path) -> None:
    skopeo = find_tool("skopeo")
    layout = mini.layouts["pyapp"]
    # in the workspace's out/ (the workspace's own image; unlinked below: the module shares it)
    archive = mini.workspace.out_dir / "pyapp-archive.tar"
    subprocess.run(
        [skopeo, "copy", f"oci:{layout}:latest", f"oci-archive:{archive}"],
        check=True,
        capture_output=True,
    )
    ws = mini.workspace.root
    [scanned] = load_targets(str(archive), distro="mini", own=True)
    assert scanned.kind == "archive"
    try:
        [target] = _scan_cli(ws, archive)["targets"]
    finally:
        archive.unlink()
    assert _pairs(target) == PLANTED["pyapp"]
    with start_docker_registry(tmp_path / "registry") as registry:
        pushed = run_cli(
            ws, "image", "push", f"{layout}", registry.ref("mini/pyapp:1"), "--insecure"
        )
        assert pushed.returncode == 0, pushed.stderr
        ref = registry.ref("mini/pyapp:1")
        [target] = _scan_cli(ws, ref, "--insecure")["targets"]
        # not under the workspace's [registry] url: a foreign image, its os-release ID rules
        assert _pairs(target) == {("mini-baselayout", "TEST-OS-RELEASE-ID"), *_python(PLANTED)}
        toml = ws / "nanodistro.toml"
        saved = toml.read_text()
        try:
            toml.write_text(saved + f'\n[registry]\nurl = "{registry.host}/mini"\n')
            [target] = _scan_cli(ws, ref, "--insecure")["targets"]
            assert _pairs(target) == PLANTED["pyapp"]
        finally:
            toml.write_text(saved)


def _python(planted: dict[str, set[tuple[str, str]]]) -> set[tuple[str, str]]:
    return {pair for pair in planted["pyapp"] if pair[0] == "greeting"}


EXAMPLES = REPO_ROOT / "examples"
EXAMPLE_PLANTED = {
    "base": {
        ("musl", "TEST-EX-MUSL"),
        ("busybox", "TEST-EX-BUSYBOX"),
        ("ca-certificates-bundle", "TEST-EX-CA"),
    },
    "lua": {
        ("musl", "TEST-EX-MUSL"),
        ("lua5.4", "TEST-EX-GIT-LUA"),
        ("ca-certificates-bundle", "TEST-EX-CA"),
    },
    "static": {("ca-certificates-bundle", "TEST-EX-CA")},
}


def test_example_images_show_exactly_the_planted_vulnerabilities(tmp_path: Path) -> None:
    images = EXAMPLES / "out" / "images"
    if not images.is_dir():
        pytest.skip(f"{images} not built: the example images are made by `make run`")
    distro = distro_name(load_workspace(EXAMPLES).name)  # "nanodistro-examples"
    # The lua recipe, as if it fetched a GitHub release archive (a copy; examples/ is untouched).
    recipe = tmp_path / "lua5.4.yaml"
    text = (EXAMPLES / "recipes" / "lua5.4.yaml").read_text()
    fetch = "mirror://debian/pool/main/l/lua5.4/lua5.4_${{package.version}}.orig.tar.gz"
    assert fetch in text
    recipe.write_text(
        text.replace(
            fetch, "https://github.com/lua/lua/archive/refs/tags/v${{package.version}}.tar.gz"
        )
    )
    warnings: list[str] = []
    sources = git_sources_from_recipes([recipe], warnings)
    assert not warnings and set(sources) >= {"lua5.4"}
    records = {
        "TEST-EX-MUSL": _record(
            "TEST-EX-MUSL", [_eco(distro, "musl", [ZERO, {"fixed": "1.2.3-r2"}])]
        ),
        "TEST-EX-BUSYBOX": _record(
            "TEST-EX-BUSYBOX",
            [_eco(distro, "busybox", [ZERO, {"fixed": "1.36.0-r0"}])],
            aliases=["CVE-2099-1000"],
        ),
        "TEST-EX-CA": _record(
            "TEST-EX-CA", [_eco(distro, "ca-certificates-bundle", [ZERO, {"fixed": "20990101-r0"}])]
        ),
        "TEST-EX-GIT-LUA": _record(
            "TEST-EX-GIT-LUA", [_git("https://github.com/lua/lua", [ZERO, {"fixed": "v5.4.5"}])]
        ),
        # decoys
        "TEST-EX-OSRELEASE": _record(
            "TEST-EX-OSRELEASE", [_eco("nanodistro", "musl", [ZERO, {"fixed": "9-r0"}])]
        ),
        "TEST-EX-MUSL-OLD": _record(
            "TEST-EX-MUSL-OLD", [_eco(distro, "musl", [ZERO, {"fixed": "1.2.3-r1"}])]
        ),
        "TEST-EX-GIT-OLD": _record(
            "TEST-EX-GIT-OLD", [_git("https://github.com/lua/lua", [ZERO, {"fixed": "v5.4.4"}])]
        ),
        "PYSEC-EX": _record("PYSEC-EX", [_eco("PyPI", "lua", [ZERO, {"fixed": "99"}])]),
    }
    db = load_osv(write_osv(tmp_path / "osv", records))
    advisory = TriageEntry(
        "busybox", "CGA-8888-9999-aaaa", frozenset({"CVE-2099-1000"}), "fixed", "1.35.0-r1"
    )
    for name, planted in EXAMPLE_PLANTED.items():
        layout = images / name
        [target] = load_targets(str(layout), distro=distro, own=True)
        assert target.inventory.distro == distro
        result = scan_inventory(target.inventory, db, target=target.label, git_sources=sources)
        assert {(f.component.name, f.vuln_id) for f in result.findings} == planted, name
        triaged = scan_inventory(
            target.inventory, db, target=target.label, git_sources=sources, triage=[advisory]
        )
        active = {(f.component.name, f.vuln_id) for f in triaged.active}
        assert active == planted - {("busybox", "TEST-EX-BUSYBOX")}, name
