"""Units of image assembly: the in-memory root, paths/accounts mutations, layers, OCI codec."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from image_testlib import Pkg, build_apk, make_key

from fixture_paths import THIRD_PARTY
from nanodistro.errors import FormatError, ImageError, UnsafePathError
from nanodistro.formats.installed_db import parse_installed
from nanodistro.formats.oci import (
    MEDIA_MANIFEST,
    Descriptor,
    Platform,
    canonical_json,
    image_index,
    parse_index,
    parse_manifest,
)
from nanodistro.formats.tarball import TarEntry, gunzip
from nanodistro.image.apkfile import open_apk
from nanodistro.image.build import BuildRequest, build_image
from nanodistro.image.install import assemble_root
from nanodistro.image.layers import build_layers
from nanodistro.image.rootfs import RootFS
from nanodistro.imageconfig import load_config, load_config_text

APKO_TESTDATA = THIRD_PARTY / "chainguard-dev+apko/internal/cli/testdata"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> object:
    return make_key(tmp_path_factory.mktemp("keys"))


def _apk(pkg: Pkg, key: object) -> object:
    return open_apk(build_apk(pkg, "x86_64", key), where=pkg.name)  # type: ignore[arg-type]


def _assemble(config_text: str, pkgs: list[Pkg], key: object) -> object:
    config = load_config_text(config_text).config
    return assemble_root(
        config,
        [(_apk(p, key), "repo") for p in pkgs],  # type: ignore[misc]
        apk_arch="x86_64",
        keyring={},
        runtime_repositories=["https://example.com/os"],
        world=[p.name for p in pkgs],
        source_date_epoch=42,
    )


def _layer_members(root: object) -> dict[str, tarfile.TarInfo]:
    (layer,) = build_layers(root)  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(layer.gz)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_rootfs_resolves_symlinks_inside_the_root() -> None:
    fs = RootFS()
    fs.put(TarEntry("usr/lib", "dir"))
    fs.put(TarEntry("lib", "symlink", linkname="usr/lib"))
    fs.put(TarEntry("escape", "symlink", linkname="../../../../etc"))
    assert fs.resolve("lib/libc.so") == "usr/lib/libc.so"
    assert fs.resolve("escape/passwd") == "etc/passwd"  # clamped at the root like a chroot
    fs.put(TarEntry("lib/libc.so", "file", data=b"x"))
    assert fs.read("usr/lib/libc.so") == b"x"
    fs.put(TarEntry("loop", "symlink", linkname="loop"))
    with pytest.raises(ImageError, match="symbolic links"):
        fs.resolve("loop/x")
    with pytest.raises(ImageError, match="directory"):
        fs.put(TarEntry("usr", "file"))


def test_lib_apk_link_when_lib_is_a_directory(key: object) -> None:
    root = _assemble("{}\n", [Pkg("base", files={"lib/ld.so": b"ld"})], key)
    members = _layer_members(root)
    assert members["lib/apk"].issym() and members["lib/apk"].linkname == "../usr/lib/apk"
    assert members["usr/lib/apk/db/installed"].mtime == 42
    assert members["lib/ld.so"].mtime != 42  # package files keep their build date


def test_overwritten_file_leaves_the_earlier_package_record(key: object) -> None:
    first = Pkg("first", files={"etc/conf": b"1", "etc/only-first": b"a"})
    second = Pkg("second", files={"etc/conf": b"2"})
    root = _assemble("{}\n", [first, second], key)
    assert root.fs.read("etc/conf") == b"2"  # type: ignore[attr-defined]
    records = {
        r.info.name: r.paths()
        for r in parse_installed(root.fs.read("usr/lib/apk/db/installed"), where="db")  # type: ignore[attr-defined]
    }
    assert "etc/conf" not in records["first"] and "etc/only-first" in records["first"]
    assert "etc/conf" in records["second"]


def test_paths_mutations(key: object) -> None:
    config = """\
paths:
  - {path: /srv/app, type: directory, uid: 7, gid: 8, permissions: 0o700, recursive: true}
  - {path: /srv/app/cache, type: directory}
  - {path: /etc/hard, type: hardlink, source: /etc/data}
  - {path: /etc/perm, type: permissions, permissions: 0o600, uid: 3, gid: 3}
  - {path: /srv/tree, type: permissions, uid: 9, gid: 9, recursive: true}
