"""OCI registry client (distribution spec): push an OCI layout, pull into one.

Public API::

    push_layout(layout_dir, "host[:port]/repo:tag", insecure=False, username=None,
                password=None, progress=None, ref_name=None) -> digest
    push_layout_to(layout_dir, [ref, ...], ...) -> digest   (one upload, every tag)
    pull("host[:port]/repo:tag", layout_dir, insecure=False, ...) -> digest
    parse_reference(text) -> Reference

    with RegistryClient("host:port", insecure=False, username=None, password=None) as c:
        c.ping(); c.blob_exists(repo, digest); c.upload_blob(repo, digest, size, opener)
        c.upload_bytes(repo, data) -> digest; c.fetch_blob(repo, digest, path, size=)
        c.put_manifest(repo, tag_or_digest, data, media_type) -> digest
        c.get_manifest(repo, tag_or_digest) -> Manifest; c.resolve(repo, tag) -> digest
        c.list_tags(repo); c.referrers(repo, digest, artifact_type=None)

Every method raises RegistryError (nanodistro.errors) naming the reference and the registry's
``errors[].code: message``.
"""

from __future__ import annotations

from nanodistro.registry.client import Manifest, RegistryClient, compute_digest
from nanodistro.registry.layout import OciLayout
from nanodistro.registry.reference import Reference, parse_reference
from nanodistro.registry.transfer import build_index, pull, push_layout, push_layout_to

__all__ = [
    "Manifest",
    "OciLayout",
    "Reference",
    "RegistryClient",
    "build_index",
    "compute_digest",
    "parse_reference",
    "pull",
    "push_layout",
    "push_layout_to",
]
