"""Push an OCI image layout to a registry, and pull an image from one into a layout.

Order is children before parents (blobs, then image manifests, then indexes, then the tag), so
a registry never holds a manifest whose blobs are missing, and a crash mid-push leaves the old
tag in place. Blobs the registry already has are not uploaded again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nanodistro.errors import RegistryError
from nanodistro.formats.oci import canonical_json
from nanodistro.registry.client import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CHUNK_THRESHOLD,
    MAX_MANIFEST_SIZE,
    RegistryClient,
    compute_digest,
)
from nanodistro.registry.layout import (
    Descriptor,
    OciLayout,
    children,
    is_attachment,
    ref_name_of,
)
from nanodistro.registry.mediatypes import (
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    REF_NAME_ANNOTATION,
)
from nanodistro.registry.reference import Reference, parse_reference
from nanodistro.util.progress import Progress


def _noop(_message: str) -> None:
    pass


def _client(
    ref: Reference,
    insecure: bool,
    username: str | None,
    password: str | None,
    docker_config: Path | None,
    chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    plain_http: bool | None = None,
) -> RegistryClient:
    # push_layout and pull repeat these connection keywords on purpose: they are the public,
    # documented signatures the CLI and image builder call; the logic lives only here.
    return RegistryClient(
        ref.api_host,
        insecure=insecure,
        plain_http=plain_http,
        username=username,
        password=password,
        chunk_threshold=chunk_threshold,
        chunk_size=chunk_size,
        docker_config=docker_config,
    )


# -- push ------------------------------------------------------------------------------------


def push_layout(
    layout_dir: Path,
    reference: str,
    *,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    progress: Progress | None = None,
    ref_name: str | None = None,
    chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    docker_config: Path | None = None,
    plain_http: bool | None = None,
) -> str:
    """Push the image in ``layout_dir`` to ``reference`` (``host[:port]/repo[:tag][@digest]``)
    and return the digest of what the reference now points at.

    The top-level image is the one ``index.json`` entry (image index or manifest), the entry
    annotated ``org.opencontainers.image.ref.name: <ref_name>`` when ``ref_name`` is given, or,
    when ``index.json`` lists several image manifests, an index of them: ``index.json`` itself
    if every entry has a platform (apko's layout; same digest as ``crane push --index``), else
    one built with platforms from the image configs. ``progress`` gets
    one line per step: ``uploaded|exists|mounted <digest> (<size> bytes)``,
    ``manifest <digest>``, ``tagged <reference>``. Blobs over ``chunk_threshold`` bytes are
    sent in PATCH chunks of ``chunk_size``. ``plain_http`` forces the scheme (default: http
    for loopback hosts, https otherwise); plain http to other hosts needs ``insecure``.
    """
    return push_layout_to(
        layout_dir,
        [reference],
        insecure=insecure,
        username=username,
        password=password,
        progress=progress,
        ref_name=ref_name,
        chunk_threshold=chunk_threshold,
        chunk_size=chunk_size,
        docker_config=docker_config,
        plain_http=plain_http,
    )


def push_layout_to(
    layout_dir: Path,
    references: Sequence[str],
    *,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    progress: Progress | None = None,
    ref_name: str | None = None,
    chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    docker_config: Path | None = None,
    plain_http: bool | None = None,
) -> str:
    """:func:`push_layout` to several references at once (``apko publish CONFIG TAG...``): the
    blobs and manifests go once to each repository named, then every tag is set; returns the
    digest all of them point at. Every reference is parsed before anything is sent."""
    if not references:
        raise RegistryError("no reference to push to", where=str(layout_dir))
    refs = [parse_reference(reference) for reference in references]
    say = progress or _noop
    layout = OciLayout(Path(layout_dir))
    top, top_data = _select_top(layout, ref_name)
    by_repository: dict[tuple[str, str], list[Reference]] = {}
    for ref in refs:
        by_repository.setdefault((ref.api_host, ref.repository), []).append(ref)
    digest = ""
    for (_host, repository), group in by_repository.items():
        with _client(
            group[0],
            insecure,
            username,
            password,
            docker_config,
            chunk_threshold,
            chunk_size,
            plain_http,
        ) as client:
            pusher = _Pusher(client, layout, repository, say)
            data = top_data
            if data is None:
                data = pusher.push_manifest(top)
            else:
                # An index we built from several entries: push what it lists, then it.
                for child in top["manifests"]:
                    pusher.push_manifest(child)
            digest = compute_digest(data)
            media_type = top["mediaType"] if "digest" in top else OCI_INDEX
            for ref in group:
                if ref.digest and ref.digest != digest:
                    raise RegistryError(
                        f"layout's image has digest {digest}, not the one in the reference",
                        where=str(ref),
                    )
            tags = list(dict.fromkeys(ref.tag for ref in group if ref.tag and not ref.digest))
            if not tags:
                client.put_manifest(repository, digest, data, media_type)
                say(f"manifest {digest}")
            for tag in tags:
                client.put_manifest(repository, tag, data, media_type)
                say(f"tagged {client.registry}/{repository}:{tag}")
    return digest


def _select_top(layout: OciLayout, ref_name: str | None) -> tuple[dict[str, Any], bytes | None]:
    """The descriptor to push, or (for several image manifests) an index document and its
    bytes: ``index.json`` itself when every entry names its platform (as apko writes it and
    ``crane push --index`` pushes it, so the digests agree), else one built with platforms
    read from the image configs."""
    entries = layout.manifests()
    where = str(layout.root / "index.json")
    if ref_name is not None:
        named = [e for e in entries if ref_name_of(e) == ref_name]
        if len(named) != 1:
            raise RegistryError(
                f"{len(named)} entries annotated {REF_NAME_ANNOTATION}={ref_name!r}, expected 1",
                where=where,
            )
        return named[0], None
    # Signatures/attestations stored beside the image (image/signatures.py) are not the image.
    entries = [e for e in entries if not is_attachment(e)]
    if not entries:
        raise RegistryError("index.json lists no manifests", where=where)
    roots = _unlisted(layout, entries)
    if len(roots) == 1:
        # nanodistro's multi-arch layouts also name each platform's manifest (for umoci),
        # beside the index that lists them: the index is the image.
        return roots[0], None
    if not all(e["mediaType"] in IMAGE_MANIFEST_TYPES for e in entries):
        raise RegistryError(
            "index.json lists several entries including an index; choose one with ref_name",
            where=where,
        )
    raw = (layout.root / "index.json").read_bytes()
    document = json.loads(raw)
    if document.get("mediaType") in (None, OCI_INDEX) and all(
        isinstance(e.get("platform"), dict) for e in entries
    ):
        return document, raw
    index = build_index(layout, entries)
    if isinstance(document.get("annotations"), dict):
        index["annotations"] = document["annotations"]
    return index, canonical_json(index)


def _unlisted(layout: OciLayout, entries: list[Descriptor]) -> list[Descriptor]:
    """The index.json entries that no image index among them lists."""
    listed: set[str] = set()
    for entry in entries:
        if entry["mediaType"] in INDEX_TYPES and layout.has_blob(entry["digest"]):
            where = f"{layout.root} {entry['digest']}"
            try:
                document = json.loads(layout.read_blob(entry["digest"], max_size=MAX_MANIFEST_SIZE))
            except (ValueError, UnicodeDecodeError):
                continue  # pushing it reports the broken index clearly
            if isinstance(document, dict):
                listed.update(c["digest"] for c in children(entry["mediaType"], document, where))
    return [e for e in entries if e["digest"] not in listed]


def build_index(layout: OciLayout, manifests: list[Descriptor]) -> dict[str, Any]:
    """An OCI image index of ``manifests``, each with its platform (from the descriptor, else
    from the image config's os/architecture/variant)."""
    entries = []
    for descriptor in manifests:
        entry: dict[str, Any] = {
            "mediaType": descriptor["mediaType"],
            "digest": descriptor["digest"],
            "size": descriptor["size"],
        }
        platform = descriptor.get("platform") or _platform_from_config(layout, descriptor)
        if platform:
            entry["platform"] = platform
        entries.append(entry)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}


def _platform_from_config(layout: OciLayout, descriptor: Descriptor) -> dict[str, str] | None:
    manifest = _load_json(layout, descriptor["digest"])
    config_descriptor = manifest.get("config")
    if not isinstance(config_descriptor, dict) or "digest" not in config_descriptor:
        return None
    config = _load_json(layout, str(config_descriptor["digest"]))
    platform = {k: config[k] for k in ("architecture", "os", "variant") if config.get(k)}
    return platform if {"architecture", "os"} <= platform.keys() else None


def _load_json(layout: OciLayout, digest: str) -> dict[str, Any]:
    data = layout.read_blob(digest, max_size=MAX_MANIFEST_SIZE)
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"blob {digest} is not JSON: {exc}", where=str(layout.root)) from None
    if not isinstance(document, dict):
        raise RegistryError(f"blob {digest} is not a JSON object", where=str(layout.root))
    return document


