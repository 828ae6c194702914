"""SCA over real ELF files built with the host gcc, and the SPDX codec / package SBOM."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from nanodistro.builder.sbom import package_sbom
from nanodistro.builder.sca import ScaOptions, ScaResult, analyze
from nanodistro.builder.sources import SourceRecord
from nanodistro.errors import FormatError
from nanodistro.formats import spdx
from nanodistro.formats.tarball import entries_from_directory


def scan(root: Path, **kwargs: object) -> ScaResult:
    return analyze(entries_from_directory(root, mtime=0), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DESTDIR like `make install` leaves: a library, its -dev symlink, a program, a .pc."""
    src = tmp_path_factory.mktemp("src")
    root = tmp_path_factory.mktemp("destdir")
    (src / "foo.c").write_text("int foo(void) { return 1; }\n")
    (src / "main.c").write_text("int foo(void); int main(void) { return foo(); }\n")
    lib = root / "usr/lib"
    bindir = root / "usr/bin"
    (lib / "pkgconfig").mkdir(parents=True)
    bindir.mkdir(parents=True)
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,-soname,libfoo.so.1",
            "-o",
            str(lib / "libfoo.so.1.2.3"),
            str(src / "foo.c"),
        ],
        check=True,
    )
    os.symlink("libfoo.so.1.2.3", lib / "libfoo.so.1")
    os.symlink("libfoo.so.1", lib / "libfoo.so")
    subprocess.run(
        ["gcc", "-o", str(bindir / "foo-run"), str(src / "main.c"), str(lib / "libfoo.so.1.2.3")],
        check=True,
    )
    (bindir / "foo-script").write_text("#!/usr/bin/env python3\nprint(1)\n")
    (bindir / "foo-script").chmod(0o755)
    (bindir / "not-executable").write_text("data")
    (lib / "pkgconfig/foo.pc").write_text(
        "prefix=/usr\nzver=1.2\nName: foo\nVersion: 1.2.3\n"
        "Requires: zlib >= ${zver}, libbar\nRequires.private: baz = 2\nLibs: -lfoo\n"
    )
    (root / "usr/lib/python3.11/site-packages/foo").mkdir(parents=True)
    (root / "opt/vendor").mkdir(parents=True)
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,-soname,libvend.so.2",
            "-o",
            str(root / "opt/vendor/libvend.so.2"),
            str(src / "foo.c"),
        ],
        check=True,
    )
    return root


def test_sca_provides_and_depends(tree: Path) -> None:
    result = scan(tree, full_version="1.2.3-r1")
    assert "so:libfoo.so.1=1" in result.provides
    assert "cmd:foo-run=1.2.3-r1" in result.provides
    assert "cmd:foo-script=1.2.3-r1" in result.provides
    assert not any("not-executable" in p for p in result.provides)
    assert "pc:foo=1.2.3-r1" in result.provides
    assert {"pc:zlib", "pc:libbar", "pc:baz"} <= set(result.depends)
    assert "so:libc.so.6" in result.depends
    # melange getShbang ignores python3 (and sh, python, awk, luajit)
    assert not any(d.startswith("cmd:") for d in result.depends)
    assert "python-3.11-base" in result.depends
    # libfoo.so.1 is needed by foo-run but provided by the package itself
    assert "so:libfoo.so.1" not in result.depends
    assert result.vendored == ["so:libvend.so.2=2"]
    assert not any("libvend" in p for p in result.provides)


