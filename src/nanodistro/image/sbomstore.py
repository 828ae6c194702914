"""The SBOMs of each build kept beside a persistent image layout, by image digest.

``image build --out DIR`` writes a build's SBOMs to ``DIR/sboms/``; the factory merges builds into
one persistent layout per image (image/tags.py), where several digests live side by side. Their
SBOMs are kept under ``<layout>/sboms/<alg>-<hex>/`` so that whoever attests an image later (the
factory after pushing it, ``factory/imagesign.py``) finds the SBOM of exactly that digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from nanodistro.errors import ImageError
from nanodistro.registry.reference import validate_digest
from nanodistro.util.atomic import atomic_write_bytes

__all__ = ["INDEX_SPDX", "read_sbom", "sbom_dir", "store_sboms"]

#: The SPDX document describing the whole image (index), as image/sbom.py names it.
INDEX_SPDX = "sbom-index.spdx.json"


def sbom_dir(layout: Path, digest: str) -> Path:
    """``<layout>/sboms/sha256-<hex>`` for ``digest`` (validated: no path escapes)."""
    validate_digest(digest, where=str(layout))
    return Path(layout) / "sboms" / digest.replace(":", "-", 1)


def store_sboms(layout: Path, digest: str, files: Mapping[str, bytes]) -> list[Path]:
    """Write ``files`` (name -> bytes, e.g. BuildResult.sboms) for ``digest``; returns the paths.
    The same digest always has the same SBOMs (they derive from the image), so rewriting is
    harmless."""
    directory = sbom_dir(layout, digest)
    written = []
    for name, data in sorted(files.items()):
        if "/" in name or name.startswith("."):
            raise ImageError(f"invalid SBOM file name {name!r}", where=str(directory))
        atomic_write_bytes(directory / name, data)
        written.append(directory / name)
    return written


def read_sbom(layout: Path, digest: str, name: str = INDEX_SPDX) -> bytes | None:
    """The SBOM ``name`` stored for ``digest``; None when that build kept none."""
    path = sbom_dir(layout, digest) / name
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
