"""The authenticated channel from workers to the control plane: per-worker tokens and sealed
outputs.

The control plane keeps one random secret (``<workspace>/.nanodistro/worker-secret``, 0600,
made on first use). A worker's token is ``HMAC-SHA256(secret, "nanodistro-worker\\0" + name)``:
the control plane can recompute every token, so it stores none, and a token names exactly one
worker. ``nanodistro worker-token create NAME`` registers the worker in
``<workspace>/.nanodistro/workers.json`` and prints its token once; ``revoke`` marks it revoked
there. Only registered, unrevoked workers are trusted; a revoked name is never issued again
(its token would be the same), so a replacement worker takes a new name.

A worker seals each output with its token: an HMAC-SHA256 over the canonical JSON
(``jobs.canonical_json``) of ``{job, attempt, worker, output}``. The control plane unseals it
with the token it derives for the named worker, so output that was tampered with, sealed by a
worker under another's name, sealed for another job or an earlier attempt, or sent by an
unknown or revoked worker raises ``TrustError`` before anything of it is used.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError, TrustError
from nanodistro.factory.jobs import canonical_json
from nanodistro.util.atomic import atomic_write_text

SEAL_VERSION = 1
SECRET_FILE = "worker-secret"
REGISTRY_FILE = "workers.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")

TokenFor = Callable[[str], str]


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a job's payload as canonical JSON. A worker seals it with its output and the
    control plane compares it with the payload it sent: anyone else on the broker may queue a
    task, and an honest worker's seal must not vouch for work on a payload the control plane
    never made (a revoked worker could otherwise still have honest ones build its inputs)."""
    return hashlib.sha256(canonical_json(dict(payload)).encode()).hexdigest()


def worker_token(secret: bytes, worker: str) -> str:
    """The token of worker ``worker`` (64 hex digits), derived from the control plane's
    secret."""
    return hmac.new(secret, b"nanodistro-worker\0" + worker.encode(), hashlib.sha256).hexdigest()


def _mac(token: str, body: Mapping[str, Any]) -> str:
    return hmac.new(token.encode(), canonical_json(dict(body)).encode(), hashlib.sha256).hexdigest()


def seal(
    output: Mapping[str, Any], *, job_key: str, attempt: int, worker: str, token: str
) -> dict[str, Any]:
    """The worker's half: ``output`` with the job it answers and a MAC under ``token``."""
    body = {
        "v": SEAL_VERSION,
        "job": job_key,
        "attempt": int(attempt),
        "worker": worker,
        "output": dict(output),
    }
    return {**body, "mac": _mac(token, body)}


