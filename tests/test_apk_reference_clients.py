"""Our repositories and images judged by the reference apk clients, as a user's client would.

apk-tools 2.14.10 and 3.0.6 (``make apk-tools``; tests/apk_reference.py) against the miniature
catalog (tests/mini_catalog.py, built once per session: tests/catalog_build.py) and, when ``make run`` has built it,
the example repository: every package installs alone into an empty root, ``apk verify`` accepts
every package, ``apk index`` over the packages finds a provider for every dependency, and
``apk audit`` of every image root reports no changed package file. The commands are those of
../shared/tools/apk-tools/README.md.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from apk_reference import CLIENTS, ApkClient, apk_clients
from catalog_build import CatalogBuild, copy_catalog_build
from fixture_paths import REPO_ROOT
from nanodistro.factory.workspace import load_workspace
from nanodistro.formats.apk import read_apk
from needs_tools import require_tools

pytestmark = pytest.mark.slow

ARCH = "x86_64"
EXAMPLES = REPO_ROOT / "examples"


@dataclass
class Distribution:
    name: str
    repo: Path  # holds <arch>/APKINDEX.tar.gz and the .apk files
    keys: Path  # public keys, named as the packages' signatures name them
    roots: dict[str, Path]  # image name -> unpacked root filesystem

    @property
    def packages(self) -> list[Path]:
        return sorted((self.repo / ARCH).glob("*.apk"))


def _public_keys(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for key in source.glob("*.rsa.pub"):
        shutil.copyfile(key, target / key.name)
    return target


def _unpack(layout: Path, target: Path) -> Path:
    """The image's root filesystem, unpacked from its layers by umoci."""
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:latest", str(target)],
        check=True,
        capture_output=True,
    )
    return target / "rootfs"


@pytest.fixture(scope="module")
def mini(catalog_build: CatalogBuild, tmp_path_factory: pytest.TempPathFactory) -> Distribution:
    """This module's copy of the session's catalog build (tests/catalog_build.py)."""
    require_tools("umoci")
    base = tmp_path_factory.mktemp("mini-catalog")
    workspace = load_workspace(copy_catalog_build(catalog_build, base))
    roots = {
        name: _unpack(workspace.image_out_dir / name, base / "roots" / name)
        for name in catalog_build.images
    }
    return Distribution(
        "mini", workspace.packages_dir, _public_keys(workspace.keys_dir, base / "keys"), roots
    )


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Distribution:
    packages = EXAMPLES / "out" / "packages"
    if not (packages / ARCH / "APKINDEX.tar.gz").is_file():
        pytest.skip(
            f"{packages} not built: the example repository is made by `make run`, not by "
            "`make test`"
        )
    require_tools("umoci")
    base = tmp_path_factory.mktemp("examples")
    roots = {
        layout.name: _unpack(layout, base / "roots" / layout.name)
        for layout in sorted((EXAMPLES / "out" / "images").iterdir())
        if (layout / "index.json").is_file()
    }
    return Distribution("examples", packages, _public_keys(EXAMPLES / "keys", base / "keys"), roots)


@pytest.fixture(params=["mini", "examples"])
def distribution(request: pytest.FixtureRequest) -> Distribution:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> ApkClient:
    return {c.name: c for c in apk_clients()}[request.param]


def test_every_package_installs_alone(
    distribution: Distribution, client: ApkClient, tmp_path: Path
) -> None:
    assert distribution.packages, f"no packages in {distribution.repo / ARCH}"
    failures = []
    for file in distribution.packages:
        info = read_apk(file.read_bytes(), where=str(file)).info
        root = tmp_path / f"{info.name}-{info.version}"
        result = client.run(
            "--root", str(root), "--initdb", "--keys-dir", str(distribution.keys),
            "--repositories-file", "/dev/null", "--repository", str(distribution.repo),
            "--no-network", "--no-cache", "--arch", ARCH,
            "add", f"{info.name}={info.version}",
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            failures.append(f"{info.name}-{info.version}:\n{result.stdout}{result.stderr}")
    assert not failures, f"{client} could not install:\n" + "\n".join(failures)


def test_verify_accepts_every_package(distribution: Distribution, client: ApkClient) -> None:
    files = [str(p) for p in distribution.packages]
    result = client.run("verify", "--keys-dir", str(distribution.keys), *files, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("OK") == len(files), result.stdout


def test_index_finds_a_provider_for_every_dependency(
    distribution: Distribution, client: ApkClient, tmp_path: Path
) -> None:
    files = [str(p) for p in distribution.packages]
    result = client.run(
        "index", "--keys-dir", str(distribution.keys), "-o", str(tmp_path / "APKINDEX.tar.gz"),
        *files,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "No provider" not in output and "WARNING" not in output, output


def test_audit_of_every_image_root_finds_no_changed_package_file(
    distribution: Distribution, client: ApkClient
) -> None:
    """``audit --check-permissions`` checks configuration files, ``--full`` every other file;
    ``A``/``D`` lines are files and directories that no package owns, anything else (``U``
    content, ``M`` mode or owner, ``X`` xattrs, ``e`` unreadable) a package file changed."""
    assert distribution.roots, "no images"
    changed = []
    for name, root in sorted(distribution.roots.items()):
        assert (root / "lib/apk/db/installed").is_file(), f"{name}: no installed database"
        for mode in ([], ["--full"]):
            result = client.run("--root", str(root), "audit", *mode, "--check-permissions")
            changed += [
                f"{name}: {line}"
                for line in result.stdout.splitlines()
                if line.strip() and line[:2] not in ("A ", "D ")
            ]
    assert not changed, f"{client} audit:\n" + "\n".join(changed)