"""
    pkg = Pkg(
        "data",
        files={"etc/data": b"d", "etc/perm": b"p", "srv/tree/a/b": b"b", "zz/first": b"z"},
    )
    members = _layer_members(_assemble(config, [pkg], key))
    app = members["srv/app"]
    assert (app.mode, app.uid, app.gid) == (0o700, 7, 8)
    assert members["srv/app/cache"].mode == 0o755
    assert members["etc/hard"].islnk() and members["etc/hard"].linkname == "etc/data"
    assert (members["etc/perm"].mode, members["etc/perm"].uid) == (0o600, 3)
    assert members["srv/tree/a/b"].uid == 9 and members["srv/tree/a"].uid == 9


def test_hardlink_sorting_before_its_target_is_written_as_the_file(key: object) -> None:
    config = "paths:\n  - {path: /a-link, type: hardlink, source: /zz/target}\n"
    root = _assemble(config, [Pkg("t", files={"zz/target": b"payload"})], key)
    (layer,) = build_layers(root)  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(layer.gz)) as tar:
        link = tar.getmember("a-link")
        target = tar.getmember("zz/target")
        assert link.isfile() and tar.extractfile(link).read() == b"payload"  # type: ignore[union-attr]
        assert target.islnk() and target.linkname == "a-link"


def test_service_bundle_and_runtime_keyring(key: object) -> None:
    config = """\
entrypoint:
  type: service-bundle
  services: {web: /usr/bin/web --serve}
contents:
  runtime_keyring: [{name: mirror.rsa.pub, content: PEM}]
"""
    root = _assemble(config, [Pkg("s6")], key)
    fs = root.fs  # type: ignore[attr-defined]
    assert fs.read("sv/web/run") == b"#!/bin/execlineb\n/usr/bin/web --serve\n"
    assert fs.get("sv/web/run").entry.mode == 0o755
    assert fs.read("etc/apk/keys/mirror.rsa.pub") == b"PEM"
    assert fs.read("etc/apk/repositories") == b"https://example.com/os\n"
    assert json.loads(fs.read("etc/apko.json"))["entrypoint"]["type"] == "service-bundle"


def test_unsafe_package_paths_are_refused(key: object) -> None:
    bad = Pkg("bad", symlinks={"evil": "../../../../etc/shadow"})
    expected = (
        r"^bad-1\.0-r0\.apk: symlink 'evil' -> '\.\./\.\./\.\./\.\./etc/shadow' points outside"
    )
    with pytest.raises(UnsafePathError, match=expected):
        _assemble("{}\n", [bad], key)


def test_layering_merges_replaces_groups_like_apko() -> None:
    """apko's layering.yaml: replayout replaces pretend-baselayout, so they share one group."""
    loaded = load_config(APKO_TESTDATA / "layering.yaml")
    result = build_image(BuildRequest(loaded=loaded, archs=["amd64"], source_date_epoch=0))
    layers = result.images[0].layers
    assert [layer.packages for layer in layers] == [["pretend-baselayout", "replayout"], []]
    assert result.images[0].root.fs.read("etc/apk/repositories") == (
        b"./testdata/packages\napk.cgr.dev/runtime-only-repo\n"
    )


def test_oci_codec_round_trip() -> None:
    layer = Descriptor.for_bytes("application/vnd.oci.image.layer.v1.tar+gzip", b"x")
    manifest = Descriptor(MEDIA_MANIFEST, layer.digest, 10, platform=Platform("arm", variant="v7"))
    index = canonical_json(image_index([manifest], {"b": "2", "a": "1"}))
    assert b" " not in index
    parsed = parse_index(index, where="idx")
    assert parsed.manifests[0].platform == Platform("arm", "linux", "v7")
    assert list(parsed.annotations) == ["a", "b"]
    with pytest.raises(FormatError, match="digest"):
        parse_manifest(
            b'{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"md5:x"},"layers":[]}',
            where="m",
        )
    with pytest.raises(FormatError, match="JSON"):
        parse_index(b"{nope", where="i")


def test_apko_golden_layers_parse() -> None:
    from nanodistro.image.oci_layout import Layout

    layout = Layout(APKO_TESTDATA / "golden")
    assert len(layout.images()) == 2  # x86_64 and aarch64
    for image in layout.images():
        blob = layout.blob(image.manifest.layers[0].digest)
        with tarfile.open(fileobj=io.BytesIO(gunzip(blob, where="g"))) as tar:
            assert "usr/lib/apk/db/installed" in tar.getnames()


def test_missing_layout_is_a_clear_error(tmp_path: Path) -> None:
    from nanodistro.image.oci_layout import Layout

    with pytest.raises(ImageError, match="not an OCI layout"):
        Layout(tmp_path)
