"""Signed SLSA provenance: DSSE envelopes around in-toto statements, their ``.intoto.jsonl``
files, and the verification policy.

Package provenance lives beside the package: ``<repo>/<arch>/<file>.apk.intoto.jsonl``, one
DSSE envelope (compact JSON) per line, the way SLSA's ``.intoto.jsonl`` bundles are written. The
envelope is signed in the control plane with the workspace's ECDSA P-256 key (``keys/cosign.key``),
never in a sandbox (DESIGN.md invariant 7).

The builders of statements are ``builder/provenance.py`` (packages) and ``image/provenance.py``
(images); this module only signs, reads and checks.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nanodistro.errors import ConfigError, FormatError, SignatureError
from nanodistro.formats.dsse import (
    INTOTO_PAYLOAD_TYPE,
    Envelope,
    decode_envelope,
    sign_envelope,
    verify_envelope,
)
from nanodistro.formats.intoto import Provenance, Statement, parse_provenance, parse_statement
from nanodistro.trust.ecdsa import EcdsaSigner, verify_signature

__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE_APK",
    "BUILD_TYPE_IMAGE",
    "PROVENANCE_SUFFIX",
    "Policy",
    "VerifiedProvenance",
    "envelopes_to_jsonl",
    "load_policy",
    "provenance_path",
    "read_envelopes",
    "sign_statement",
    "verify_provenance",
]

BUILDER_ID = "https://nanodistro.dev/factory/v1"
BUILD_TYPE_APK = "https://nanodistro.dev/build/apk/v1"
BUILD_TYPE_IMAGE = "https://nanodistro.dev/build/image/v1"
PROVENANCE_SUFFIX = ".intoto.jsonl"


def provenance_path(artifact: Path) -> Path:
    """``foo-1.0-r0.apk`` -> ``foo-1.0-r0.apk.intoto.jsonl`` in the same directory."""
    return artifact.with_name(artifact.name + PROVENANCE_SUFFIX)


def sign_statement(statement: Statement, signer: EcdsaSigner) -> Envelope:
    """The statement's canonical bytes in a DSSE envelope signed by ``signer``."""
    return sign_envelope(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), [(signer.sign, signer.keyid)])


def envelopes_to_jsonl(envelopes: Sequence[Envelope]) -> bytes:
    """One compact envelope per line, each line ending in a newline."""
    return b"".join(envelope.to_bytes() + b"\n" for envelope in envelopes)


def read_envelopes(data: bytes, *, where: str) -> list[Envelope]:
    """The envelopes of a ``.intoto.jsonl`` file (blank lines skipped); at least one."""
    envelopes = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            envelopes.append(decode_envelope(line, where=f"{where}:{number}"))
        except FormatError as error:
            raise FormatError(error.message, where=f"{where}:{number}") from None
    if not envelopes:
        raise FormatError("no DSSE envelope in the provenance file", where=where)
    return envelopes


@dataclass(frozen=True)
class VerifiedProvenance:
    envelope: Envelope
    statement: Statement
    provenance: Provenance


def verify_provenance(
    envelopes: Sequence[Envelope], public_pem: bytes, *, where: str
) -> VerifiedProvenance:
    """The first envelope whose signature verifies with ``public_pem``, parsed as a SLSA v1
    statement; ``SignatureError`` when none verifies, ``FormatError`` for a bad payload."""
    failures = []
    for index, envelope in enumerate(envelopes):
        try:
            verify_envelope(
                envelope, lambda data, sig: verify_signature(public_pem, data, sig), where=where
            )
        except SignatureError as error:
            failures.append(f"envelope {index + 1}: {error.message}")
            continue
        statement = parse_statement(envelope.payload, where=where)
        return VerifiedProvenance(envelope, statement, parse_provenance(statement, where=where))
    raise SignatureError("; ".join(failures) or "no envelope", where=where)


# ------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """What ``nanodistro verify`` accepts (``[provenance]`` of a policy TOML file).

    ``builder_ids`` and ``source_repositories`` are glob patterns (``fnmatch``: ``*`` also
    crosses ``/``); an empty ``source_repositories`` allows any source.
    """

    builder_ids: tuple[str, ...] = (BUILDER_ID, f"{BUILDER_ID}#*")
    source_repositories: tuple[str, ...] = ()
    require_sbom: bool = True
    where: str = "default policy"

    def builder_allowed(self, builder_id: str) -> bool:
        return any(fnmatch.fnmatchcase(builder_id, p) for p in self.builder_ids)

    def source_allowed(self, uri: str) -> bool:
        if not self.source_repositories:
            return True
        bare = uri.removeprefix("git+")
        return any(
            fnmatch.fnmatchcase(uri, p) or fnmatch.fnmatchcase(bare, p)
            for p in self.source_repositories
        )


_POLICY_KEYS = {"builder-ids", "source-repositories", "require-sbom"}


def load_policy(path: Path) -> Policy:
    """Read a policy file; unknown keys and wrong types are errors naming the field."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"cannot read policy ({error.strerror})", where=where) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"invalid TOML ({error})", where=where) from None
    unknown = sorted(set(data) - {"provenance"})
    if unknown:
        raise ConfigError(f"unknown table {unknown[0]!r}, expected [provenance]", where=where)
    table = data.get("provenance", {})
    if not isinstance(table, dict):
        raise ConfigError("expected a table", where=where, field="provenance")
    for key in table:
        if key not in _POLICY_KEYS:
            raise ConfigError(
                f"unknown key, expected one of {', '.join(sorted(_POLICY_KEYS))}",
                where=where,
                field=f"provenance.{key}",
            )
    default = Policy()

    def patterns(key: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
        value = table.get(key)
        if value is None:
            return fallback
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(
                "expected a list of non-empty strings", where=where, field=f"provenance.{key}"
            )
        return tuple(value)

    require = table.get("require-sbom", True)
    if not isinstance(require, bool):
        raise ConfigError("expected true or false", where=where, field="provenance.require-sbom")
    return Policy(
        builder_ids=patterns("builder-ids", default.builder_ids),
        source_repositories=patterns("source-repositories", ()),
        require_sbom=require,
        where=where,
    )
