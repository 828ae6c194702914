"""What the console and the API say about images: the list, one image's history (tags, digests,
sizes, events), package diffs between builds, signature/attestation status and vulnerabilities.

The list reads the ``images`` table once (grouped by name) and each layout's ``index.json``
(a small file: tags and signature entries); compressed sizes come from the manifests only and are
kept per (layout, digest), a digest naming the same bytes forever. Only the detail reads more of
one layout: signatures are verified and the image's packages scanned (cached per digest and OSV
data).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from nanodistro.errors import NanodistroError, VersionError
from nanodistro.factory import events
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import EventRow, ImageRow
from nanodistro.factory.workspace import Workspace
from nanodistro.formats.version import split_name_version

__all__ = [
    "ImageDetail",
    "ImageSummary",
    "PackageDiff",
    "UnknownImage",
    "UnknownVersion",
    "image_detail",
    "image_diff",
    "list_images",
]

MOVING = ("stable", "staging", "latest")
HISTORY_LIMIT = 200  # builds and events shown for one image
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_SIGNATURE_TAG = re.compile(r"^(sha256)-([0-9a-f]{64})\.sig$")


class UnknownImage(LookupError):
    """No layout and no recorded build has that name."""


class UnknownVersion(LookupError):
    """The image has no recorded build with that digest."""


# ------------------------------------------------------------------------------------ models


class ImageSummary(BaseModel):
    name: str
    stable_digest: str | None = Field(description="What the layout's `stable` tag names.")
    staging_digest: str | None = Field(description="What the layout's `staging` tag names.")
    size: int | None = Field(
        description="Compressed bytes (manifest, config, layers) of the host arch's image of "
        "the stable digest (staging when nothing is stable); None without a layout."
    )
    last_built: datetime | None
    builds: int = Field(description="Builds recorded in the factory's state.")
    signed: bool = Field(description="The stable digest has a signature in its layout.")


class ImageVersion(BaseModel):
    digest: str
    tag: str = Field(description="The immutable build tag (build-N) it got.")
    tags: list[str] = Field(description="Moving tags (stable, staging, latest) naming it now.")
    repo_version: int | None
    created_at: datetime
    packages: int
    size: int | None = Field(description="Compressed bytes; None once the layout lacks it.")


class ImageEvent(BaseModel):
    id: int
    type: str
    time: datetime
    digest: str | None
    previous: str | None
    tag: str | None
    cycle: str | None


class PackageChange(BaseModel):
    name: str
    old: str | None
    new: str | None


class PackageDiff(BaseModel):
    name: str
    from_digest: str
    to_digest: str
    added: list[PackageChange]
    removed: list[PackageChange]
    changed: list[PackageChange]
    unchanged: int


class Attestation(BaseModel):
    kind: Literal["slsaprovenance1", "spdxjson", "cyclonedx"]
    present: bool


class SignatureStatus(BaseModel):
    digest: str | None = Field(description="The stable digest checked (None: nothing stable).")
    public_key: str | None = Field(description="The key checked against (keys/cosign.pub).")
    signed: bool = Field(description="At least one signature verifies with the key.")
    detail: str
    attestations: list[Attestation]


class Vulnerability(BaseModel):
    id: str
    aliases: list[str]
    package: str
    version: str
    severity: str
    score: float | None
    fixed_in: str
    summary: str
    status: str
    annotation: str


class VulnerabilityStatus(BaseModel):
    digest: str | None
    available: bool = Field(description="False when there is no OSV data or nothing to scan.")
    note: str
    findings: list[Vulnerability]
    suppressed: int = Field(description="Findings an advisory marks fixed or false positive.")


class ImageDetail(BaseModel):
    summary: ImageSummary
    versions: list[ImageVersion] = Field(description="Builds, newest first.")
    events: list[ImageEvent] = Field(description="image-built, promoted, rolled-back; newest first")
    diff: PackageDiff | None = Field(description="The previous build against the newest.")
    signatures: SignatureStatus
    vulnerabilities: VulnerabilityStatus


# ----------------------------------------------------------------------------- layout reads


@dataclass(frozen=True)
class _Tags:
    tags: dict[str, str]  # tag -> digest (moving and build tags)
    signed: frozenset[str]  # digests with a sha256-<hex>.sig entry


def _layout_dir(workspace: Workspace, name: str) -> Path | None:
    """The layout directory of image ``name`` (names are checked: never a path)."""
    if not _NAME.match(name):
        return None
    layout = workspace.image_out_dir / name
    return layout if (layout / "index.json").is_file() else None


def _read_tags(layout: Path | None) -> _Tags:
    """Tags and signed digests from one read of ``index.json``; empty when unreadable."""
    from nanodistro.image.tags import list_tags
    from nanodistro.registry.layout import ref_name_of

    if layout is None:
        return _Tags({}, frozenset())
    try:
        tags = list_tags(layout)
        entries = json.loads((layout / "index.json").read_bytes()).get("manifests", [])
    except (NanodistroError, OSError, ValueError, AttributeError):
        return _Tags({}, frozenset())
    signed = set()
    for entry in entries if isinstance(entries, list) else []:
        match = _SIGNATURE_TAG.match(ref_name_of(entry) or "") if isinstance(entry, dict) else None
        if match:
            signed.add(f"{match[1]}:{match[2]}")
    return _Tags(tags, frozenset(signed))


_SIZES: dict[tuple[str, str], int | None] = {}
_SIZES_LOCK = threading.Lock()


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or not re.fullmatch(r"[0-9a-f]{64,128}", encoded):
        raise ValueError(digest)
    path = layout / "blobs" / algorithm / encoded
    if path.stat().st_size > 4 << 20:  # a manifest, not a layer
        raise ValueError(digest)
    return path.read_bytes()


def compressed_size(layout: Path, digest: str) -> int | None:
    """Compressed bytes of the host arch's image under ``digest`` (what a pull transfers):
    the manifest, its config and layers as the manifest sizes them, no layer read. None when
    the layout lacks the digest. Kept per (layout, digest): the bytes of a digest never change."""
    from nanodistro.imageconfig.arch import APK_TO_OCI
    from nanodistro.util.host import host_arch

    key = (str(layout), digest)
    with _SIZES_LOCK:
        if key in _SIZES:
            return _SIZES[key]
    wanted = APK_TO_OCI.get(host_arch(), host_arch()).split("/", 1)[0]
    size: int | None = None
    pending: list[dict[str, Any]] = [{"digest": digest}]
    try:
        while pending and size is None:
            descriptor = pending.pop(0)
            raw = _blob(layout, str(descriptor["digest"]))
            document = json.loads(raw)
            if "manifests" in document:
                pending.extend(d for d in document["manifests"] if isinstance(d, dict))
                continue
            platform = descriptor.get("platform") or {}
            if platform and platform.get("architecture") != wanted:
                continue
            layers = document.get("layers", [])
            size = len(raw) + int(document["config"]["size"])
            size += sum(int(layer["size"]) for layer in layers)
    except (OSError, ValueError, KeyError, TypeError):
        size = None
    with _SIZES_LOCK:
        _SIZES[key] = size
    return size


# ------------------------------------------------------------------------------------ list


def _names(workspace: Workspace, recorded: set[str]) -> list[str]:
    found = set(recorded)
    if workspace.image_out_dir.is_dir():
        found |= {
            p.name
            for p in workspace.image_out_dir.iterdir()
            if _NAME.match(p.name) and (p / "index.json").is_file()
        }
    return sorted(n for n in found if _NAME.match(n))


def _summary(
    workspace: Workspace, name: str, last_built: datetime | None, builds: int
) -> ImageSummary:
    layout = _layout_dir(workspace, name)
    tags = _read_tags(layout)
    stable, staging = tags.tags.get("stable"), tags.tags.get("staging")
    shown = stable or staging
    return ImageSummary(
        name=name,
        stable_digest=stable,
        staging_digest=staging,
        size=compressed_size(layout, shown) if layout is not None and shown else None,
        last_built=last_built,
        builds=builds,
        signed=stable is not None and stable in tags.signed,
    )


def list_images(workspace: Workspace, state: State) -> list[ImageSummary]:
    """Every image with a layout or a recorded build: one grouped query, one index.json each."""
    statement = select(ImageRow.name, func.max(ImageRow.created_at), func.count()).group_by(
        ImageRow.name
    )
    with state.session() as session:
        recorded = {name: (last, count) for name, last, count in session.execute(statement)}
    return [
        _summary(workspace, name, *recorded.get(name, (None, 0)))
        for name in _names(workspace, set(recorded))
    ]


# ---------------------------------------------------------------------------------- detail


def _rows(state: State, name: str) -> list[ImageRow]:
    """The image's builds, newest first (bounded)."""
    statement = (select(ImageRow).where(ImageRow.name == name).order_by(ImageRow.id.desc())).limit(
        HISTORY_LIMIT
    )
    with state.session() as session:
        rows = list(session.scalars(statement))
        session.expunge_all()
    return rows


