"""One purl namespace (the workspace's name) in every SBOM, and real upstream download URLs.

A recipe fetches ``mirror://upstream/...``; the workspace names itself ``Acme`` and maps the
mirror to a server on 127.0.0.1. The package's SPDX (embedded), its CycloneDX export and the
SBOMs of an image built from it name ``pkg:apk/acme/...`` and the URL the mirror resolved to,
never ``unknown`` or ``mirror://``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from build_testlib import Upstream

from nanodistro.builder.mirrors import upstream_url
from nanodistro.cli import main as cli_main
from nanodistro.formats.apk import read_apk
from nanodistro.util.host import host_arch


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    return int(exit_info.value.code or 0)


def recipe_text(uri: str, sha256: str) -> str:
    return f"""package:
  name: tiny
  version: "0.1"
  epoch: 0
  description: a file from a mirrored tarball
  copyright:
    - license: CC0-1.0
pipeline:
  - uses: fetch
    with:
      uri: {uri}
      expected-sha256: {sha256}
  - runs: |
      mkdir -p ${{{{targets.destdir}}}}/usr/share/tiny
      cp data ${{{{targets.destdir}}}}/usr/share/tiny/data
"""


def embedded_spdx(apk: Path) -> tuple[bytes, dict[str, Any]]:
    pkg = read_apk(apk.read_bytes(), where=str(apk))
    entry = next(e for e in pkg.entries if e.path.startswith("var/lib/db/sbom/"))
    return entry.data, json.loads(entry.data)


def source_package(doc: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in doc["packages"] if p.get("primaryPackagePurpose") == "SOURCE")


def apk_purl_of(doc: dict[str, Any], name: str) -> str:
    package = next(p for p in doc["packages"] if p["name"] == name)
    return str(package["externalRefs"][0]["referenceLocator"])


@pytest.fixture
def tarball(upstream: Upstream) -> tuple[str, str]:
    (upstream.root / "dl").mkdir()
    return upstream.add_tarball("dl/tiny-0.1.tar.gz", {"data": "tiny\n"}, top="tiny-0.1")


def test_workspace_name_and_resolved_mirror_in_every_sbom(
    tmp_path: Path,
    upstream: Upstream,
    tarball: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nanodistro.trust.keys import generate_key

    arch = host_arch()
    root = tmp_path / "ws"
    (root / "recipes").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "nanodistro.toml").write_text(
        '[workspace]\nname = "Acme"\n[keys]\ndir = "keys"\nname = "acme"\n'
        f'[sources]\ncache = "cache"\n[mirrors]\nupstream = "{upstream.base_url}/dl"\n'
    )
    generate_key("acme", root / "keys", bits=2048)
    url, sha = tarball
    recipe = root / "recipes" / "tiny.yaml"
    recipe.write_text(recipe_text("mirror://upstream/tiny-0.1.tar.gz", sha))
    assert run_cli(["build", str(recipe), "--no-test", "--json"]) == 0
    capsys.readouterr()
    apk = root / "out" / "packages" / arch / "tiny-0.1-r0.apk"

    # the package's own SPDX document
    raw, doc = embedded_spdx(apk)
    assert apk_purl_of(doc, "tiny") == f"pkg:apk/acme/tiny@0.1-r0?arch={arch}"
    source = source_package(doc)
    assert source["downloadLocation"] == url == f"{upstream.base_url}/dl/tiny-0.1.tar.gz"
    assert f"download_url={quote(url, safe='')}" in source["externalRefs"][0]["referenceLocator"]
    assert b"mirror:" not in raw and b"mirror%3A" not in raw
    assert b"unknown" not in raw

    # its CycloneDX export: the same purl, the source's distribution URL
    assert run_cli(["sbom", str(apk), "--format", "cyclonedx"]) == 0
    bom = json.loads(capsys.readouterr().out)
    component = bom["metadata"]["component"]
    assert component["purl"] == f"pkg:apk/acme/tiny@0.1-r0?arch={arch}"
    (ancestor,) = component["pedigree"]["ancestors"]
    assert {"type": "distribution", "url": url} in ancestor["externalReferences"]

    # an image of it: SPDX and CycloneDX name the package by the same purl
    config = root / "images" / "tiny.yaml"
    config.write_text(
        f"contents:\n  packages: [tiny]\narchs: [{arch}]\nentrypoint:\n  command: /bin/true\n"
    )
    out = tmp_path / "layout"
    assert run_cli(["image", "build", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    image_spdx = json.loads((out / "sboms" / f"sbom-{arch}.spdx.json").read_bytes())
    assert apk_purl_of(image_spdx, "tiny") == f"pkg:apk/acme/tiny@0.1-r0?arch={arch}"
    image_cdx = json.loads((out / "sboms" / f"sbom-{arch}.cdx.json").read_bytes())
    purls = {c["name"]: c.get("purl") for c in image_cdx["components"]}
    assert purls["tiny"] == f"pkg:apk/acme/tiny@0.1-r0?arch={arch}"
    for path in (out / "sboms").iterdir():
        assert b"pkg:apk/unknown" not in path.read_bytes(), path


def test_outside_a_workspace_the_namespace_is_nanodistro(
    tmp_path: Path, upstream: Upstream, tarball: tuple[str, str]
) -> None:
    url, sha = tarball
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(recipe_text(url, sha))
    out = tmp_path / "pkgs"
    args = ["build", str(recipe), "--no-test", "--out", str(out)]
    assert run_cli([*args, "--source-cache", str(tmp_path / "cache")]) == 0
    raw, doc = embedded_spdx(out / host_arch() / "tiny-0.1-r0.apk")
    assert apk_purl_of(doc, "tiny") == f"pkg:apk/nanodistro/tiny@0.1-r0?arch={host_arch()}"
    assert doc["packages"][0]["name"] == "nanodistro"  # the operating-system package
    assert b"unknown" not in raw
    assert source_package(doc)["downloadLocation"] == url


def test_upstream_url_resolves_mirrors_and_never_reads_the_host() -> None:
    debian = "mirror://debian/pool/main/x/xz-utils/xz-utils_5.6.4.orig.tar.xz"
    # [mirrors] wins; without it, Debian's public archive (not this host's apt mirror, which
    # would make the SBOM, and so the package bytes, differ between machines)
    assert upstream_url(debian, {"debian": "http://127.0.0.1:9/debian/"}) == (
        "http://127.0.0.1:9/debian/pool/main/x/xz-utils/xz-utils_5.6.4.orig.tar.xz"
    )
    assert upstream_url(debian, {}) == (
        "https://deb.debian.org/debian/pool/main/x/xz-utils/xz-utils_5.6.4.orig.tar.xz"
    )
    assert upstream_url("mirror://nowhere/a.tar.gz", {}) is None
    assert upstream_url("https://example.org/a.tar.gz", {}) == "https://example.org/a.tar.gz"


def test_an_unresolvable_mirror_is_noassertion_not_a_mirror_uri() -> None:
    from nanodistro.builder.sbom import source_package as spdx_source
    from nanodistro.builder.sources import SourceRecord

    record = SourceRecord(
        kind="fetch", uri="mirror://nowhere/a-1.tar.gz", sha256="a" * 64, purl_version="1"
    )
    package = spdx_source(record)
    assert package.download_location == "NOASSERTION"
    purl = package.external_refs[0].locator
    assert "mirror" not in purl and purl.startswith("pkg:generic/a-1.tar.gz@1?checksum=sha256:")
