"""Issue 15's authenticated channel: per-worker tokens (``nanodistro worker-token``), sealed
outputs; a tampered, misattributed, misdirected, unknown or revoked worker's output is refused
with a TrustError naming the worker."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run_cli
from nanodistro.errors import ConfigError, TrustError
from nanodistro.factory.remote import WorkerRegistry, seal, unseal, worker_token
from nanodistro.factory.remote.channel import SECRET_FILE

JOB = "a" * 64
OUTPUT: dict[str, Any] = {"status": "built", "packages": [{"file": "x-1-r0.apk", "data": "AA=="}]}


def _workspace(root: Path) -> Path:
    (root / "nanodistro.toml").write_text('[workspace]\nname = "chan"\n')
    return root


def test_tokens_are_per_worker_and_derived_from_a_private_secret(tmp_path: Path) -> None:
    registry = WorkerRegistry(tmp_path / ".nanodistro")
    one, two = registry.create("w1"), registry.create("w2")
    assert one != two and len(one) == 64
    secret_file = tmp_path / ".nanodistro" / SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert one == worker_token(secret_file.read_bytes(), "w1") == registry.token_for("w1")
    assert one not in (tmp_path / ".nanodistro" / "workers.json").read_text()  # never stored
    with pytest.raises(Exception, match="worker 'w1' exists"):
        registry.create("w1")
    with pytest.raises(Exception, match="invalid worker name"):
        registry.create("../w")


def test_a_sealed_output_unseals_for_its_worker_and_job(tmp_path: Path) -> None:
    registry = WorkerRegistry(tmp_path)
    token = registry.create("w1")
    sealed = seal(OUTPUT, job_key=JOB, attempt=2, worker="w1", token=token)
    assert unseal(json.loads(json.dumps(sealed)), job_key=JOB, token_for=registry.token_for) == (
        "w1",
        OUTPUT,
    )


def test_misattributed_tampered_or_misdirected_output_is_refused(tmp_path: Path) -> None:
    registry = WorkerRegistry(tmp_path)
    registry.create("w1")
    token2 = registry.create("w2")
    # w2 claims to be w1
    forged = seal(OUTPUT, job_key=JOB, attempt=1, worker="w1", token=token2)
    with pytest.raises(TrustError, match="worker w1: the output's MAC does not verify"):
        unseal(forged, job_key=JOB, token_for=registry.token_for)
    # w2's own output, changed after sealing (a package swapped in transit)
    genuine = seal(OUTPUT, job_key=JOB, attempt=1, worker="w2", token=token2)
    tampered = json.loads(json.dumps(genuine))
    tampered["output"]["packages"][0]["data"] = "AQ=="
    with pytest.raises(TrustError, match="worker w2: the output's MAC"):
        unseal(tampered, job_key=JOB, token_for=registry.token_for)
    # relabelled as another attempt: the attempt is under the MAC too
    with pytest.raises(TrustError, match="MAC"):
        unseal({**genuine, "attempt": 3}, job_key=JOB, token_for=registry.token_for)
    # replayed for another job
    with pytest.raises(TrustError, match="answers job aaaaaaaaaaaa, not job bbbbbbbbbbbb"):
        unseal(genuine, job_key="b" * 64, token_for=registry.token_for)
    with pytest.raises(TrustError, match="expected a sealed worker output"):
        unseal(OUTPUT, job_key=JOB, token_for=registry.token_for)


def test_unknown_and_revoked_workers_are_refused(tmp_path: Path) -> None:
    registry = WorkerRegistry(tmp_path)
    token = registry.create("w1")
    sealed = seal(OUTPUT, job_key=JOB, attempt=1, worker="w1", token=token)
    stranger = seal(OUTPUT, job_key=JOB, attempt=1, worker="w9", token=token)
    with pytest.raises(TrustError, match="worker w9: unknown worker"):
        unseal(stranger, job_key=JOB, token_for=registry.token_for)
    registry.revoke("w1")
    with pytest.raises(TrustError, match="worker w1: worker revoked at"):
        unseal(sealed, job_key=JOB, token_for=registry.token_for)
    with pytest.raises(Exception, match="was revoked; choose a new name"):
        registry.create("w1")  # the same name would get the same token back


def test_worker_token_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    created = run_cli(root, "worker-token", "create", "build-1", ".")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert len(token) == 64 and "shown only now" in created.stderr
    registry = WorkerRegistry.for_workspace(root)
    assert registry.token_for("build-1") == token
    listed = run_cli(root, "worker-token", "list", ".", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["revoked"]) for r in rows] == [("build-1", None)]
    assert token not in listed.stdout
    revoked = run_cli(root, "worker-token", "revoke", "build-1", ".")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    with pytest.raises(TrustError, match="worker build-1: worker revoked"):
        registry.token_for("build-1")
    again = run_cli(root, "worker-token", "create", "build-1", ".")
    assert again.returncode != 0
    assert again.stderr.strip().count("\n") == 0 and "choose a new name" in again.stderr
    missing = run_cli(root, "worker-token", "revoke", "nobody", ".")
    assert missing.returncode != 0 and "no worker named 'nobody'" in missing.stderr


def test_an_earlier_attempts_output_replayed_for_a_new_attempt_is_refused(tmp_path: Path) -> None:
    """Attempt 1 failed on w1 (its sealed output stays in the result store); whoever can write
    there replays it as the answer to attempt 2: refused, the MAC is genuine but the attempt
    is not the one asked."""
    registry = WorkerRegistry(tmp_path)
    token = registry.create("w1")
    failed = {"status": "failed", "error": "no space left", "transient": False}
    old = seal(failed, job_key=JOB, attempt=1, worker="w1", token=token)
    assert unseal(old, job_key=JOB, token_for=registry.token_for, attempt=1)[1] == failed
    with pytest.raises(TrustError, match=r"worker w1: the output answers attempt 1 of job a+, not"):
        unseal(old, job_key=JOB, token_for=registry.token_for, attempt=2)


def test_a_worker_secret_others_can_read_is_refused(tmp_path: Path) -> None:
    """Every token derives from the secret: another local user who can read it could seal
    output as any worker. The control plane refuses to use it (naming the file) until it is
    0600 again."""
    registry = WorkerRegistry(tmp_path)
    token = registry.create("w1")
    secret = tmp_path / SECRET_FILE
    secret.chmod(0o644)
    forged = seal(
        OUTPUT, job_key=JOB, attempt=1, worker="w1", token=worker_token(secret.read_bytes(), "w1")
    )
    with pytest.raises(ConfigError, match=r"worker secret is open to others \(mode 0644\)") as info:
        unseal(forged, job_key=JOB, token_for=registry.token_for)
    assert info.value.where == str(secret)
    secret.chmod(0o600)
    assert unseal(forged, job_key=JOB, token_for=registry.token_for)[0] == "w1" and token