def _image_events(state: State, name: str) -> list[ImageEvent]:
    wanted = (events.IMAGE_BUILT, events.PROMOTED, events.ROLLED_BACK)
    statement = (
        select(EventRow)
        .where(EventRow.subject == f"image:{name}", EventRow.type.in_(wanted))
        .order_by(EventRow.id.desc())
        .limit(HISTORY_LIMIT)
    )

    def text(payload: dict[str, Any], key: str) -> str | None:
        value = payload.get(key)
        return str(value) if value is not None else None

    with state.session() as session:
        return [
            ImageEvent(
                id=row.id,
                type=row.type,
                time=row.time,
                digest=text(row.payload, "digest"),
                previous=text(row.payload, "previous"),
                tag=text(row.payload, "tag"),
                cycle=text(row.payload, "cycle"),
            )
            for row in session.scalars(statement)
        ]


def _split(package: str) -> tuple[str, str]:
    try:
        return split_name_version(package)
    except VersionError:
        return package, ""


def diff_packages(name: str, old: ImageRow, new: ImageRow) -> PackageDiff:
    """What changed between two builds' package lists ("name-version")."""
    before = dict(_split(p) for p in old.packages or [])
    after = dict(_split(p) for p in new.packages or [])
    added, removed, changed = [], [], []
    unchanged = 0
    for package in sorted(set(before) | set(after)):
        a, b = before.get(package), after.get(package)
        if a is None:
            added.append(PackageChange(name=package, old=None, new=b))
        elif b is None:
            removed.append(PackageChange(name=package, old=a, new=None))
        elif a != b:
            changed.append(PackageChange(name=package, old=a, new=b))
        else:
            unchanged += 1
    return PackageDiff(
        name=name,
        from_digest=old.digest,
        to_digest=new.digest,
        added=added,
        removed=removed,
        changed=changed,
        unchanged=unchanged,
    )