class _Pusher:
    def __init__(
        self, client: RegistryClient, layout: OciLayout, repository: str, say: Progress
    ) -> None:
        self.client = client
        self.layout = layout
        self.repository = repository
        self.say = say
        self.done: set[str] = set()

    def push_manifest(self, descriptor: Descriptor) -> bytes:
        """Push everything ``descriptor`` (a manifest or index) reaches, then it by digest."""
        digest, media_type = descriptor["digest"], descriptor["mediaType"]
        where = f"{self.layout.root} {digest}"
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"not a manifest or index: {media_type!r}", where=where)
        data = self.layout.read_blob(digest, max_size=MAX_MANIFEST_SIZE)
        if len(data) != descriptor["size"]:
            raise RegistryError(
                f"manifest has {len(data)} bytes, descriptor says {descriptor['size']}",
                where=where,
            )
        if digest in self.done:
            return data
        document = _load_json(self.layout, digest)
        declared = document.get("mediaType")
        if declared is not None and declared != media_type:
            raise RegistryError(
                f"document says mediaType {declared!r}, its descriptor {media_type!r}",
                where=where,
            )
        for child in children(media_type, document, where):
            if media_type in INDEX_TYPES and child["mediaType"] in MANIFEST_TYPES:
                self.push_manifest(child)
            else:
                self.push_blob(child)
        self.client.put_manifest(self.repository, digest, data, media_type)
        self.done.add(digest)
        self.say(f"manifest {digest}")
        return data

    def push_blob(self, descriptor: Descriptor) -> None:
        digest, size = descriptor["digest"], descriptor["size"]
        if digest in self.done:
            return
        if not self.layout.has_blob(digest) and descriptor.get("urls"):
            # Non-distributable layer (e.g. Windows base layers): fetched from its urls.
            self.say(f"foreign {digest} ({size} bytes)")
            return
        if not self.layout.has_blob(digest):
            raise RegistryError(f"layout has no blob {digest}", where=str(self.layout.root))
        status = self.client.upload_blob(
            self.repository, digest, size, lambda: self.layout.open_blob(digest)
        )
        self.done.add(digest)
        self.say(f"{status} {digest} ({size} bytes)")


