"""Helpers for the signature/attestation tests: tiny images, the real cosign, our CLI."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from nanodistro.registry import OciLayout, push_layout
from registry_server import find_tool

PASSWORD = "test-password"


def tiny_layout(root: Path, content: bytes = b"hello\n", tag: str = "latest") -> str:
    """An OCI layout with one single-layer image tagged ``tag``; returns its manifest digest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
            "config": {},
        }
    ).encode()
    layout = OciLayout.create(root)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": layout.write_blob(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layout.write_blob(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = layout.write_blob(manifest)
    layout.add_manifest(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": len(manifest),
        },
        tag,
    )
    return digest


def push_tiny_image(workdir: Path, ref: str, content: bytes = b"hello\n") -> str:
    """Push a tiny image to ``ref`` (``host/repo:tag``); returns its digest."""
    layout = workdir / f"layout-{hashlib.sha256(content).hexdigest()[:8]}"
    tiny_layout(layout, content)
    return push_layout(layout, ref)


def cosign(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real cosign, offline: password set, no transparency log, plain HTTP to loopback."""
    full_env = {**os.environ, "COSIGN_PASSWORD": PASSWORD, **(env or {})}
    return subprocess.run(
        [find_tool("cosign"), *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def cosign_verify(
    ref: str, public: Path, cwd: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cosign(
        "verify", "--key", public, "--insecure-ignore-tlog=true", "--allow-http-registry",
        *extra, ref, cwd=cwd,
    )  # fmt: skip


def cosign_verify_attestation(
    ref: str, public: Path, predicate_type: str, cwd: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cosign(
        "verify-attestation", "--key", public, "--type", predicate_type,
        "--insecure-ignore-tlog=true", "--allow-http-registry", *extra, ref, cwd=cwd,
    )  # fmt: skip
