"""Small OCI image layouts written blob by blob, for registry tests (no image builder needed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class BuiltLayout:
    root: Path
    top_digest: str  # what index.json points at
    manifest_digests: dict[str, str] = field(default_factory=dict)  # arch -> digest
    blob_digests: list[str] = field(default_factory=list)  # config + layers (not manifests)


def _write_blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def layer_tar_gz(files: dict[str, bytes]) -> bytes:
    """A reproducible gzip'd tar of ``files`` (sorted, root-owned, mtime 0)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def make_layout(
    root: Path,
    *,
    archs: tuple[str, ...] = ("amd64", "arm64"),
    tag: str = "v1",
    big_layer_bytes: int = 0,
    flat: bool = False,
    seed: str = "",
) -> BuiltLayout:
    """An OCI layout with one image per arch. By default index.json has one entry (a nested
    image index, annotated with ``tag``) as skopeo wants; ``flat`` lists the manifests directly.
    ``big_layer_bytes`` adds an incompressible layer of that size (for chunked uploads)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    built = BuiltLayout(root=root, top_digest="")
    shared = layer_tar_gz({"etc/os-release": f"ID=nanodistro-test{seed}\n".encode()})
    manifests = []
    for arch in archs:
        layers_data = [shared, layer_tar_gz({f"usr/bin/hello-{arch}": f"#!{arch}\n".encode()})]
        if big_layer_bytes:
            layers_data.append(layer_tar_gz({"big.bin": os.urandom(big_layer_bytes)}))
        layers = []
        diff_ids = []
        for data in layers_data:
            layers.append({"mediaType": OCI_LAYER, **_write_blob(root, data)})
            diff_ids.append("sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest())
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": [f"/usr/bin/hello-{arch}"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        config_descriptor = {
            "mediaType": OCI_CONFIG,
            **_write_blob(root, json.dumps(config).encode()),
        }
        built.blob_digests += [config_descriptor["digest"], *(layer["digest"] for layer in layers)]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor,
            "layers": layers,
        }
        descriptor = {"mediaType": OCI_MANIFEST, **_write_blob(root, json.dumps(manifest).encode())}
        built.manifest_digests[arch] = descriptor["digest"]
        manifests.append({**descriptor, "platform": {"architecture": arch, "os": "linux"}})
    built.blob_digests = sorted(set(built.blob_digests))
    if flat:
        entries = manifests
        built.top_digest = manifests[0]["digest"] if len(manifests) == 1 else ""
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        descriptor = {"mediaType": OCI_INDEX, **_write_blob(root, json.dumps(index).encode())}
        built.top_digest = descriptor["digest"]
        entries = [{**descriptor, "annotations": {REF_NAME: tag}}]
    top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    (root / "index.json").write_text(json.dumps(top))
    return built
