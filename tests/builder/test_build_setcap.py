"""setcap: -> security.capability xattrs, checked against libcap's setcap(8) encoding."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nanodistro.builder.setcap import apply_setcap, capability_xattr
from nanodistro.errors import BuildError
from nanodistro.formats.tarball import TarEntry
from nanodistro.recipe.model import Capability


def test_encoding_matches_known_value() -> None:
    value = capability_xattr({"cap_net_bind_service,cap_net_raw": "+ep"}, where="t")
    assert value.hex() == "0100000200240000000000000000000000000000"
    # bits above 31 go to the second permitted word; no e -> no effective flag
    high = capability_xattr({"cap_bpf": "+p"}, where="t")
    assert high.hex() == "00000002" + "00000000" + "00000000" + "80000000" + "00000000"


@pytest.mark.skipif(
    shutil.which("setcap") is None or os.geteuid() != 0, reason="needs setcap as root"
)
def test_encoding_matches_libcap(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.touch()
    subprocess.run(["setcap", "cap_sys_admin,cap_chown+eip", str(target)], check=True)
    expected = os.getxattr(target, "security.capability")
    assert capability_xattr({"cap_sys_admin,cap_chown": "+eip"}, where="t") == expected


def test_apply_and_errors() -> None:
    entries = [TarEntry("usr/bin/ping", "file", mode=0o755, data=b"x")]
    apply_setcap(entries, [Capability(path="/usr/bin/ping", add={"cap_net_raw": "+ep"})], where="p")
    assert entries[0].xattrs["security.capability"][:4] == bytes.fromhex("01000002")
    with pytest.raises(BuildError, match="not a regular file"):
        apply_setcap(
            entries, [Capability(path="/usr/bin/nope", add={"cap_net_raw": "+ep"})], where="p"
        )
    with pytest.raises(BuildError, match="unknown capability"):
        capability_xattr({"cap_fly": "+ep"}, where="p")
    with pytest.raises(BuildError, match="e, i, p"):
        capability_xattr({"cap_chown": "+x"}, where="p")
