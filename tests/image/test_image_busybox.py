"""Busybox applet links made the way apko makes them (from /etc/busybox-paths.d/<package>)."""

from __future__ import annotations

import pytest
from image_testlib import Pkg, build_apk, make_key

from nanodistro.formats.installed_db import parse_installed
from nanodistro.image.apkfile import open_apk
from nanodistro.image.install import AssembledRoot, assemble_root
from nanodistro.imageconfig import load_config_text


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> object:
    return make_key(tmp_path_factory.mktemp("keys"))


def assemble(pkgs: list[Pkg], key: object) -> AssembledRoot:
    apks = [(open_apk(build_apk(p, "x86_64", key), where=p.name), "repo") for p in pkgs]  # type: ignore[arg-type]
    return assemble_root(
        load_config_text("{}\n").config,
        apks,
        apk_arch="x86_64",
        keyring={},
        runtime_repositories=[],
        world=[p.name for p in pkgs],
        source_date_epoch=7,
    )


def test_links_from_the_paths_manifest_skip_existing_files(key: object) -> None:
    manifest = b"/bin/busybox\n/bin/sh\n/usr/bin/env\n/sbin/ifconfig\n/bin/ls\n\n"
    busybox = Pkg(
        "busybox",
        "1.37.0-r0",
        files={"bin/busybox": b"\x7fELF", "etc/busybox-paths.d/busybox": manifest},
    )
    coreutils = Pkg("coreutils", files={"bin/ls": b"\x7fELF ls"})
    root = assemble([busybox, coreutils], key)
    fs = root.fs
    for link in ("bin/sh", "usr/bin/env", "sbin/ifconfig"):
        node = fs.get(link, follow=False)
        assert node is not None and node.entry.type == "symlink", link
        assert (node.entry.linkname, node.entry.mtime) == ("/bin/busybox", 7)
    assert fs.get("bin/ls", follow=False).entry.type == "file"  # type: ignore[union-attr]
    assert fs.get("bin/busybox", follow=False).entry.type == "file"  # type: ignore[union-attr]
    assert root.warnings == []
    # like apko, the links are the image's, not the package's
    records = parse_installed(fs.read("usr/lib/apk/db/installed") or b"", where="installed")
    assert "bin/sh" not in next(r for r in records if r.info.name == "busybox").paths()


def test_old_busybox_without_manifest_is_reported(key: object) -> None:
    bare = Pkg("busybox", "1.35.0-r0", files={"bin/busybox": b"\x7fELF"})
    root = assemble([bare], key)
    assert len(root.warnings) == 1 and "busybox 1.35.0-r0" in root.warnings[0]
    assert "/etc/busybox-paths.d/busybox" in root.warnings[0]
    # a package that ships its own applet links (make install) needs nothing more
    linked = Pkg(
        "busybox", "1.35.0-r0", files={"bin/busybox": b"\x7fELF"}, symlinks={"bin/sh": "busybox"}
    )
    assert assemble([linked], key).warnings == []


def test_nothing_without_bin_busybox(key: object) -> None:
    root = assemble([Pkg("busybox", files={"usr/share/doc/busybox": b""})], key)
    assert root.warnings == [] and root.fs.get("bin/sh") is None