def _known(workspace: Workspace, name: str, rows: list[ImageRow]) -> Path | None:
    layout = _layout_dir(workspace, name)
    if layout is None and not rows:
        raise UnknownImage(
            f"no image {name!r}: no layout in {workspace.image_out_dir} and no build"
        )
    return layout


def image_diff(
    workspace: Workspace,
    state: State,
    name: str,
    from_digest: str | None = None,
    to_digest: str | None = None,
) -> PackageDiff | None:
    """The package diff between two recorded builds (default: the previous against the newest;
    None when there is no build). UnknownImage / UnknownVersion name what was not found."""
    rows = _rows(state, name)
    _known(workspace, name, rows)
    if not rows:
        return None
    by_digest = {row.digest: row for row in rows}
    for digest in (from_digest, to_digest):
        if digest is not None and digest not in by_digest:
            raise UnknownVersion(f"image {name!r} has no recorded build {digest!r}")
    new = by_digest[to_digest] if to_digest else rows[0]
    if from_digest:
        old = by_digest[from_digest]
    else:
        older = [r for r in rows if r.id < new.id]
        old = older[0] if older else new
    return diff_packages(name, old, new)


def image_detail(
    workspace: Workspace,
    state: State,
    name: str,
    *,
    from_digest: str | None = None,
    to_digest: str | None = None,
) -> ImageDetail:
    rows = _rows(state, name)
    layout = _known(workspace, name, rows)
    tags = _read_tags(layout)
    by_digest: dict[str, list[str]] = {}
    for tag in MOVING:
        if tag in tags.tags:
            by_digest.setdefault(tags.tags[tag], []).append(tag)
    versions = [
        ImageVersion(
            digest=row.digest,
            tag=row.tag,
            tags=by_digest.get(row.digest, []),
            repo_version=row.repo_version,
            created_at=row.created_at,
            packages=len(row.packages or []),
            size=compressed_size(layout, row.digest) if layout is not None else None,
        )
        for row in rows
    ]
    summary = _summary(workspace, name, rows[0].created_at if rows else None, _count(state, name))
    stable = summary.stable_digest
    return ImageDetail(
        summary=summary,
        versions=versions,
        events=_image_events(state, name),
        diff=image_diff(workspace, state, name, from_digest, to_digest),
        signatures=signature_status(workspace, layout, stable),
        vulnerabilities=vulnerability_status(workspace, layout, stable or summary.staging_digest),
    )


