"""Scan targets beyond roots and layouts: an ``.apk`` file, a signed repository (the index
signature checked with a keyring or the workspace's keys; a tampered index refused), two versions
of one package in a repository, and which distro a target belongs to inside a workspace."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from scan_fixture import DISTRO, _eco, _record, build_root

from cli_runner import run_cli
from nanodistro.advisory.triage import TriageEntry
from nanodistro.errors import SignatureError
from nanodistro.formats.apk import write_apk
from nanodistro.formats.apkindex import write_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.formats.tarball import TarEntry, gzip_members
from nanodistro.trust.keys import generate_key, load_signing_key
from nanodistro.vuln.osvdb import load_osv
from nanodistro.vuln.scan import scan_inventory
from nanodistro.vuln.targets import load_targets

EPOCH = 1_700_000_000
SITE = "usr/lib/python3.12/site-packages"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    keys = tmp_path_factory.mktemp("keys")
    private, _ = generate_key("scan-test", keys, bits=2048)
    return load_signing_key(private)


def _apk(
    key: SigningKey, name: str, version: str, files: dict[str, bytes], origin: str = ""
) -> bytes:
    info = PackageInfo(
        name=name,
        version=version,
        arch="x86_64",
        description=f"{name} for scan tests",
        license="MIT",
        url="https://example.org",
        origin=origin or name,
        builddate=EPOCH,
    )
    entries: dict[str, TarEntry] = {}
    for path, data in sorted(files.items()):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            entries.setdefault(directory, TarEntry(directory, "dir", mode=0o755, mtime=EPOCH))
        mode = 0o755 if "/bin/" in path else 0o644
        entries[path] = TarEntry(path, "file", mode=mode, mtime=EPOCH, data=data)
    return write_apk(info, list(entries.values()), key=key, source_date_epoch=EPOCH)


def _write_osv(directory: Path, records: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for record_id, record in records.items():
        (directory / f"{record_id}.json").write_text(json.dumps(record))
    return directory


ZERO = {"introduced": "0"}


def test_an_apk_file_is_a_component_and_its_dist_info_is_owned_by_it(
    key: SigningKey, tmp_path: Path
) -> None:
    data = _apk(
        key,
        "py3-greeting",
        "0.9.0-r0",
        {
            f"{SITE}/greeting-0.9.0.dist-info/METADATA": (
                b"Metadata-Version: 2.1\nName: Greeting\nVersion: 0.9.0\n"
            ),
            f"{SITE}/greeting/__init__.py": b"print('hi')\n",
            "usr/bin/greet": b"#!/bin/sh\necho hi\n",  # executable, not ELF: not read
            "etc/os-release": b"ID=otherdistro\n",  # a package's own data does not name its distro
        },
        origin="greeting",
    )
    path = tmp_path / "py3-greeting-0.9.0-r0.apk"
    path.write_bytes(data)
    [target] = load_targets(str(path), distro=DISTRO)
    assert (target.kind, target.label, target.inventory.distro) == ("apk", str(path), DISTRO)
    apk, pypi = target.inventory.components
    assert (apk.ecosystem, apk.name, apk.version, apk.origin, apk.location) == (
        "apk",
        "py3-greeting",
        "0.9.0-r0",
        "greeting",
        path.name,
    )
    assert apk.purl == f"pkg:apk/{DISTRO}/py3-greeting@0.9.0-r0?arch=x86_64"
    assert (pypi.ecosystem, pypi.name, pypi.version, pypi.owner) == (
        "PyPI",
        "Greeting",
        "0.9.0",
        "py3-greeting",
    )
    assert pypi.purl == "pkg:pypi/greeting@0.9.0"
    assert pypi.location == f"{SITE}/greeting-0.9.0.dist-info/METADATA"

    osv = _write_osv(
        tmp_path / "osv",
        {
            "TEST-APK-ORIGIN": _record(
                "TEST-APK-ORIGIN", [_eco(DISTRO, "greeting", [ZERO, {"fixed": "1.0.0-r0"}])]
            ),
            "PYSEC-GREETING": _record(
                "PYSEC-GREETING",
                [_eco("PyPI", "greeting", [ZERO, {"fixed": "0.9.1"}])],
                aliases=["CVE-2024-1111"],
            ),
            # decoys: another distro's record, a PyPI range that ends below
            "TEST-WOLFI": _record(
                "TEST-WOLFI", [_eco("Wolfi", "py3-greeting", [ZERO, {"fixed": "9-r0"}])]
            ),
            "PYSEC-OLD": _record(
                "PYSEC-OLD", [_eco("PyPI", "greeting", [ZERO, {"fixed": "0.8.0"}])]
            ),
        },
    )
    triage = [
        TriageEntry(
            "py3-greeting",
            "CGA-2222-3333-4444",
            frozenset({"CVE-2024-1111"}),
            "false-positive-determination",
            note="vulnerable-code-not-in-execution-path",
        )
    ]
    result = scan_inventory(target.inventory, load_osv(osv), target=target.label, triage=triage)
    pairs = {(f.component.name, f.vuln_id): f for f in result.findings}
    assert set(pairs) == {("py3-greeting", "TEST-APK-ORIGIN"), ("Greeting", "PYSEC-GREETING")}
    assert pairs[("py3-greeting", "TEST-APK-ORIGIN")].how.endswith("via origin greeting")
    # the apk's advisory reaches the Python package inside it (the secdb ownership rule)
    assert pairs[("Greeting", "PYSEC-GREETING")].suppressed
    assert not pairs[("py3-greeting", "TEST-APK-ORIGIN")].suppressed


def _repository(root: Path, key: SigningKey, packages: list[tuple[str, str]]) -> Path:
    arch_dir = root / "x86_64"
    arch_dir.mkdir(parents=True)
    infos = []
    from nanodistro.formats.apk import read_apk

    for name, version in packages:
        data = _apk(key, name, version, {f"usr/share/{name}/README": version.encode()})
        (arch_dir / f"{name}-{version}.apk").write_bytes(data)
        infos.append(read_apk(data, where=name).info)
    (arch_dir / "APKINDEX.tar.gz").write_bytes(write_index(infos, key=key, source_date_epoch=EPOCH))
    return root


def _tamper(index: Path, old: str, new: str) -> None:
    """Rewrite the APKINDEX text (a version claimed fixed) and keep the old signature member,
    as a mirror that wants a vulnerable package to look patched would."""
    data = index.read_bytes()
    signature, body = gzip_members(data, where=str(index))
    entries = []
    with tarfile.open(fileobj=io.BytesIO(body.inflated)) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            content = handle.read() if handle else b""
            if member.name == "APKINDEX":
                assert old.encode() in content
                content = content.replace(old.encode(), new.encode())
                member.size = len(content)
            entries.append((member, content))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, content in entries:
            tar.addfile(member, io.BytesIO(content))
    index.write_bytes(signature.raw + gzip.compress(out.getvalue(), mtime=0))


@pytest.fixture
def repo(tmp_path: Path, key: SigningKey) -> Path:
    return _repository(
        tmp_path / "repo", key, [("libfoo", "1.2.3-r0"), ("libfoo", "1.2.4-r0"), ("zz", "1-r0")]
    )


def _keyring(key: SigningKey) -> dict[str, bytes]:
    return {key.keyname: key.public_pem()}


def test_a_repository_index_is_verified_with_a_keyring_and_a_tampered_one_refused(
    repo: Path, key: SigningKey, tmp_path: Path
) -> None:
    [verified] = load_targets(str(repo), distro=DISTRO, keyring=_keyring(key))
    assert verified.kind == "repository" and verified.inventory.warnings == []
    [unverified] = load_targets(str(repo), distro=DISTRO)
    assert unverified.inventory.warnings == [
        f"{repo / 'x86_64' / 'APKINDEX.tar.gz'}: signature not verified (no keyring given)"
    ]
    other = load_signing_key(generate_key("other", tmp_path / "other", bits=2048)[0])
    with pytest.raises(SignatureError):  # a key we do not trust signed it
        load_targets(str(repo), distro=DISTRO, keyring=_keyring(other))
    _tamper(repo / "x86_64" / "APKINDEX.tar.gz", "V:1.2.3-r0", "V:1.2.9-r0")
    with pytest.raises(SignatureError) as refused:
        load_targets(str(repo), distro=DISTRO, keyring=_keyring(key))
    assert "APKINDEX.tar.gz" in str(refused.value)
    # Without a key the forged version is what one reads: hence the warning.
    [forged] = load_targets(str(repo), distro=DISTRO)
    assert "1.2.9-r0" in {c.version for c in forged.inventory.components}


def test_two_versions_of_a_package_are_judged_each_by_its_own_version(
    repo: Path, key: SigningKey, tmp_path: Path
) -> None:
    osv = _write_osv(
        tmp_path / "osv",
        {
            "TEST-FOO": _record(
                "TEST-FOO",
                [_eco(DISTRO, "libfoo", [ZERO, {"fixed": "1.2.9-r0"}])],
                aliases=["CVE-2024-0042"],
            )
        },
    )
    [target] = load_targets(str(repo), distro=DISTRO, keyring=_keyring(key))
    fixed = TriageEntry(
        "libfoo", "CGA-5555-6666-7777", frozenset({"CVE-2024-0042"}), "fixed", "1.2.4-r0"
    )
    result = scan_inventory(target.inventory, load_osv(osv), target=target.label, triage=[fixed])
    by_version = {f.component.version: f for f in result.findings}
    assert set(by_version) == {"1.2.3-r0", "1.2.4-r0"}  # both match the OSV range
    assert [f.component.version for f in result.active] == ["1.2.3-r0"]
    assert by_version["1.2.3-r0"].fixed_in == "1.2.4-r0"  # the advisory's fix
    assert by_version["1.2.4-r0"].status == "fixed" and by_version["1.2.4-r0"].suppressed


@pytest.mark.slow  # four runs of the real CLI
def test_cli_repository_keys_from_the_option_or_the_workspace(
    repo: Path, key: SigningKey, tmp_path: Path
) -> None:
    osv = _write_osv(tmp_path / "osv", {})
    keys = tmp_path / "trusted"
    keys.mkdir()
    (keys / key.keyname).write_bytes(key.public_pem())
    ws = tmp_path / "ws"
    (ws / "keys").mkdir(parents=True)
    (ws / "nanodistro.toml").write_text(f'[workspace]\nname = "{DISTRO}"\n')
    shutil.copy(keys / key.keyname, ws / "keys" / key.keyname)

    plain = run_cli(tmp_path, "scan", repo, "--osv", osv)
    assert plain.returncode == 0, plain.stderr
    assert "signature not verified (no keyring given)" in plain.stderr
    for cwd, extra in ((tmp_path, ["--keyring", keys]), (ws, [])):
        done = run_cli(cwd, "scan", repo, "--osv", osv, *extra)
        assert done.returncode == 0, done.stderr
        assert "not verified" not in done.stderr
    _tamper(repo / "x86_64" / "APKINDEX.tar.gz", "V:1.2.3-r0", "V:1.2.9-r0")
    for cwd, extra in ((tmp_path, ["--keyring", keys]), (ws, [])):
        refused = run_cli(cwd, "scan", repo, "--osv", osv, *extra)
        assert refused.returncode != 0
        [line] = refused.stderr.strip().splitlines()
        assert "APKINDEX.tar.gz" in line and "signature" in line.lower(), line
        assert "Traceback" not in refused.stderr


def test_the_workspace_distro_applies_to_its_own_targets_only(tmp_path: Path) -> None:
    """A root inside the workspace is of the workspace distro (our OSV ecosystem) whatever its
    os-release says; the same root elsewhere keeps its os-release ID."""
    ws = tmp_path / "ws"
    own = build_root(ws / "out" / "root", tmp_path)
    foreign = tmp_path / "elsewhere"
    shutil.copytree(own, foreign, symlinks=True)
    osv = _write_osv(
        tmp_path / "osv",
        {
            "TEST-OURS": _record("TEST-OURS", [_eco("myws", "libfoo", [ZERO, {"fixed": "9-r0"}])]),
            "TEST-THEIRS": _record(
                "TEST-THEIRS", [_eco(DISTRO, "libfoo", [ZERO, {"fixed": "9-r0"}])]
            ),
        },
    )
    (ws / "nanodistro.toml").write_text(
        f'[workspace]\nname = "MyWS"\n\n[vulnerabilities]\nosv = "{osv}"\n'
    )

    def found(target: Path) -> set[tuple[str, str]]:
        done = run_cli(ws, "scan", target, "--json")
        assert done.returncode == 0, done.stderr
        [scanned] = json.loads(done.stdout)["targets"]
        return {(f["package"]["purl"], f["vulnerability"]["id"]) for f in scanned["findings"]}

    def purls(distro: str, vuln_id: str) -> set[tuple[str, str]]:
        return {
            (f"pkg:apk/{distro}/{name}@1.2.3-r0?arch=x86_64", vuln_id)
            for name in ("libfoo", "libfoo-dev")  # libfoo-dev: via its origin
        }

    assert found(own) == purls("myws", "TEST-OURS")
    assert found(foreign) == purls(DISTRO, "TEST-THEIRS")
