"""``nanodistro publish`` / ``nanodistro index`` end to end, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixture_paths import THIRD_PARTY
from nanodistro.formats.apkindex import read_index
from nanodistro.trust.keys import generate_key, load_keyring

APKO_PACKAGES = THIRD_PARTY / "chainguard-dev+apko/internal/cli/testdata/packages"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key("cli", tmp_path_factory.mktemp("keys"), bits=2048)


def test_publish_real_melange_packages_and_reindex(tmp_path, keys):
    private, public = keys
    repo = tmp_path / "repo"
    apks = sorted(str(p) for p in APKO_PACKAGES.glob("*/*.apk"))
    done = run(
        "publish", *apks, "--repo", str(repo), "--key", str(private),
        "--keyring", str(APKO_PACKAGES / "melange.rsa.pub"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["indexes"]) == ["aarch64", "x86_64"]
    assert {p["status"] for p in report["packages"]} == {"added"}
    keyring = load_keyring(public)
    for arch in ("aarch64", "x86_64"):
        ours = read_index(
            (repo / arch / "APKINDEX.tar.gz").read_bytes(), where=arch, keyring=keyring
        )
        # the same identities and sizes melange's own index records for these files
        theirs = read_index(
            (APKO_PACKAGES / arch / "APKINDEX.tar.gz").read_bytes(),
            where="apko",
            keyring=load_keyring(APKO_PACKAGES / "melange.rsa.pub"),
        )
        assert {(p.name, p.checksum, p.file_size) for p in ours.packages} == {
            (p.name, p.checksum, p.file_size) for p in theirs.packages
        }
    done = run(
        "index", str(repo / "x86_64"), "--key", str(private), "--description", "test repo",
        "--keyring", str(APKO_PACKAGES / "melange.rsa.pub"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 packages" in done.stdout
    index = read_index((repo / "x86_64/APKINDEX.tar.gz").read_bytes(), where="x", keyring=keyring)
    assert index.description == "test repo"


def test_publish_conflict_is_one_clear_line(tmp_path, keys):
    private, _ = keys
    repo = tmp_path / "repo"
    x86 = APKO_PACKAGES / "x86_64/replayout-1.0.0-r0.apk"
    # --allow-missing: the fixture depends on pretend-baselayout, which is not published
    melange = ["--keyring", str(APKO_PACKAGES / "melange.rsa.pub")]
    first = run(
        "publish", str(x86), "--repo", str(repo), "--key", str(private), "--allow-missing", *melange
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    # same name and version, different bytes, placed where the x86_64 file lives
    impostor = tmp_path / "replayout-1.0.0-r0.apk"
    impostor.write_bytes((APKO_PACKAGES / "aarch64/replayout-1.0.0-r0.apk").read_bytes())
    (repo / "aarch64").mkdir()
    (repo / "aarch64" / "replayout-1.0.0-r0.apk").write_bytes(x86.read_bytes())
    done = run("publish", str(impostor), "--repo", str(repo), "--key", str(private), *melange)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "immutable: replayout-1.0.0-r0.apk already published with sha256" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["publish", "missing.apk", "--repo", "r", "--key", "KEY"], "cannot read package"),
        (["publish", "NOTAPK", "--repo", "r", "--key", "KEY"], "gzip"),
        (["index", "nowhere/x86_64", "--key", "KEY"], "no such arch directory"),
        (["publish", "NOTAPK", "--repo", "r", "--key", "missing.rsa"], "no such signing key"),
    ],
)
def test_bad_input_errors(tmp_path, keys, args, message):
    not_apk = tmp_path / "not.apk"
    not_apk.write_text("hello")
    args = [
        str(keys[0])
        if a == "KEY"
        else str(not_apk)
        if a == "NOTAPK"
        else str(tmp_path / a)
        if a in ("r", "missing.apk", "nowhere/x86_64", "missing.rsa")
        else a
        for a in args
    ]
    done = run(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
