"""DSSE envelopes (Dead Simple Signing Envelope v1), the wrapper around in-toto statements.

Spec: github.com/secure-systems-lab/dsse (envelope.md, protocol.md). The signature covers the
pre-authentication encoding ``PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP
body`` (lengths in ASCII decimal bytes), never the JSON around it, so re-serialising an envelope
cannot change what was signed. Payload and signatures are standard base64 (with padding).

This module is a codec: signing takes a callable, verification a callable, no keys are read here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nanodistro.errors import FormatError, SignatureError

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "MEDIA_TYPE",
    "Envelope",
    "EnvelopeSignature",
    "decode_envelope",
    "pae",
    "sign_envelope",
    "verify_envelope",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: OCI layer media type cosign gives attestation envelopes.
MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """The bytes a DSSE signature is computed over."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class EnvelopeSignature:
    sig: bytes
    keyid: str = ""


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }

    def to_bytes(self) -> bytes:
        """Compact JSON, key order fixed: the same envelope always serialises the same."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    def statement(self, *, where: str = "envelope") -> dict[str, object]:
        """The payload parsed as a JSON object (an in-toto statement for our envelopes)."""
        try:
            value = json.loads(self.payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FormatError(f"payload is not JSON ({error})", where=where) from None
        if not isinstance(value, dict):
            raise FormatError("payload is not a JSON object", where=where)
        return value


def sign_envelope(
    payload_type: str,
    payload: bytes,
    signers: Sequence[tuple[Callable[[bytes], bytes], str]],
) -> Envelope:
    """Envelope with one signature per ``(sign, keyid)``; ``sign`` maps PAE bytes to a signature."""
    message = pae(payload_type, payload)
    signatures = tuple(EnvelopeSignature(sig=sign(message), keyid=keyid) for sign, keyid in signers)
    return Envelope(payload_type=payload_type, payload=payload, signatures=signatures)


def _b64(value: object, *, where: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{name} must be a base64 string", where=where)
    try:
        # Both alphabets occur in the wild (the spec allows either); padding is optional.
        text = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{name} is not valid base64", where=where) from None


def decode_envelope(data: bytes, *, where: str = "envelope") -> Envelope:
    """Parse envelope JSON; the error names the field that is missing or malformed."""
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FormatError(f"not a DSSE envelope: invalid JSON ({error})", where=where) from None
    if not isinstance(value, dict):
        raise FormatError("not a DSSE envelope: expected a JSON object", where=where)
    payload_type = value.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise FormatError("payloadType must be a non-empty string", where=where)
    payload = _b64(value.get("payload"), where=where, name="payload")
    raw_signatures = value.get("signatures")
    if not isinstance(raw_signatures, list):
        raise FormatError("signatures must be a list", where=where)
    signatures = []
    for index, raw in enumerate(raw_signatures):
        if not isinstance(raw, dict):
            raise FormatError(f"signatures[{index}] must be an object", where=where)
        keyid = raw.get("keyid", "")
        if not isinstance(keyid, str):
            raise FormatError(f"signatures[{index}].keyid must be a string", where=where)
        sig = _b64(raw.get("sig"), where=where, name=f"signatures[{index}].sig")
        signatures.append(EnvelopeSignature(sig=sig, keyid=keyid))
    return Envelope(payload_type=payload_type, payload=payload, signatures=tuple(signatures))


def verify_envelope(
    envelope: Envelope,
    verify: Callable[[bytes, bytes], bool],
    *,
    where: str = "envelope",
    payload_type: str | None = INTOTO_PAYLOAD_TYPE,
) -> None:
    """Raise ``SignatureError`` unless some signature verifies (``verify(pae_bytes, sig)``)."""
    if payload_type is not None and envelope.payload_type != payload_type:
        raise SignatureError(
            f"payloadType is {envelope.payload_type!r}, expected {payload_type!r}", where=where
        )
    if not envelope.signatures:
        raise SignatureError("envelope carries no signature", where=where)
    message = pae(envelope.payload_type, envelope.payload)
    if not any(verify(message, s.sig) for s in envelope.signatures):
        raise SignatureError("no envelope signature verifies with the given key", where=where)
