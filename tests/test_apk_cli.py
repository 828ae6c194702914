"""`nanodistro keygen` and `nanodistro apk pack|info|verify`, run as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nanodistro.formats.apk import read_apk, verify_apk
from nanodistro.trust.keys import load_keyring

# Same resolution as tests/conftest.py; importing it by name is ambiguous next to other
# conftest.py files.
THIRD_PARTY = (
    Path(os.environ.get("NANODISTRO_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    / "fixtures"
    / "third_party"
)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cli")
    result = run_cli(
        "keygen", "--name", "ci", "--out", str(work / "keys"), "--bits", "2048", "--json"
    )
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout)
    assert Path(paths["private_key"]).stat().st_mode & 0o777 == 0o600
    root = work / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/hello").write_bytes(b"#!/bin/sh\necho hello\n")
    (root / "usr/bin/hello").chmod(0o755)
    (root / "usr/bin/hi").symlink_to("hello")
    (work / "post.sh").write_text("#!/bin/sh\ntrue\n")
    return work


def pack(work: Path, out: str, *extra: str, env: dict[str, str] | None = None) -> Path:
    key = next((work / "keys").glob("*.rsa"))
    result = run_cli(
        "apk",
        "pack",
        str(work / "root"),
        "--name",
        "hello",
        "--version",
        "2.12-r0",
        "--arch",
        "x86_64",
        "--depends",
        "so:libc.so.6",
        "--provides",
        "cmd:hello=2.12-r0",
        "--description",
        "says hello",
        "--license",
        "MIT",
        "--key",
        str(key),
        "--out",
        str(work / out),
        *extra,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return work / out


def test_pack_is_reproducible_and_verifies(workdir: Path) -> None:
    first = pack(workdir, "a/hello-2.12-r0.apk", "--source-date-epoch", "1700000000")
    second = pack(workdir, "b/hello-2.12-r0.apk", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert first.read_bytes() == second.read_bytes()
    pkg = read_apk(first.read_bytes(), where=str(first))
    assert pkg.info.builddate == 1700000000
    assert pkg.info.depends == ["so:libc.so.6"] and pkg.info.license == "MIT"
    assert all(entry.mtime == 1700000000 for entry in pkg.entries)
    assert verify_apk(pkg, load_keyring(workdir / "keys")).algorithm == "RSA256"
    third = pack(workdir, "c/hello-2.12-r0.apk", "--script", f"post-install={workdir / 'post.sh'}")
    assert read_apk(third.read_bytes(), where="c").scripts == {
        ".post-install": b"#!/bin/sh\ntrue\n"
    }


def test_info_and_verify(workdir: Path) -> None:
    apk = pack(workdir, "hello-2.12-r0.apk", "--source-date-epoch", "1")
    text = run_cli("apk", "info", str(apk), "--keyring", str(workdir / "keys"))
    assert text.returncode == 0, text.stderr
    assert "name:           hello" in text.stdout and "usr/bin/hi -> hello" in text.stdout
    assert "verified:       OK (ci-" in text.stdout
    details = json.loads(run_cli("apk", "info", str(apk), "--json").stdout)
    assert details["signatures"][0]["algorithm"] == "RSA256"
    assert details["segments"]["signature"]["range"].startswith("bytes=0-")
    assert [f["path"] for f in details["files"]] == [
        "usr",
        "usr/bin",
        "usr/bin/hello",
        "usr/bin/hi",
    ]

    ok = run_cli("apk", "verify", str(apk), "--keyring", str(workdir / "keys"))
    assert ok.returncode == 0 and ok.stdout.startswith(f"{apk}: OK (ci-")
    bad = THIRD_PARTY / "chainguard-dev+melange/pkg/sca/testdata/neon-4604-r0.apk"
    mixed = run_cli(
        "apk",
        "verify",
        str(apk),
        str(bad),
        "--keyring",
        str(workdir / "keys"),
        "--keyring",
        str(THIRD_PARTY / "wolfi-dev+os/wolfi-signing.rsa.pub"),
        "--json",
    )
    assert mixed.returncode == 1
    results = json.loads(mixed.stdout)
    assert [r["ok"] for r in results] == [True, False]
    assert "BAD signature" in results[1]["error"]
    untrusted = run_cli("apk", "verify", str(bad), "--keyring", str(workdir / "keys"))
    assert untrusted.returncode == 1
    assert (
        untrusted.stdout.strip()
        == f"{bad}: FAILED: UNTRUSTED: no trusted key for .SIGN.RSA.wolfi-signing.rsa.pub"
    )


def test_corrupt_file_gives_one_line_error(workdir: Path) -> None:
    apk = pack(workdir, "t/hello-2.12-r0.apk")
    broken = workdir / "broken.apk"
    broken.write_bytes(apk.read_bytes()[:-40])
    result = run_cli("apk", "info", str(broken))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        rf"error: {re.escape(str(broken))}: gzip member at byte \d+ is truncated", lines[0]
    )
    assert "Traceback" not in result.stderr
    missing = run_cli("apk", "info", str(workdir / "nope.apk"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")


def test_pack_rejects_bad_arguments(workdir: Path) -> None:
    key = str(next((workdir / "keys").glob("*.rsa")))
    base = ["apk", "pack", str(workdir / "root"), "--key", key, "--out", str(workdir / "x.apk")]
    bad_version = run_cli(*base, "--name", "hello", "--version", "1.0.x")
    assert bad_version.returncode == 1 and "invalid APK version '1.0.x'" in bad_version.stderr
    bad_name = run_cli(*base, "--name", "-hello", "--version", "1.0-r0")
    assert bad_name.returncode != 0 and "Traceback" not in bad_name.stderr
    bad_key = run_cli(
        "apk", "pack", str(workdir / "root"), "--name", "a", "--version", "1-r0",
        "--key", str(workdir / "post.sh"), "--out", str(workdir / "x.apk"),
    )  # fmt: skip
    assert bad_key.returncode == 1 and "private key" in bad_key.stderr
    assert not (workdir / "x.apk").exists()


def test_keygen_refuses_tiny_keys(tmp_path: Path) -> None:
    result = run_cli("keygen", "--out", str(tmp_path), "--bits", "1024")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "2048" in result.stderr
