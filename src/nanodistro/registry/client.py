"""A small client for the OCI distribution spec (v1.1) on httpx.

Why not a library: the ``oras`` Python SDK (the maintained one on PyPI) pushes files as
artifacts on top of ``requests`` + ``jsonschema``; it has no OCI-layout push/pull, no generic
index handling and no digest checking of what the registry reports, so we would still write
most of this. The protocol part we need is small: ``/v2/`` ping, blob HEAD/POST/PATCH/PUT/GET,
manifest PUT/GET/HEAD and tag listing, with Basic and bearer-token auth (see auth.py).

Every digest the registry reports (``Docker-Content-Digest``) is checked against the one we
computed; a mismatch is a RegistryError. Plain HTTP is used only for loopback registries
(127.0.0.0/8, ::1, localhost) or with ``insecure=True``, and only after HTTPS did not answer
(as docker and crane do); ``insecure`` also skips certificate verification. ``plain_http``
forces a scheme. Retries: 5xx/429 and connection errors, with exponential backoff; a blob
upload is retried as a whole (POST..PUT), since a half-sent PATCH cannot be resumed safely.

Layout: session.py holds the request core (schemes, auth, retries), blobs.py the blob
endpoints; this module adds manifests, referrers and tags and is the public entry point.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import RegistryError
from nanodistro.registry.auth import repository_scope
from nanodistro.registry.blobs import BlobClient, compute_digest
from nanodistro.registry.mediatypes import ACCEPT_MANIFESTS, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST
from nanodistro.registry.reference import validate_digest
from nanodistro.registry.session import DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_CHUNK_THRESHOLD",
    "MAX_MANIFEST_SIZE",
    "Manifest",
    "RegistryClient",
    "compute_digest",
]

# Registries may refuse manifests over 4 MiB (distribution spec "Pushing Manifests").
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry served it: exact bytes, media type and digest."""

    media_type: str
    data: bytes
    digest: str
    document: dict[str, Any] = field(repr=False)


def _subject_of(data: bytes) -> str | None:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    subject = document.get("subject") if isinstance(document, dict) else None
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None


def _referrer_descriptor(data: bytes, digest: str) -> dict[str, Any]:
    """The descriptor a referrers list carries for a manifest (image-spec descriptor +
    ``artifactType`` and ``annotations``, as distribution-spec "Listing Referrers")."""
    document = json.loads(data)
    descriptor: dict[str, Any] = {
        "mediaType": document.get("mediaType", OCI_MANIFEST),
        "digest": digest,
        "size": len(data),
    }
    config = document.get("config")
    artifact_type = document.get("artifactType") or (
        config.get("mediaType") if isinstance(config, dict) else None
    )
    if artifact_type:
        descriptor["artifactType"] = artifact_type
    if isinstance(document.get("annotations"), dict):
        descriptor["annotations"] = document["annotations"]
    return descriptor


