"""``nanodistro verify`` on published packages: all checks pass, and each tampering (payload
edited, another package's envelope, wrong key, a source the policy forbids, no SBOM) fails the
check it concerns, through the real CLI. apk2/apk3 still read a repository with provenance."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from build_testlib import Upstream
from test_build_provenance import config, make_repo, workspace

from apk_reference import apk_clients
from cli_runner import run_cli
from nanodistro.builder.orchestrate import build_recipes
from nanodistro.repo import set_channel, snapshot
from nanodistro.trust.ecdsa import generate_signer
from needs_tools import require_tools

pytestmark = pytest.mark.slow


def verify(tmp_path: Path, *args: str | Path) -> tuple[int, dict[str, tuple[bool, str]]]:
    result = run_cli(tmp_path, "verify", *map(str, args), "--json")
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    return result.returncode, {c["check"]: (c["ok"], c["reason"]) for c in report["checks"]}


def test_verify_package_and_tampering(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    repo1 = make_repo(tmp_path, signing_key_path, "1")
    signer = generate_signer()
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(signer.public_pem)
    keyring = signing_key_path.parent
    recipe, _ = workspace(tmp_path, upstream)
    repo_a = tmp_path / "repo-a"
    build_recipes(
        [recipe], config(tmp_path, signing_key_path, [repo1], repo=repo_a, provenance_key=signer)
    )
    apk = repo_a / "x86_64" / "hello-1.0-r0.apk"
    attestation = apk.with_name(apk.name + ".intoto.jsonl")
    common = ["--key", pub, "--keyring", keyring]

    code, checks = verify(tmp_path, apk, *common)
    assert code == 0, checks
    assert list(checks) == [
        "apk signature",
        "provenance signature",
        "provenance subject",
        "builder id",
        "source repositories",
        "sbom",
    ]
    assert all(ok for ok, _ in checks.values())
    # the text output: one line per check
    text = run_cli(tmp_path, "verify", apk, *map(str, common))
    assert text.returncode == 0
    assert [line.split()[-1] for line in text.stdout.splitlines()] != []
    assert all("  ok  " in line for line in text.stdout.splitlines())

    # 1. payload edited (re-encoded without re-signing): the signature no longer verifies
    envelope = json.loads(attestation.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.intoto.jsonl"
    forged.write_text(json.dumps(envelope) + "\n")
    code, checks = verify(tmp_path, apk, *common, "--provenance", forged)
    assert code == 1
    assert checks["provenance signature"][0] is False
    assert "no envelope signature verifies" in checks["provenance signature"][1]
    assert checks["builder id"][0] is False

    # 2. the envelope of another package (same name, other bytes) swapped in
    upstream_b, _ = workspace(tmp_path / "b", upstream, "yo")
    repo_b = tmp_path / "repo-b"
    build_recipes(
        [upstream_b],
        config(tmp_path / "b", signing_key_path, [repo1], repo=repo_b, provenance_key=signer),
    )
    other = repo_b / "x86_64" / attestation.name
    code, checks = verify(tmp_path, apk, *common, "--provenance", other)
    assert code == 1
    assert checks["provenance signature"][0] is True  # validly signed, but about another .apk
    assert checks["provenance subject"][0] is False
    assert "the provenance is about hello-1.0-r0.apk" in checks["provenance subject"][1]

    # 3. the wrong key
    wrong = tmp_path / "wrong.pub"
    wrong.write_bytes(generate_signer().public_pem)
    code, checks = verify(tmp_path, apk, "--key", wrong, "--keyring", keyring)
    assert code == 1 and checks["provenance signature"][0] is False
    assert checks["apk signature"][0] is True

    # 4. a source repository the policy does not allow (and one it does)
    policy = tmp_path / "policy.toml"
    policy.write_text('[provenance]\nsource-repositories = ["https://github.com/*"]\n')
    code, checks = verify(tmp_path, apk, *common, "--policy", policy)
    assert code == 1
    assert checks["source repositories"][0] is False
    assert upstream.base_url in checks["source repositories"][1]
    policy.write_text(
        f'[provenance]\nsource-repositories = ["{upstream.base_url}/*"]\n'
        'builder-ids = ["https://nanodistro.dev/factory/v1"]\n'
    )
    code, checks = verify(tmp_path, apk, *common, "--policy", policy)
    assert code == 0, checks
    policy.write_text('[provenance]\nbuilder-ids = ["https://other.example/*"]\n')
    code, checks = verify(tmp_path, apk, *common, "--policy", policy)
    assert code == 1 and checks["builder id"][0] is False

    # 5. an APK signed by a key outside the keyring
    other_keys = tmp_path / "other-keys"
    other_keys.mkdir()
    from nanodistro.trust.keys import generate_key

    generate_key("other", other_keys, bits=2048)
    code, checks = verify(tmp_path, apk, "--key", pub, "--keyring", other_keys)
    assert code == 1 and checks["apk signature"][0] is False

    # 6. no provenance at all
    loose = tmp_path / "loose" / apk.name
    loose.parent.mkdir()
    shutil.copyfile(apk, loose)
    code, checks = verify(tmp_path, loose, *common)
    assert code == 1 and "no provenance at" in checks["provenance signature"][1]


def test_apk_clients_accept_a_repository_with_provenance(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    require_tools("apk2", "apk3")
    repo1 = make_repo(tmp_path, signing_key_path, "1")
    recipe, _ = workspace(tmp_path, upstream)
    repo = tmp_path / "repo"
    build_recipes(
        [recipe],
        config(tmp_path, signing_key_path, [repo1], repo=repo, provenance_key=generate_signer()),
    )
    set_channel(repo, "stable", snapshot(repo))
    assert (repo / "stable" / "x86_64" / "hello-1.0-r0.apk.intoto.jsonl").is_file()
    keys = tmp_path / "apk-keys"
    keys.mkdir()
    for pub in signing_key_path.parent.glob("*.pub"):
        shutil.copyfile(pub, keys / pub.name)
    for client in apk_clients():
        for source in (repo, repo / "stable"):
            root = tmp_path / f"root-{client.name}-{source.name}"
            client.run(
                "--root", str(root), "--initdb", "--keys-dir", str(keys),
                "--repositories-file", "/dev/null", "--repository", str(source),
                "--repository", str(repo1), "--no-network", "--no-cache", "--arch", "x86_64",
                "add", "hello",
            )  # fmt: skip
            assert (root / "usr/share/hello/hello.txt").read_text() == "hi there\n"
