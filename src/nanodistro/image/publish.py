"""Publish a built image as ``apko publish`` does: several tags at once, SBOMs attached.

The layout is pushed once per repository named (registry/transfer.py ``push_layout_to``: blobs
and manifests once, then every tag). Each SBOM is then attached to the digest it describes the way
``apko publish`` and ``cosign attach sbom`` do: an image manifest tagged ``sha256-<hex>.sbom``
in the same repository whose one layer is the SPDX document (``text/spdx+json``), so
``cosign download sbom REF`` and ``cosign tree REF`` find it. The index gets the index SBOM, each
platform image its own, as apko attaches them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nanodistro.registry.client import RegistryClient
from nanodistro.registry.mediatypes import INDEX_TYPES, OCI_MANIFEST
from nanodistro.registry.reference import parse_reference
from nanodistro.registry.transfer import push_layout_to
from nanodistro.trust.cosign import Layer, attached_tag, build_manifest
from nanodistro.util.progress import Progress

if TYPE_CHECKING:
    from nanodistro.image.build import BuildResult

__all__ = [
    "SBOM_SUFFIX",
    "SPDX_MEDIA_TYPE",
    "PublishResult",
    "SbomAttachment",
    "publish_layout",
    "sbom_attachments",
]

#: cosign's tag suffix and layer media type for an attached SPDX JSON SBOM (cosign
#: pkg/types SPDXJSONMediaType; apko publish attaches SPDX this way).
SBOM_SUFFIX = "sbom"
SPDX_MEDIA_TYPE = "text/spdx+json"


@dataclass(frozen=True)
class SbomAttachment:
    """One SBOM attached in a registry: the image it describes and the tag holding it."""

    repository: str  # registry/repository
    subject: str  # the image (index or platform manifest) digest
    tag: str  # sha256-<hex>.sbom
    manifest_digest: str


@dataclass
class PublishResult:
    digest: str
    references: list[str]
    sboms: list[SbomAttachment] = field(default_factory=list)


def sbom_attachments(result: BuildResult) -> dict[str, bytes]:
    """Image digest -> the SPDX document of it, from a build: the index's
    ``sbom-index.spdx.json`` and each platform image's ``sbom-<arch>.spdx.json``."""
    attachments: dict[str, bytes] = {}
    index = result.sboms.get("sbom-index.spdx.json")
    if index is not None:
        attachments[result.digest] = index
    for image in result.images:
        document = result.sboms.get(f"sbom-{image.arch.apk}.spdx.json")
        if document is not None:
            attachments[image.descriptor.digest] = document
    return attachments


def publish_layout(
    layout_dir: Path,
    references: Sequence[str],
    *,
    sboms: Mapping[str, bytes] | None = None,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    docker_config: Path | None = None,
    progress: Progress | None = None,
) -> PublishResult:
    """Push the layout's image to every reference, then attach ``sboms`` (digest -> SPDX bytes,
    :func:`sbom_attachments`) to the pushed image and, when it is an index, to each platform
    image it lists. SBOMs of digests that were not pushed are left out."""
    digest = push_layout_to(
        layout_dir,
        references,
        insecure=insecure,
        username=username,
        password=password,
        docker_config=docker_config,
        progress=progress,
    )
    result = PublishResult(digest=digest, references=list(references))
    if not sboms:
        return result
    repositories: dict[tuple[str, str], str] = {}
    for reference in references:
        ref = parse_reference(reference)
        repositories.setdefault((ref.api_host, ref.repository), ref.registry)
    for (host, repository), registry in repositories.items():
        with RegistryClient(
            host,
            insecure=insecure,
            username=username,
            password=password,
            docker_config=docker_config,
        ) as client:
            for subject in _pushed_digests(client, repository, digest):
                document = sboms.get(subject)
                if document is None:
                    continue
                tag = attached_tag(subject, SBOM_SUFFIX)
                manifest, config = build_manifest([Layer(SPDX_MEDIA_TYPE, document)])
                client.upload_bytes(repository, config)
                client.upload_bytes(repository, document)
                pushed = client.put_manifest(repository, tag, manifest, OCI_MANIFEST)
                if progress:
                    progress(f"sbom {registry}/{repository}:{tag}")
                result.sboms.append(
                    SbomAttachment(f"{registry}/{repository}", subject, tag, pushed)
                )
    return result


def _pushed_digests(client: RegistryClient, repository: str, digest: str) -> list[str]:
    """``digest`` and, for an index, the platform images it lists (as the registry holds it)."""
    top = client.get_manifest(repository, digest)
    digests = [digest]
    if top.media_type in INDEX_TYPES:
        for entry in top.document.get("manifests") or []:
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                digests.append(entry["digest"])
    return digests