def _referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: ``<alg>-<ref>`` (truncated to a valid tag)."""
    algorithm, encoded = digest.split(":", 1)
    return f"{algorithm}-{encoded}"[:128]


class RegistryClient(BlobClient):
    """Talks to one registry host. Use as a context manager (it owns an httpx.Client)."""

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or digest; return its digest (checked against
        the registry's ``Docker-Content-Digest``)."""
        digest = compute_digest(data, "sha256")
        where = self._where(repository, reference)
        if ":" in reference and reference != digest:
            raise RegistryError(f"manifest content has digest {digest}", where=where)
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"not a manifest media type: {media_type!r}", where=where)
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scopes=(repository_scope(repository, ["pull", "push"]),),
            where=where,
            ok=(201,),
            headers={"Content-Type": media_type},
            content=data,
        )
        self._check_digest_header(response, digest, where)
        subject = _subject_of(data)
        if subject and not response.headers.get("OCI-Subject"):
            # No referrers API here: keep the OCI 1.1 fallback tag index up to date.
            self._add_to_referrers_tag(repository, subject, _referrer_descriptor(data, digest))
        return digest

    def upload_bytes(self, repository: str, data: bytes, *, mount_from: str | None = None) -> str:
        """Make the blob ``data`` present in ``repository``; return its digest."""
        digest = compute_digest(data)
        self.upload_blob(
            repository, digest, len(data), lambda: io.BytesIO(data), mount_from=mount_from
        )
        return digest

    def referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Descriptors of manifests whose ``subject`` is ``digest`` (OCI 1.1): the referrers
        API when the registry has it, else the fallback tag ``<alg>-<hex>``."""
        validate_digest(digest)
        where = self._where(repository, digest)
        response = self._send(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=where,
            ok=(200, 404),
            headers={"Accept": OCI_INDEX},
            params={"artifactType": artifact_type} if artifact_type else None,
        )
        document: Any = None
        if response.status_code == 200:
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                document = json.loads(response.content)
        if not (isinstance(document, dict) and isinstance(document.get("manifests"), list)):
            fallback = self._get_optional_manifest(repository, _referrers_tag(digest))
            document = fallback.document if fallback else {"manifests": []}
        entries = [e for e in document.get("manifests", []) if isinstance(e, dict)]
        if artifact_type:
            entries = [e for e in entries if e.get("artifactType") == artifact_type]
        return entries

    def has_referrers_api(self, repository: str, digest: str) -> bool:
        """Whether the registry serves the OCI 1.1 referrers API (an index for ``digest``),
        rather than leaving clients to the fallback tag."""
        validate_digest(digest)
        response = self._send(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=self._where(repository, digest),
            ok=(200, 404),
            headers={"Accept": OCI_INDEX},
        )
        if response.status_code != 200:
            return False
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            document = json.loads(response.content)
            return isinstance(document, dict) and isinstance(document.get("manifests"), list)
        return False

    def _get_optional_manifest(self, repository: str, reference: str) -> Manifest | None:
        try:
            return self.get_manifest(repository, reference)
        except RegistryError as exc:
            if "HTTP 404" in exc.message:
                return None
            raise

    def _add_to_referrers_tag(
        self, repository: str, subject: str, descriptor: dict[str, Any]
    ) -> None:
        tag = _referrers_tag(subject)
        current = self._get_optional_manifest(repository, tag)
        entries = list(current.document.get("manifests", [])) if current else []
        if any(isinstance(e, dict) and e.get("digest") == descriptor["digest"] for e in entries):
            return
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*entries, descriptor]}
        data = json.dumps(index, separators=(",", ":")).encode()
        self.put_manifest(repository, tag, data, OCI_INDEX)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """GET a manifest/index (OCI or Docker schema 2), verified against the digest in the
        reference or the registry's ``Docker-Content-Digest``."""
        where = self._where(repository, reference)
        if ":" in reference:
            validate_digest(reference, where=where)
        response = self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=where,
            ok=(200,),
            headers={"Accept": ACCEPT_MANIFESTS},
            follow_redirects=True,
        )
        data = response.content
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"manifest larger than {MAX_MANIFEST_SIZE} bytes", where=where)
        expected = reference if ":" in reference else response.headers.get("Docker-Content-Digest")
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        digest = compute_digest(data, algorithm if algorithm in ("sha256", "sha512") else "sha256")
        if expected and digest != expected:
            raise RegistryError(
                f"manifest content has digest {digest}, expected {expected}", where=where
            )
        if algorithm != "sha256":
            digest = compute_digest(data, "sha256")
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"manifest is not JSON: {exc}", where=where) from None
        if not isinstance(document, dict):
            raise RegistryError("manifest is not a JSON object", where=where)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        declared = document.get("mediaType")
        media_type = declared if isinstance(declared, str) and declared else content_type
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(
                f"unsupported manifest media type {media_type!r} (expected OCI or Docker "
                "schema 2 manifest/index)",
                where=where,
            )
        return Manifest(media_type=media_type, data=data, digest=digest, document=document)

    def resolve(self, repository: str, reference: str) -> str:
        """The digest a tag points at (HEAD; GET when the registry gives no digest header)."""
        if ":" in reference:
            return validate_digest(reference)
        response = self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=self._where(repository, reference),
            ok=(200,),
            headers={"Accept": ACCEPT_MANIFESTS},
            follow_redirects=True,
        )
        digest = response.headers.get("Docker-Content-Digest")
        return digest if digest else self.get_manifest(repository, reference).digest

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """All tags of ``repository``, following ``Link: <...>; rel="next"`` pagination."""
        tags: list[str] = []
        where = f"{self.registry}/{repository}"
        url: str | None = f"/v2/{repository}/tags/list"
        params = {"n": str(page_size)} if page_size else None
        while url:
            response = self._send(
                "GET",
                url,
                scopes=(repository_scope(repository, ["pull"]),),
                where=where,
                ok=(200,),
                params=params,
            )
            params = None
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            page = body.get("tags") if isinstance(body, dict) else None
            if page is not None and not (
                isinstance(page, list) and all(isinstance(t, str) for t in page)
            ):
                raise RegistryError("tags/list answer has no 'tags' string list", where=where)
            tags.extend(page or [])
            next_link = response.links.get("next", {}).get("url")
            url = str(response.request.url.join(next_link)) if next_link else None
        return tags
