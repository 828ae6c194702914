"""OCI image layout directories and ``oci-archive`` tars: writing and reading.

Our ``index.json`` holds the image index of the build with an
``org.opencontainers.image.ref.name`` annotation (``latest``), so ``skopeo inspect oci:DIR:latest``
finds it (see reference/real-clients.md). umoci 0.4.7 resolves a tag to every manifest below it and
refuses a multi-arch index as "tag is ambiguous", so a multi-arch layout also names each platform's
manifest (``latest-amd64``, ``latest-arm-v7``): ``umoci unpack --image DIR:latest-arm64``. A
single-arch layout keeps its one entry, so plain ``skopeo inspect oci:DIR`` works there too. The
reader also accepts apko's layouts, whose ``index.json`` lists the per-arch manifests directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nanodistro.errors import FormatError, ImageError
from nanodistro.formats.oci import (
    ANNOTATION_REF_NAME,
    GZIP_LAYER_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_INDEX,
    OCI_LAYOUT_FILE,
    Descriptor,
    ParsedManifest,
    Platform,
    canonical_json,
    image_index,
    parse_index,
    parse_manifest,
    sha256_digest,
)
from nanodistro.formats.tarball import TarEntry, gunzip, read_tar, write_tar
from nanodistro.util.atomic import atomic_write_bytes


def _blob_path(root: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return root / "blobs" / algorithm / hexdigest


def platform_ref_name(ref_name: str, platform: Platform) -> str:
    """``latest`` + ``linux/arm64`` -> ``latest-arm64``; ``linux/arm/v7`` -> ``latest-arm-v7``."""
    parts = [ref_name, platform.architecture, platform.variant or ""]
    return "-".join(p for p in parts if p)


def _named(descriptor: Descriptor, ref_name: str) -> Descriptor:
    return Descriptor(
        descriptor.media_type,
        descriptor.digest,
        descriptor.size,
        platform=descriptor.platform,
        annotations={**descriptor.annotations, ANNOTATION_REF_NAME: ref_name},
    )


def layout_files(
    blobs: dict[str, bytes],
    top: Descriptor,
    ref_name: str,
    extra: dict[str, bytes] | None = None,
    *,
    platforms: list[Descriptor] | None = None,
) -> dict[str, bytes]:
    """Every file of the layout, by relative path (``extra``: e.g. ``sboms/...``).

    ``platforms``: the per-arch manifests of a multi-arch ``top``; with two or more, each is
    also listed in ``index.json`` under its own ref name (for umoci, see the module doc)."""
    entries = [_named(top, ref_name)]
    if platforms and len(platforms) > 1:
        entries += [
            _named(d, platform_ref_name(ref_name, d.platform))
            for d in platforms
            if d.platform is not None
        ]
    files = {"oci-layout": OCI_LAYOUT_FILE, "index.json": canonical_json(image_index(entries))}
    for digest, data in blobs.items():
        algorithm, _, hexdigest = digest.partition(":")
        files[f"blobs/{algorithm}/{hexdigest}"] = data
    files.update(extra or {})
    return files


def write_layout_dir(
    directory: Path,
    blobs: dict[str, bytes],
    top: Descriptor,
    ref_name: str = "latest",
    *,
    extra: dict[str, bytes] | None = None,
    platforms: list[Descriptor] | None = None,
) -> None:
    """Write (replacing) an OCI layout directory; built beside it and renamed into place."""
    directory = Path(directory)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        # mkdtemp makes 0700; the layout is renamed into place, so give it a plain mkdir's mode
        # (readable by a registry or web server running as another user).
        umask = os.umask(0o022)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
    except OSError as error:
        raise ImageError(
            f"cannot write OCI layout: {error.strerror}", where=str(directory)
        ) from None
    try:
        files = layout_files(blobs, top, ref_name, extra, platforms=platforms)
        for relative, data in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(directory, old)
            os.rename(staging, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, directory)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ImageError(
            f"cannot write OCI layout: {error.strerror}", where=str(directory)
        ) from None


def archive_bytes(files: dict[str, bytes], *, mtime: int = 0) -> bytes:
    """An ``oci-archive``: the layout files in one deterministic tar."""
    entries: list[TarEntry] = []
    dirs: set[str] = set()
    for relative in sorted(files):
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in dirs:
                dirs.add(directory)
                entries.append(TarEntry(directory, "dir", mode=0o755, mtime=mtime))
        entries.append(TarEntry(relative, "file", mode=0o644, mtime=mtime, data=files[relative]))
    return write_tar(entries)


def write_layout_archive(
    path: Path,
    blobs: dict[str, bytes],
    top: Descriptor,
    ref_name: str = "latest",
    *,
    extra: dict[str, bytes] | None = None,
    mtime: int = 0,
    platforms: list[Descriptor] | None = None,
) -> None:
    files = layout_files(blobs, top, ref_name, extra, platforms=platforms)
    atomic_write_bytes(Path(path), archive_bytes(files, mtime=mtime))


# ---- reading ----------------------------------------------------------------------------------


@dataclass
class ImageRef:
    """One platform image found in a layout."""

    descriptor: Descriptor
    manifest: ParsedManifest
    config: dict[str, object]


class Layout:
    """Read access to a layout directory or an ``oci-archive`` tar."""

    def __init__(self, location: Path) -> None:
        self.location = Path(location)
        self._files: dict[str, bytes] | None = None
        if self.location.is_file():
            self._files = {
                e.path.removeprefix("./"): e.data
                for e in read_tar(self.location.read_bytes(), where=str(self.location))
                if e.type == "file"
            }
        elif not (self.location / "index.json").is_file():
            raise ImageError(
                "not an OCI layout (no index.json) or oci-archive tar", where=str(self.location)
            )

    def read(self, relative: str) -> bytes:
        if self._files is not None:
            if relative not in self._files:
                raise ImageError(f"{relative} missing from the archive", where=str(self.location))
            return self._files[relative]
        try:
            return (self.location / relative).read_bytes()
        except OSError as error:
            raise ImageError(
                f"cannot read {relative}: {error.strerror}", where=str(self.location)
            ) from None

    def blob(self, digest: str) -> bytes:
        algorithm, _, hexdigest = digest.partition(":")
        data = self.read(f"blobs/{algorithm}/{hexdigest}")
        if algorithm == "sha256" and hashlib.sha256(data).hexdigest() != hexdigest:
            raise FormatError(f"blob {digest} does not match its digest", where=str(self.location))
        return data

    def layer_entries(self, descriptor: Descriptor, *, label: str | None = None) -> list[TarEntry]:
        """The tar entries of a layer blob, gunzipped when its media type or bytes say gzip;
        errors name ``label@digest`` (a pulled reference rather than its temporary layout)."""
        blob = self.blob(descriptor.digest)
        where = f"{label or self.location}@{descriptor.digest}"
        gzipped = descriptor.media_type in GZIP_LAYER_TYPES or blob[:2] == b"\x1f\x8b"
        return read_tar(gunzip(blob, where=where) if gzipped else blob, where=where)

    def index(self) -> list[Descriptor]:
        return parse_index(self.read("index.json"), where=f"{self.location}/index.json").manifests

    def images(self, ref: str | None = None) -> list[ImageRef]:
        """Every platform image reachable from index.json (nested indexes followed); with
        ``ref``, only from the entries whose ``ref.name`` is ``ref`` (a tag of the layout)."""
        found: list[ImageRef] = []
        seen: set[str] = set()

        def visit(descriptor: Descriptor) -> None:
            if descriptor.digest in seen:
                return
            seen.add(descriptor.digest)
            data = self.blob(descriptor.digest)
            where = f"{self.location}@{descriptor.digest}"
            if descriptor.media_type in INDEX_TYPES:
                for child in parse_index(data, where=where).manifests:
                    visit(child)
            elif descriptor.media_type in MANIFEST_TYPES:
                manifest = parse_manifest(data, where=where)
                try:
                    config = json.loads(self.blob(manifest.config.digest))
                except (ValueError, UnicodeDecodeError):
                    raise FormatError("image config is not JSON", where=where) from None
                found.append(ImageRef(descriptor, manifest, config))

        from nanodistro.registry.layout import is_attachment

        # untagged: the images, not the cosign signatures/attestations stored beside them
        tagged = [
            d
            for d in self.index()
            if d.annotations.get(ANNOTATION_REF_NAME) == ref
            or (ref is None and not is_attachment({"annotations": dict(d.annotations)}))
        ]
        if ref is not None and not tagged:
            raise ImageError(f"no image tagged {ref!r} in the layout", where=str(self.location))
        for descriptor in tagged:
            visit(descriptor)
        return found

    def top_digest(self) -> str:
        """The one entry no other entry lists (our multi-arch layouts also name each platform's
        manifest); else, for apko's flat layouts, the digest of ``index.json`` itself."""
        descriptors = self.index()
        listed: set[str] = set()
        for descriptor in descriptors:
            if descriptor.media_type in INDEX_TYPES:
                where = f"{self.location}@{descriptor.digest}"
                children = parse_index(self.blob(descriptor.digest), where=where).manifests
                listed.update(child.digest for child in children)
        roots = [d for d in descriptors if d.digest not in listed]
        if len(roots) == 1:
            return roots[0].digest
        return sha256_digest(self.read("index.json"))


@contextlib.contextmanager
def open_layout(location: Path) -> Iterator[Layout]:
    yield Layout(location)


__all__ = [
    "MEDIA_INDEX",
    "ImageRef",
    "Layout",
    "archive_bytes",
    "layout_files",
    "open_layout",
    "platform_ref_name",
    "write_layout_archive",
    "write_layout_dir",
]