def _count(state: State, name: str) -> int:
    with state.session() as session:
        return int(
            session.scalar(select(func.count()).select_from(ImageRow).where(ImageRow.name == name))
            or 0
        )


# ------------------------------------------------------------------------- signatures


_KINDS: tuple[Literal["slsaprovenance1", "spdxjson", "cyclonedx"], ...] = (
    "slsaprovenance1",
    "spdxjson",
    "cyclonedx",
)


def signature_status(
    workspace: Workspace, layout: Path | None, digest: str | None
) -> SignatureStatus:
    """Whether the stable digest carries a signature valid for ``keys/cosign.pub`` and which of
    the SLSA provenance, SPDX and CycloneDX attestations verify with it."""
    from nanodistro.image.signatures import (
        layout_target,
        verify_attestations,
        verify_image_signatures,
    )
    from nanodistro.trust.cosign import predicate_type_uri

    missing = [Attestation(kind=k, present=False) for k in _KINDS]
    key = workspace.keys_dir / "cosign.pub"
    shown_key = str(key) if key.is_file() else None
    if layout is None or digest is None:
        return SignatureStatus(
            digest=None, public_key=shown_key, signed=False,
            detail="nothing is stable yet", attestations=missing,
        )  # fmt: skip
    if shown_key is None:
        return SignatureStatus(
            digest=digest, public_key=None, signed=False,
            detail=f"no public key {key} to check against", attestations=missing,
        )  # fmt: skip
    try:
        pem = key.read_bytes()
        target = layout_target(layout, "stable")
    except (OSError, NanodistroError) as error:
        return SignatureStatus(
            digest=digest, public_key=shown_key, signed=False, detail=str(error),
            attestations=missing,
        )  # fmt: skip
    try:
        checks = verify_image_signatures(target, pem)
        signed, detail = True, f"{len(checks)} valid signature(s) ({checks[0].source})"
    except NanodistroError as error:
        signed, detail = False, error.message
    try:
        statements = verify_attestations(target, pem)
    except NanodistroError:
        statements = []
    types = {str(s.get("predicateType")) for s in statements}
    attestations = [Attestation(kind=k, present=predicate_type_uri(k) in types) for k in _KINDS]
    return SignatureStatus(
        digest=digest, public_key=shown_key, signed=signed, detail=detail,
        attestations=attestations,
    )  # fmt: skip