def unseal(
    sealed: Mapping[str, Any],
    *,
    job_key: str,
    token_for: TokenFor,
    attempt: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The control plane's half: (worker, output) of a sealed output for job ``job_key`` (and,
    given, its attempt ``attempt``: an output kept from an earlier attempt, e.g. a failure, must
    not answer a new one). ``token_for(worker)`` gives the token of a trusted worker and raises
    ``TrustError`` for an unknown or revoked one. Raises ``TrustError`` naming the worker on
    any mismatch."""
    if not isinstance(sealed, Mapping) or sealed.get("v") != SEAL_VERSION:
        raise TrustError(
            f"expected a sealed worker output (v{SEAL_VERSION}), got something else",
            where=f"job {job_key[:12]}",
        )
    worker = sealed.get("worker")
    if not isinstance(worker, str) or not worker:
        raise TrustError("the sealed output names no worker", where=f"job {job_key[:12]}")
    where = f"worker {worker}"
    token = token_for(worker)  # raises for an unknown or revoked worker
    body = {k: sealed.get(k) for k in ("v", "job", "attempt", "worker", "output")}
    mac = sealed.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(token, body)):
        raise TrustError(
            "the output's MAC does not verify with this worker's token (tampered with, or "
            "sealed by someone else); refused",
            where=where,
        )
    if sealed.get("job") != job_key:
        raise TrustError(
            f"the output answers job {str(sealed.get('job'))[:12]}, not job {job_key[:12]}; "
            "refused",
            where=where,
        )
    if attempt is not None and sealed.get("attempt") != attempt:
        raise TrustError(
            f"the output answers attempt {sealed.get('attempt')!r} of job {job_key[:12]}, not "
            f"attempt {attempt} (an earlier output replayed); refused",
            where=where,
        )
    output = sealed.get("output")
    if not isinstance(output, dict):
        raise TrustError("the sealed output is not a JSON object", where=where)
    return worker, output


@dataclass(frozen=True)
class WorkerRecord:
    name: str
    created: str
    revoked: str | None = None


class WorkerRegistry:
    """The workers a control plane trusts: ``<workspace>/.nanodistro/{worker-secret,
    workers.json}``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.secret_path = self.state_dir / SECRET_FILE
        self.path = self.state_dir / REGISTRY_FILE

    @classmethod
    def for_workspace(cls, root: Path) -> WorkerRegistry:
        return cls(Path(root) / ".nanodistro")

    def secret(self) -> bytes:
        """The secret, made (32 random bytes, 0600) on first use."""
        try:
            data = self.secret_path.read_bytes()
        except FileNotFoundError:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            data = secrets.token_bytes(32)
            try:
                # O_EXCL: two control-plane processes starting at once keep one secret
                fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                data = self.secret_path.read_bytes()
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
        if len(data) < 32:
            raise ConfigError(
                f"expected at least 32 bytes, found {len(data)}", where=str(self.secret_path)
            )
        mode = stat.S_IMODE(self.secret_path.stat().st_mode)
        if mode & 0o077:
            # every worker's token derives from it: whoever reads it can seal as any worker
            raise ConfigError(
                f"the worker secret is open to others (mode {mode:04o}); chmod 600 it and "
                "re-create the workers' tokens (anyone who read it can forge them)",
                where=str(self.secret_path),
            )
        return data

    def workers(self) -> dict[str, WorkerRecord]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise ConfigError(f"expected JSON: {error}", where=str(self.path)) from None
        entries = raw.get("workers") if isinstance(raw, dict) else None
        if not isinstance(entries, dict):
            raise ConfigError("expected an object with 'workers'", where=str(self.path))
        return {
            name: WorkerRecord(name, str(entry.get("created", "")), entry.get("revoked"))
            for name, entry in entries.items()
            if isinstance(entry, dict)
        }

    def _save(self, workers: Mapping[str, WorkerRecord]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        body = {
            "workers": {
                name: {"created": w.created, "revoked": w.revoked}
                for name, w in sorted(workers.items())
            }
        }
        atomic_write_text(self.path, json.dumps(body, indent=1, sort_keys=True) + "\n", 0o600)

    def create(self, name: str) -> str:
        """Register worker ``name`` and return its token (shown once; never stored)."""
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"invalid worker name {name!r}: expected letters, digits, '.', '_' or '-' "
                "(at most 63, starting with a letter or digit)",
                field="name",
            )
        workers = self.workers()
        if name in workers:
            what = "was revoked; choose a new name" if workers[name].revoked else "exists"
            raise ConfigError(f"worker {name!r} {what}", where=str(self.path))
        secret = self.secret()
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self._save({**workers, name: WorkerRecord(name, now.replace("+00:00", "Z"))})
        return worker_token(secret, name)

    def revoke(self, name: str) -> WorkerRecord:
        workers = self.workers()
        if name not in workers:
            raise ConfigError(f"no worker named {name!r}", where=str(self.path))
        record = workers[name]
        if record.revoked is None:
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            record = WorkerRecord(name, record.created, now.replace("+00:00", "Z"))
            self._save({**workers, name: record})
        return record

    def token_for(self, worker: str) -> str:
        """The token of a trusted worker; ``TrustError`` naming it when unknown or revoked.
        Reads the registry on every call, so a revocation applies to the next output."""
        record = self.workers().get(worker)
        if record is None:
            raise TrustError(
                "unknown worker (not created with 'nanodistro worker-token create'); its "
                "output is refused",
                where=f"worker {worker}",
            )
        if record.revoked is not None:
            raise TrustError(
                f"worker revoked at {record.revoked}; its output is refused",
                where=f"worker {worker}",
            )
        return worker_token(self.secret(), worker)
