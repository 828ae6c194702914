"""SLSA Provenance v1 for images: the statement attached to a pushed image as an attestation.

The subject is the image (index or manifest) by digest. ``resolvedDependencies`` name every
installed package (apk identity ``Q1…`` as ``annotations.apkChecksum``, the package URL as
``uri``; ``sha256`` of the file when known), the image config file by the sha256 of its bytes
and each base repository. The statement is built here; signing and attaching it is
``image/signatures.attest_image`` (cosign's ``.att`` scheme), done by the control plane.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import nanodistro
from nanodistro.formats.intoto import (
    Provenance,
    ResourceDescriptor,
    Statement,
    format_time,
    provenance_statement,
)
from nanodistro.image.lock import LockedPackage
from nanodistro.trust.provenance import BUILD_TYPE_IMAGE, BUILDER_ID

__all__ = ["ImageInputs", "image_provenance_statement"]


@dataclass(frozen=True)
class ImageInputs:
    name: str  # subject name: registry/repository (or layout name), as cosign names it
    digest: str  # "sha256:<hex>" of the index or manifest
    config_path: str  # the image config file, as the workspace names it (images/x.yaml)
    config_bytes: bytes
    packages: Sequence[LockedPackage]  # every installed package, per arch (lock file entries)
    repositories: Sequence[str]  # base repository URIs
    archs: Sequence[str] = ()
    package_sha256: Mapping[str, str] | None = None  # "<arch>/<name>-<version>" -> sha256
    builder_id: str = BUILDER_ID
    started: datetime.datetime | None = None
    finished: datetime.datetime | None = None
    invocation_id: str = ""


def image_provenance_statement(inputs: ImageInputs) -> Statement:
    """The statement to attest for one image (``--type slsaprovenance1``)."""
    algorithm, _, encoded = inputs.digest.partition(":")
    if algorithm != "sha256" or len(encoded) != 64:
        raise ValueError(f"expected a sha256:<hex> image digest, got {inputs.digest!r}")
    hashes = dict(inputs.package_sha256 or {})
    dependencies = [
        ResourceDescriptor(
            name=inputs.config_path,
            digest={"sha256": hashlib.sha256(inputs.config_bytes).hexdigest()},
            annotations={"kind": "image-config"},
        ),
        *(
            ResourceDescriptor(uri=uri, annotations={"kind": "repository"})
            for uri in sorted(set(inputs.repositories))
        ),
    ]
    for package in sorted(inputs.packages, key=lambda p: (p.architecture, p.name, p.version)):
        key = f"{package.architecture}/{package.name}-{package.version}"
        dependencies.append(
            ResourceDescriptor(
                name=f"{package.name}-{package.version}",
                uri=package.url or f"apk:{package.name}-{package.version}.apk",
                digest={"sha256": hashes[key]} if key in hashes else {},
                annotations={
                    "kind": "package",
                    "arch": package.architecture,
                    "apkChecksum": package.checksum,
                },
            )
        )
    provenance = Provenance(
        build_type=BUILD_TYPE_IMAGE,
        builder_id=inputs.builder_id,
        external_parameters={"config": inputs.config_path, "archs": sorted(inputs.archs)},
        resolved_dependencies=tuple(dependencies),
        builder_version={"nanodistro": nanodistro.__version__},
        invocation_id=inputs.invocation_id,
        started_on=format_time(inputs.started) if inputs.started else "",
        finished_on=format_time(inputs.finished) if inputs.finished else "",
    )
    subject = ResourceDescriptor(name=inputs.name, digest={"sha256": encoded})
    return provenance_statement([subject], provenance)
