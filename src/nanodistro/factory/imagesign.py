"""The factory signs and attests every image it pushes (cosign-compatible, image/signatures.py).

After ``push_to_registry`` pushed a digest: one signature with the workspace key
``keys/cosign.key`` (created when missing; password $COSIGN_PASSWORD, empty when unset) and an
``spdxjson`` attestation of the image's SPDX SBOM (image/sbomstore.py keeps it per digest), plus
any further statements ``extra`` makes for the target (provenance, CycloneDX: wired by callers).
Both are idempotent: pushing the same digest again (a later promotion, a rollback) adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nanodistro.errors import FormatError
from nanodistro.factory.workspace import Workspace
from nanodistro.image.signatures import Target
from nanodistro.util.progress import Progress

#: Makes more in-toto statements about a pushed image (its subject must be ``target``).
StatementMaker = Callable[[Target], Sequence[Mapping[str, Any]]]


def sign_pushed_image(
    workspace: Workspace,
    layout: Path,
    repository_ref: str,
    digest: str,
    *,
    say: Progress,
    extra: Sequence[StatementMaker] = (),
) -> None:
    """Sign ``repository_ref@digest`` (``host/repo``, as pushed) and attest its SBOM."""
    from nanodistro.factory.catalog import ensure_ecdsa_key
    from nanodistro.image.sbomstore import read_sbom
    from nanodistro.image.signatures import (
        attest_image,
        image_statement,
        registry_target,
        sign_image,
    )
    from nanodistro.registry import RegistryClient, parse_reference
    from nanodistro.trust.cosignkey import load_signer

    signer = load_signer(ensure_ecdsa_key(workspace, say))
    ref = parse_reference(repository_ref)
    with RegistryClient(ref.api_host) as client:
        target = registry_target(client, ref.repository, digest)
        signed = sign_image(target, signer)
        statements: list[Mapping[str, Any]] = []
        sbom = read_sbom(layout, digest)
        if sbom is not None:
            try:
                document = json.loads(sbom)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise FormatError("stored SBOM is not JSON", where=str(layout)) from None
            statements.append(image_statement(target, "spdxjson", document))
        else:
            say(f"no SBOM kept for {digest[:19]} in {layout}: not attested")
        for make in extra:
            statements.extend(make(target))
        attested = attest_image(target, signer, statements) if statements else None
    parts = ["signed" if signed.added else "signature kept"]
    if attested is not None:
        parts.append(f"{len(attested.added)} attestation(s) added, {len(attested.kept)} kept")
    say(f"{repository_ref}@{digest[:19]}: {', '.join(parts)}")
