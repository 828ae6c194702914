"""OCI registry client (distribution spec): push an OCI layout, pull into one.

Public API::

    push_layout(layout_dir, "host[:port]/repo:tag", insecure=False, username=None,
                password=None, progress=None, ref_name=None) -> digest
    pull("host[:port]/repo:tag", layout_dir, insecure=False, ...) -> digest
    RegistryClient(host, ...)   # blob/manifest/tag operations, see client.py
    parse_reference(text) -> Reference
"""

from __future__ import annotations

from nanodistro.registry.client import Manifest, RegistryClient, compute_digest
from nanodistro.registry.layout import OciLayout
from nanodistro.registry.reference import Reference, parse_reference
from nanodistro.registry.transfer import build_index, pull, push_layout

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
]