# ---------------------------------------------------------------------- vulnerabilities


_SCANS: dict[tuple[Any, ...], VulnerabilityStatus] = {}
_SCANS_LOCK = threading.Lock()


# Walking the OSV folder (tens of thousands of files) for every image page is not free: its
# stamp is taken again at most this often.
_STAMP_SECONDS = 10.0
_STAMPS: dict[Path, tuple[float, tuple[int, int]]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    from nanodistro.factory.vulnerabilities import content_stamp

    now = time.monotonic()
    with _SCANS_LOCK:
        held = _STAMPS.get(path)
        if held is not None and now - held[0] < _STAMP_SECONDS:
            return held[1]
    stamp = content_stamp(path)
    with _SCANS_LOCK:
        _STAMPS[path] = (now, stamp)
    return stamp


def vulnerability_status(
    workspace: Workspace, layout: Path | None, digest: str | None
) -> VulnerabilityStatus:
    """The image's packages scanned against the workspace's OSV data with its advisories
    applied (as the factory's triage does); kept until the digest, the data or the advisories
    change."""
    osv = workspace.vulnerabilities_osv
    if osv is None or not osv.exists():
        return VulnerabilityStatus(
            digest=digest,
            available=False,
            note=f"no OSV data at {osv} (`nanodistro vuln update` fetches it)",
            findings=[],
            suppressed=0,
        )
    if layout is None or digest is None:
        return VulnerabilityStatus(
            digest=None, available=False, note="no image to scan", findings=[], suppressed=0
        )
    key = (str(layout), digest, _stamp(osv), _stamp(workspace.advisories_dir))
    with _SCANS_LOCK:
        if key in _SCANS:
            return _SCANS[key]
    status = _scan(workspace, layout, digest)
    with _SCANS_LOCK:
        if len(_SCANS) > 64:
            _SCANS.clear()
        _SCANS[key] = status
    return status


def _scan(workspace: Workspace, layout: Path, digest: str) -> VulnerabilityStatus:
    # the factory's loader and scan: the OSV database read once while unchanged, advisories,
    # recipes' git sources and the distro name, exactly as its triage and gate see them
    from nanodistro.factory.vulnerabilities import VulnerabilityReport, scan_image, scan_inputs
    from nanodistro.image.tags import list_tags

    report = VulnerabilityReport()
    try:
        inputs = scan_inputs(workspace, report)
        if inputs is None:
            return VulnerabilityStatus(
                digest=digest, available=False, note=report.note, findings=[], suppressed=0
            )
        tag = next((t for t, d in sorted(list_tags(layout).items()) if d == digest), None)
        if tag is None:
            raise LookupError(f"no tag names {digest} in {layout}")
        findings = scan_image(inputs, layout, tag)
    except (NanodistroError, LookupError, OSError) as error:
        return VulnerabilityStatus(
            digest=digest, available=False, note=f"scan failed: {error}", findings=[], suppressed=0
        )
    seen: dict[tuple[str, str, str], Vulnerability] = {}
    suppressed = 0
    for finding in findings:
        if finding.suppressed:
            suppressed += 1
            continue
        component = finding.component
        seen.setdefault(
            (finding.vuln_id, component.name, component.version),
            Vulnerability(
                id=finding.vuln_id,
                aliases=list(finding.aliases),
                package=component.name,
                version=component.version,
                severity=finding.severity,
                score=finding.score,
                fixed_in=finding.fixed_in,
                summary=finding.summary,
                status=finding.status,
                annotation=finding.annotation,
            ),
        )
    return VulnerabilityStatus(
        digest=digest,
        available=True,
        note=f"scanned {layout.name}@{digest[:19]} against {workspace.vulnerabilities_osv}",
        findings=list(seen.values()),
        suppressed=suppressed,
    )