# -- pull ------------------------------------------------------------------------------------


def pull(
    reference: str,
    layout_dir: Path,
    *,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    progress: Progress | None = None,
    docker_config: Path | None = None,
    plain_http: bool | None = None,
) -> str:
    """Pull ``reference`` (with every platform of an index) into the OCI layout ``layout_dir``
    (created if missing) and return its digest. Blobs are verified while streaming; manifests
    are written after what they refer to; ``index.json`` gets an entry annotated
    ``org.opencontainers.image.ref.name`` (the tag, or the full reference when pulled by digest).
    """
    ref = parse_reference(reference)
    say = progress or _noop
    layout = OciLayout.create(Path(layout_dir))
    with _client(ref, insecure, username, password, docker_config, plain_http=plain_http) as c:
        top = c.get_manifest(ref.repository, ref.identifier)
        puller = _Puller(c, layout, ref.repository, say)
        puller.store(top.media_type, top.data, top.digest, top.document)
    descriptor = {"mediaType": top.media_type, "digest": top.digest, "size": len(top.data)}
    layout.add_manifest(descriptor, ref.tag if ref.tag and not ref.digest else str(ref))
    return top.digest


class _Puller:
    def __init__(
        self, client: RegistryClient, layout: OciLayout, repository: str, say: Progress
    ) -> None:
        self.client = client
        self.layout = layout
        self.repository = repository
        self.say = say

    def store(self, media_type: str, data: bytes, digest: str, document: dict[str, Any]) -> None:
        where = f"{self.client.registry}/{self.repository}@{digest}"
        for child in children(media_type, document, where):
            if media_type in INDEX_TYPES and child["mediaType"] in MANIFEST_TYPES:
                self.pull_manifest(child)
            else:
                self.pull_blob(child)
        self.layout.write_blob(data)
        self.say(f"manifest {digest}")

    def pull_manifest(self, descriptor: Descriptor) -> None:
        manifest = self.client.get_manifest(self.repository, descriptor["digest"])
        if len(manifest.data) != descriptor["size"]:
            raise RegistryError(
                f"manifest has {len(manifest.data)} bytes, its descriptor says "
                f"{descriptor['size']}",
                where=f"{self.client.registry}/{self.repository}@{manifest.digest}",
            )
        self.store(manifest.media_type, manifest.data, manifest.digest, manifest.document)

    def pull_blob(self, descriptor: Descriptor) -> None:
        digest, size = descriptor["digest"], descriptor["size"]
        if self.layout.has_blob(digest) and self.layout.blob_size(digest) == size:
            self.say(f"present {digest} ({size} bytes)")
            return
        if descriptor.get("urls") and not self.client.blob_exists(self.repository, digest):
            self.say(f"foreign {digest} ({size} bytes)")
            return
        self.client.fetch_blob(self.repository, digest, self.layout.blob_path(digest), size=size)
        self.say(f"downloaded {digest} ({size} bytes)")
