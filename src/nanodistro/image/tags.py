"""Tags in a persistent OCI layout per image (``out/images/<name>/``) and in a registry.

Every build added with :func:`add_to_layout` gets an immutable tag ``build-<N>`` (N increasing
per layout; a build whose digest the layout already has keeps its number) and may move tags such
as ``latest``, ``staging`` and ``stable``. Tags are ``index.json`` entries annotated
``org.opencontainers.image.ref.name``, one entry per tag, so ``skopeo inspect oci:DIR:stable``
and ``umoci ls --layout DIR`` read them. A multi-arch image also gets one entry per platform
(``stable-amd64``; umoci calls a tag on a multi-arch index ambiguous, see ``oci_layout.py``).

Blobs are content-addressed and never removed, so a digest a tag left stays readable.
Writers of one layout serialize on ``<layout>/.lock``; ``index.json`` is replaced atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import ImageError
from nanodistro.formats.oci import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_INDEX,
    OCI_LAYOUT_FILE,
    Platform,
    canonical_json,
    media_type_of,
    sha256_digest,
)
from nanodistro.image.oci_layout import Layout, platform_ref_name
from nanodistro.util.atomic import atomic_write_bytes, atomic_writer
from nanodistro.util.progress import Progress

__all__ = [
    "BUILD_TAG",
    "MOVING_TAGS",
    "AddedBuild",
    "add_to_layout",
    "list_tags",
    "push_tags",
    "set_tag",
    "tag_digest",
]

#: ``build-<N>``: set once per build, never moved.
BUILD_TAG = re.compile(r"^build-([1-9][0-9]*)$")
MOVING_TAGS = ("latest", "staging", "stable")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # the distribution spec's tag grammar
_LOCK = ".lock"
_READ_SIZE = 1 << 20
_MAX_DOCUMENT = 4 << 20

Entry = dict[str, Any]


@dataclass(frozen=True)
class AddedBuild:
    """What :func:`add_to_layout` did."""

    digest: str  # the image (index or manifest) digest
    build_tag: str  # build-<N>
    number: int
    tags: tuple[str, ...]  # the moving tags now pointing at ``digest``
    new: bool  # False when the layout already had this digest under a build tag
    #: tag -> digest it pointed at before it moved (absent: the tag is new)
    previous: dict[str, str]


# -- index.json --------------------------------------------------------------------------------


def _check_tag(tag: str) -> None:
    if not _TAG.match(tag):
        raise ImageError(
            f"invalid tag {tag!r}: expected letters, digits, '_', '.', '-' (at most 128, "
            "not starting with '.' or '-')",
            field="tag",
        )


def _read_entries(layout: Path) -> list[Entry]:
    path = layout / "index.json"
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ImageError(f"unreadable index.json ({error})", where=str(path)) from None
    manifests = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(e, dict) for e in manifests):
        raise ImageError("index.json has no 'manifests' list of descriptors", where=str(path))
    return manifests


def _write_entries(layout: Path, entries: list[Entry]) -> None:
    document = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}
    atomic_write_bytes(layout / "index.json", canonical_json(document))


def _ref_name(entry: Entry) -> str | None:
    annotations = entry.get("annotations")
    value = annotations.get(ANNOTATION_REF_NAME) if isinstance(annotations, dict) else None
    return value if isinstance(value, str) else None


def _platform(entry: Entry) -> Platform | None:
    value = entry.get("platform")
    if not isinstance(value, dict) or not value.get("architecture"):
        return None
    return Platform.from_dict(value, where="index.json")


def _belongs_to(entry: Entry, tag: str) -> bool:
    """The entry is ``tag`` itself or one of its per-platform names (``tag-amd64``)."""
    name = _ref_name(entry)
    if name == tag:
        return True
    platform = _platform(entry)
    return platform is not None and name == platform_ref_name(tag, platform)


def list_tags(layout: Path) -> dict[str, str]:
    """tag -> digest for every tag of ``layout`` (per-platform names left out, and the
    ``sha256-<hex>.sig``/``.att`` entries holding signatures: they name no image)."""
    from nanodistro.registry.layout import is_attachment

    entries = [e for e in _read_entries(Path(layout)) if not is_attachment(e)]
    names = {_ref_name(e): e for e in entries}
    tags: dict[str, str] = {}
    for name, entry in names.items():
        if name is None:
            continue
        platform = _platform(entry)
        if platform is not None and any(
            name == platform_ref_name(other, platform)
            for other in names
            if other is not None and other != name and names[other].get("platform") is None
        ):
            continue
        tags[name] = str(entry.get("digest"))
    return dict(sorted(tags.items()))


def tag_digest(layout: Path, tag: str) -> str | None:
    """The digest ``tag`` points at in ``layout``; None when the layout has no such tag."""
    for entry in _read_entries(Path(layout)):
        if _ref_name(entry) == tag:
            return str(entry.get("digest"))
    return None


# -- blobs -------------------------------------------------------------------------------------


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or not re.fullmatch(r"[0-9a-f]{64,128}", hexdigest):
        raise ImageError(f"invalid digest {digest!r}", where=str(layout))
    return layout / "blobs" / algorithm / hexdigest


def _read_document(layout: Path, digest: str) -> bytes:
    path = _blob_path(layout, digest)
    try:
        if path.stat().st_size > _MAX_DOCUMENT:
            raise ImageError(f"manifest {digest} is larger than 4 MiB", where=str(layout))
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"layout has no blob {digest}", where=str(layout)) from None
    algorithm = digest.partition(":")[0]
    if f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}" != digest:
        raise ImageError(f"blob {digest} does not match its digest", where=str(path))
    return data


def _copy_blob(source: Path, layout: Path, algorithm: str) -> str | None:
    """Copy one blob file in, verifying its name against its content; None if already there.
    The source is opened without following links (a build's output is not trusted to point
    only inside itself)."""
    digest = f"{algorithm}:{source.name}"
    target = _blob_path(layout, digest)
    if target.is_file():
        return None
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ImageError(f"cannot read blob ({error.strerror})", where=str(source)) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ImageError("blob is not a regular file", where=str(source))
        hasher = hashlib.new(algorithm)
        with atomic_writer(target) as out:
            while chunk := handle.read(_READ_SIZE):
                hasher.update(chunk)
                out.write(chunk)
            if hasher.hexdigest() != source.name:
                # raising inside the writer discards the temporary file
                raise ImageError(
                    f"blob content has digest {algorithm}:{hasher.hexdigest()}", where=str(source)
                )
    return digest


def _check_complete(layout: Path, digest: str, media_type: str) -> None:
    """Every blob the image reaches is in the layout (so a tag never names a broken image)."""
    pending = [(digest, media_type)]
    seen: set[str] = set()
    while pending:
        current, kind = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if kind not in INDEX_TYPES and kind not in MANIFEST_TYPES:
            if not _blob_path(layout, current).is_file():
                raise ImageError(f"layout has no blob {current}", where=str(layout))
            continue
        document = json.loads(_read_document(layout, current))
        children = document.get("manifests", []) if kind in INDEX_TYPES else []
        if kind in MANIFEST_TYPES:
            children = [document.get("config"), *document.get("layers", [])]
        for child in children:
            if not isinstance(child, dict) or not isinstance(child.get("digest"), str):
                raise ImageError(
                    f"{current} lists a descriptor without a digest", where=str(layout)
                )
            if child.get("urls") and not _blob_path(layout, child["digest"]).is_file():
                continue  # non-distributable layer, fetched from its urls
            pending.append((child["digest"], str(child.get("mediaType", ""))))


# -- writing -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(layout: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold ``<layout>/.lock``; the kernel releases it when the holder dies."""
    layout.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ImageError(
                        f"layout is locked by another writer for more than {timeout:g} s",
                        where=str(layout / _LOCK),
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _ensure_layout(layout: Path) -> None:
    marker = layout / "oci-layout"
    if not marker.exists():
        atomic_write_bytes(marker, OCI_LAYOUT_FILE)
    elif json.loads(marker.read_bytes()).get("imageLayoutVersion") != "1.0.0":
        raise ImageError("not an OCI image layout 1.0.0", where=str(marker))


def _descriptor_for(layout: Path, entries: list[Entry], digest: str) -> Entry:
    """A bare descriptor of ``digest``: from an entry that already names it, else its blob."""
    for entry in entries:
        if entry.get("digest") == digest:
            return {k: entry[k] for k in ("mediaType", "digest", "size", "platform") if k in entry}
    data = _read_document(layout, digest)
    media_type = media_type_of(data, where=f"{layout}@{digest}")
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _platform_children(layout: Path, descriptor: Entry) -> list[Entry]:
    """The per-platform manifests of a multi-arch index (two or more), else none."""
    if descriptor["mediaType"] not in INDEX_TYPES:
        return []
    document = json.loads(_read_document(layout, descriptor["digest"]))
    children = [
        {k: c[k] for k in ("mediaType", "digest", "size", "platform") if k in c}
        for c in document.get("manifests", [])
        if isinstance(c, dict) and isinstance(c.get("platform"), dict)
    ]
    return children if len(children) > 1 else []


def _named(descriptor: Entry, name: str) -> Entry:
    return {**descriptor, "annotations": {ANNOTATION_REF_NAME: name}}


def _point(layout: Path, entries: list[Entry], tag: str, descriptor: Entry) -> list[Entry]:
    """``entries`` with ``tag`` (and its platform names) moved to ``descriptor``."""
    kept = [e for e in entries if not _belongs_to(e, tag)]
    added = [_named(descriptor, tag)]
    for child in _platform_children(layout, descriptor):
        platform = Platform.from_dict(child["platform"], where=str(layout))
        added.append(_named(child, platform_ref_name(tag, platform)))
    return kept + added


def _refuse_build_tag_move(entries: list[Entry], tag: str, digest: str) -> None:
    if BUILD_TAG.match(tag):
        current = next((e.get("digest") for e in entries if _ref_name(e) == tag), None)
        if current is not None and current != digest:
            raise ImageError(
                f"{tag} is immutable: it names {current}, refusing {digest}", field="tag"
            )


def set_tag(layout: Path, tag: str, digest: str) -> str | None:
    """Point ``tag`` at ``digest`` (already in the layout); return the digest it pointed at
    before (None when new). A ``build-<N>`` tag never moves."""
    layout = Path(layout)
    _check_tag(tag)
    with _locked(layout):
        entries = _read_entries(layout)
        _refuse_build_tag_move(entries, tag, digest)
        descriptor = _descriptor_for(layout, entries, digest)
        _check_complete(layout, digest, descriptor["mediaType"])
        before = next((str(e.get("digest")) for e in entries if _ref_name(e) == tag), None)
        if before != digest:
            _write_entries(layout, _point(layout, entries, tag, descriptor))
        return before


def _built_top(built: Path) -> tuple[Entry, bytes | None]:
    """The image a built layout holds: its root entry, or (apko's flat layouts) its index.json
    itself, returned as bytes to store as a blob."""
    reader = Layout(built)
    digest = reader.top_digest()
    for descriptor in reader.index():
        if descriptor.digest == digest:
            entry = descriptor.to_dict()
            entry.pop("annotations", None)
            return entry, None
    data = reader.read("index.json")
    return {"mediaType": MEDIA_INDEX, "digest": sha256_digest(data), "size": len(data)}, data


def add_to_layout(
    layout: Path,
    built_layout: Path,
    tags: Sequence[str] = (),
    *,
    progress: Progress | None = None,
) -> AddedBuild:
    """Merge the image in ``built_layout`` (as ``image build --out DIR`` writes it) into the
    persistent ``layout`` (created if missing): copy its blobs in, tag it ``build-<N>`` and
    move each of ``tags`` to it. Adding the same image again keeps its build number."""
    layout, built = Path(layout), Path(built_layout)
    say = progress or (lambda _message: None)
    for tag in tags:
        _check_tag(tag)
        if BUILD_TAG.match(tag):
            raise ImageError(f"{tag}: build tags are assigned, not given", field="tags")
    top, top_bytes = _built_top(built)
    digest = str(top["digest"])
    with _locked(layout):
        _ensure_layout(layout)
        blobs = built / "blobs"
        for algorithm in ("sha256", "sha512"):
            directory = blobs / algorithm
            if not directory.is_dir() or directory.is_symlink():
                continue
            for source in sorted(directory.iterdir()):
                if _copy_blob(source, layout, algorithm):
                    say(f"added {algorithm}:{source.name}")
        if top_bytes is not None and not _blob_path(layout, digest).is_file():
            atomic_write_bytes(_blob_path(layout, digest), top_bytes)
        _check_complete(layout, digest, str(top["mediaType"]))

        entries = _read_entries(layout)
        numbers = {
            int(match.group(1)): str(e.get("digest"))
            for e in entries
            if (match := BUILD_TAG.match(_ref_name(e) or ""))
        }
        existing = sorted(n for n, d in numbers.items() if d == digest)
        new = not existing
        number = existing[-1] if existing else max(numbers, default=0) + 1
        build_tag = f"build-{number}"
        if new:
            entries = _point(layout, entries, build_tag, top)
        previous: dict[str, str] = {}
        for tag in tags:
            before = next((str(e.get("digest")) for e in entries if _ref_name(e) == tag), None)
            if before is not None and before != digest:
                previous[tag] = before
            entries = _point(layout, entries, tag, top)
        _write_entries(layout, entries)
    say(f"{build_tag} {digest}" + "".join(f", {t}" for t in tags))
    return AddedBuild(digest, build_tag, number, tuple(tags), new, previous)


# -- registry ----------------------------------------------------------------------------------


def push_tags(
    layout: Path,
    tag: str,
    registry_ref: str,
    tags: Sequence[str],
    *,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    docker_config: Path | None = None,
    plain_http: bool | None = None,
    progress: Progress | None = None,
) -> str:
    """Push the image ``tag`` names in ``layout`` to ``registry_ref`` (``host[:port]/repo``,
    no tag) under each of ``tags``; return its digest. Blobs and the manifest go first (once),
    then each tag is a manifest PUT of the same bytes, so a tag that moves leaves the digest it
    named before in the registry, still pullable by digest."""
    from nanodistro.registry import RegistryClient, parse_reference, push_layout

    layout = Path(layout)
    if not tags:
        raise ImageError("no tags to push", field="tags")
    for name in tags:
        _check_tag(name)
    base = parse_reference(registry_ref)
    if "@" in registry_ref or ":" in registry_ref.rsplit("/", 1)[-1]:
        raise ImageError(
            "give the repository without a tag or digest (tags come from the list)",
            where=registry_ref,
        )
    digest = tag_digest(layout, tag)
    if digest is None:
        raise ImageError(f"layout has no tag {tag!r}", where=str(layout))
    first, *rest = tags
    pushed = push_layout(
        layout,
        f"{registry_ref}:{first}",
        insecure=insecure,
        username=username,
        password=password,
        progress=progress,
        ref_name=tag,
        docker_config=docker_config,
        plain_http=plain_http,
    )
    if pushed != digest:  # push_layout selects by ref name too; a mismatch is a bug
        raise ImageError(f"pushed {pushed}, expected {digest}", where=str(layout))
    if rest:
        data = _read_document(layout, digest)
        media_type = _descriptor_for(layout, _read_entries(layout), digest)["mediaType"]
        with RegistryClient(
            base.api_host,
            insecure=insecure,
            plain_http=plain_http,
            username=username,
            password=password,
            docker_config=docker_config,
        ) as client:
            for name in rest:
                client.put_manifest(base.repository, name, data, media_type)
                if progress:
                    progress(f"tagged {base.registry}/{base.repository}:{name}")
    return digest