def test_sca_dev_symlink_depends_on_the_library(tree: Path, tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    (dev / "usr/lib").mkdir(parents=True)
    os.symlink("libfoo.so.1", dev / "usr/lib/libfoo.so")
    entries = entries_from_directory(dev, mtime=0)
    # the target is in the sibling (main) package: depend on its DT_SONAME
    main = entries_from_directory(tree, mtime=0)
    result = analyze(entries, full_version="1-r0", siblings={"foo": main})
    assert result.depends == ["so:libfoo.so.1"]
    assert result.origins == {"so:libfoo.so.1": ["usr/lib/libfoo.so (dev symlink)"]}
    # in no package of the build: no dependency on a name nothing provides, and a warning
    alone = analyze(entries, full_version="1-r0")
    assert alone.depends == []
    assert alone.warnings and "usr/lib/libfoo.so" in alone.warnings[0]


def test_sca_options(tree: Path) -> None:
    result = scan(tree, full_version="1-r0", options=ScaOptions(no_commands=True))
    assert not any(p.startswith("cmd:") for p in result.provides + result.depends)
    assert scan(tree, full_version="1-r0", options=ScaOptions(no_provides=True)).provides == []
    assert scan(tree, full_version="1-r0", options=ScaOptions(no_depends=True)).depends == []


def test_package_sbom_is_deterministic_spdx(tmp_path: Path) -> None:
    sources = [
        SourceRecord(
            kind="fetch",
            uri="https://example.org/foo-1.2.3.tar.gz",
            sha256="a" * 64,
            sha512="b" * 128,
            purl_name="foo",
            purl_version="1.2.3",
        ),
        SourceRecord(
            kind="git",
            uri="https://github.com/org/foo",
            repository="https://github.com/org/foo",
            tag="v1.2.3",
            commit="c" * 40,
        ),
    ]
    kwargs = dict(
        name="foo",
        full_version="1.2.3-r1",
        arch="x86_64",
        licenses=["MIT", "Apache-2.0"],
        copyright_text="",
        description="Foo",
        sources=sources,
        recipe_path="foo.yaml",
        recipe_commit="",
        source_date_epoch=1_700_000_000,
    )
    raw = package_sbom(**kwargs)  # type: ignore[arg-type]
    assert raw == package_sbom(**kwargs)  # type: ignore[arg-type]
    data = json.loads(raw)
    assert data["spdxVersion"] == "SPDX-2.3"
    assert data["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    apk = next(p for p in data["packages"] if p["name"] == "foo")
    assert apk["licenseDeclared"] == "MIT AND Apache-2.0"
    assert apk["externalRefs"][0]["referenceLocator"] == (
        "pkg:apk/nanodistro/foo@1.2.3-r1?arch=x86_64"  # formats.purl form
    )
    source_purls = [
        p["externalRefs"][0]["referenceLocator"]
        for p in data["packages"]
        if p.get("primaryPackagePurpose") == "SOURCE"
    ]
    assert source_purls[0].startswith("pkg:generic/foo@1.2.3?checksum=sha256:" + "a" * 64)
    assert "download_url=https%3A%2F%2Fexample.org%2Ffoo-1.2.3.tar.gz" in source_purls[0]
    assert source_purls[1] == "pkg:github/org/foo@v1.2.3"
    kinds = {(r["relationshipType"]) for r in data["relationships"]}
    assert {"DESCRIBES", "DESCRIBED_BY", "GENERATED_FROM"} <= kinds
    doc = spdx.from_json(raw)
    assert spdx.to_json(doc) == raw  # lossless round trip of what we write


def test_spdx_reads_a_real_melange_sbom(third_party: Path) -> None:
    from nanodistro.formats.apk import read_apk

    apk = third_party / "chainguard-dev+melange/pkg/sign/testdata/test.apk"
    pkg = read_apk(apk.read_bytes(), where=str(apk))
    sboms = [e for e in pkg.entries if e.path.endswith(".spdx.json")]
    assert [e.path for e in sboms] == ["var/lib/db/sbom/wolfi-base-1-r1.spdx.json"]
    doc = spdx.from_json(sboms[0].data, where=sboms[0].path)
    assert doc.name == "apk-wolfi-base-1-r1"
    assert [(p.name, p.version) for p in doc.packages] == [("wolfi-base", "1-r1")]


def test_spdx_rejects_non_spdx() -> None:
    with pytest.raises(FormatError):
        spdx.from_json(b'{"bomFormat": "CycloneDX"}')
    with pytest.raises(FormatError):
        spdx.from_json(b"not json")


def test_spdx_identifiers_and_namespace_hash() -> None:
    assert spdx.spdx_id("apk", "foo", "1.0-r0") == "SPDXRef-Package-apk-foo-1.0-r0"
    assert spdx.spdx_id("Source", "a_b:c/d") == "SPDXRef-Package-Source-aC95b-c-d"
    # FNV-1a 128 test vector for the empty string is the offset basis
    assert spdx.fnv128a_hex("") == "6c62272e07bb014262b821756295c58d"
    assert spdx.fnv128a_hex("a") == "d228cb696f1a8caf78912b704e4a8964"
