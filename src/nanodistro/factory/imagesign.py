"""The factory signs and attests every image it promotes and pushes (cosign-compatible,
image/signatures.py).

With the workspace key ``keys/cosign.key`` (created when missing; password $COSIGN_PASSWORD, empty
when unset) each image gets one signature and attestations, all about the same digest:

* ``slsaprovenance1``: the SLSA provenance the image job recorded when it built that digest
  (``record_image_provenance``, kept as ``<layout>/provenance/sha256-<hex>.intoto.json``; the
  subject is renamed to the target's name, registry/repository or layout, when attested);
* ``spdxjson`` and ``cyclonedx``: the SBOMs image/sbomstore.py keeps for that digest (the
  index's and each architecture's);

plus any further statements ``extra`` makes. Targets are the pushed image in the registry
(``sign_pushed_image``) and the promoted image in its OCI layout (``sign_layout_image``), so
``nanodistro verify out/images/<name>:stable`` works without a registry. Both are idempotent:
signing or attesting the same digest again (a later promotion, a rollback) adds nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro.errors import FormatError
from nanodistro.factory.workspace import Workspace
from nanodistro.image.signatures import Target
from nanodistro.util.progress import Progress

if TYPE_CHECKING:
    from nanodistro.image.build import BuildResult
    from nanodistro.trust.ecdsa import EcdsaSigner

__all__ = [
    "StatementMaker",
    "provenance_file",
    "record_image_provenance",
    "sign_layout_image",
    "sign_pushed_image",
]

#: Makes more in-toto statements about a pushed image (its subject must be ``target``).
StatementMaker = Callable[[Target], Sequence[Mapping[str, Any]]]

#: SBOM file suffixes (image/sbom.py, image/cyclonedx.py names) attested, by cosign type name.
_SBOMS = (("spdxjson", ".spdx.json"), ("cyclonedx", ".cdx.json"))


def provenance_file(layout: Path, digest: str) -> Path:
    """``<layout>/provenance/sha256-<hex>.intoto.json``: the statement recorded for ``digest``."""
    from nanodistro.registry.reference import validate_digest

    validate_digest(digest, where=str(layout))
    return Path(layout) / "provenance" / f"{digest.replace(':', '-', 1)}.intoto.json"


def _workspace_uri(workspace: Workspace, location: str) -> str:
    """A local repository path as the workspace names it (``out/packages/versions/3/...``: the
    channel link resolved, so the URI says which repository version); URLs unchanged."""
    path = Path(location)
    if "://" in location or not path.is_absolute():
        return location
    try:
        return path.resolve().relative_to(workspace.root.resolve()).as_posix()
    except ValueError:
        return location


def _file_sha256(location: str) -> str | None:
    path = Path(location)
    if "://" in location or not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_image_provenance(
    workspace: Workspace,
    layout: Path,
    config_path: Path,
    config_bytes: bytes,
    result: BuildResult,
    repositories: Sequence[str],
    *,
    started: datetime.datetime,
    finished: datetime.datetime,
    invocation_id: str,
) -> Path:
    """Write the SLSA provenance of the build ``result`` (the image job, right after building):
    the config's bytes, every installed package (APK identity, sha256 of the file) and the
    repositories. The first build of a digest is its record: a later build giving the same
    digest keeps it, so the attested statement never changes for a digest."""
    from nanodistro.builder.provenance import builder_id_for
    from nanodistro.image.lock import LockedPackage
    from nanodistro.image.provenance import ImageInputs, image_provenance_statement
    from nanodistro.util.atomic import atomic_write_bytes

    path = provenance_file(layout, result.digest)
    if path.is_file():
        return path
    packages = []
    hashes: dict[str, str] = {}
    for arch, fetched in sorted(result.fetched.items()):
        for item in fetched:
            packages.append(
                LockedPackage.from_apk(
                    item.apk,
                    url=_workspace_uri(workspace, item.url),
                    arch=arch,
                    repository=_workspace_uri(workspace, item.repository),
                )
            )
            sha256 = _file_sha256(item.url)
            if sha256 is not None:
                hashes[f"{arch}/{item.apk.name}-{item.apk.version}"] = sha256
    try:
        config_name = config_path.resolve().relative_to(workspace.root.resolve()).as_posix()
    except ValueError:
        config_name = config_path.name
    statement = image_provenance_statement(
        ImageInputs(
            name=layout.name,
            digest=result.digest,
            config_path=config_name,
            config_bytes=config_bytes,
            packages=packages,
            repositories=[_workspace_uri(workspace, r) for r in repositories],
            archs=sorted(result.fetched),
            package_sha256=hashes,
            builder_id=builder_id_for(workspace.name),
            started=started,
            finished=finished,
            invocation_id=invocation_id,
        )
    )
    atomic_write_bytes(path, statement.to_bytes())
    return path


def _load_json(data: bytes, what: str, where: Path) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FormatError(f"stored {what} is not JSON", where=str(where)) from None
    if not isinstance(document, dict):
        raise FormatError(f"stored {what} is not a JSON object", where=str(where))
    return document


def _stored_statements(layout: Path, digest: str, target: Target, say: Progress) -> list[Any]:
    """The provenance and SBOM statements recorded for ``digest``, about ``target``."""
    from nanodistro.image.sbomstore import read_sbom, sbom_dir
    from nanodistro.image.signatures import image_statement

    statements: list[Mapping[str, Any]] = []
    recorded = provenance_file(layout, digest)
    if recorded.is_file():
        statement = _load_json(recorded.read_bytes(), "provenance", recorded)
        _, _, encoded = digest.partition(":")
        if statement.get("subject") != [{"name": layout.name, "digest": {"sha256": encoded}}]:
            raise FormatError(f"stored provenance is not about {digest}", where=str(recorded))
        # The same claim about the same digest, named as cosign names the target.
        statements.append({**statement, "subject": [{"name": target.name, **_digest(digest)}]})
    else:
        say(f"no provenance recorded for {digest[:19]} in {layout}: not attested")
    directory = sbom_dir(layout, digest)
    kept = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    for kind, suffix in _SBOMS:
        # The index document names the per-arch images only; the per-arch documents list the
        # installed packages. All are attested on the digest pushed (the index), as apko keeps
        # them together, so one attestation lookup finds every package the image holds.
        names = sorted((n for n in kept if n.endswith(suffix)), key=lambda n: "index" not in n)
        if not names:
            say(f"no *{suffix} SBOM kept for {digest[:19]} in {layout}: not attested")
        for name in names:
            sbom = read_sbom(layout, digest, name)
            if sbom is not None:
                document = _load_json(sbom, "SBOM", directory / name)
                statements.append(image_statement(target, kind, document))
    return statements


def _digest(digest: str) -> dict[str, dict[str, str]]:
    algorithm, _, encoded = digest.partition(":")
    return {"digest": {algorithm: encoded}}


#: (fingerprint of the key file's bytes and the password, its signer): the last key loaded.
_loaded_signer: tuple[bytes, EcdsaSigner] | None = None


def _workspace_signer(workspace: Workspace, say: Progress) -> EcdsaSigner:
    """The signer of ``keys/cosign.key``, decrypted once while the file and $COSIGN_PASSWORD
    stay the same: scrypt takes ~0.7 s and a promotion signs each image in its layout and again
    in the registry. A changed key file or password is loaded afresh."""
    from nanodistro.factory.catalog import ensure_ecdsa_key
    from nanodistro.trust.cosignkey import load_signer, resolve_password

    global _loaded_signer
    path = ensure_ecdsa_key(workspace, say)
    try:
        data = path.read_bytes()
    except OSError:
        return load_signer(path)  # raises the KeyLoadError naming the file
    fingerprint = hashlib.sha256(data + b"\0" + resolve_password(None)).digest()
    if _loaded_signer is None or _loaded_signer[0] != fingerprint:
        _loaded_signer = (fingerprint, load_signer(path))
    return _loaded_signer[1]


def _sign_and_attest(
    workspace: Workspace,
    layout: Path,
    target: Target,
    *,
    say: Progress,
    extra: Sequence[StatementMaker],
) -> tuple[bool, str]:
    """(whether anything was added, what was done)."""
    from nanodistro.image.signatures import attest_image, sign_image

    signer = _workspace_signer(workspace, say)
    signed = sign_image(target, signer)
    statements = _stored_statements(layout, target.digest, target, say)
    for make in extra:
        statements.extend(make(target))
    attested = attest_image(target, signer, statements) if statements else None
    parts = ["signed" if signed.added else "signature kept"]
    added = bool(signed.added)
    if attested is not None:
        parts.append(f"{len(attested.added)} attestation(s) added, {len(attested.kept)} kept")
        added = added or bool(attested.added)
    return added, ", ".join(parts)


def sign_pushed_image(
    workspace: Workspace,
    layout: Path,
    repository_ref: str,
    digest: str,
    *,
    say: Progress,
    extra: Sequence[StatementMaker] = (),
) -> None:
    """Sign ``repository_ref@digest`` (``host/repo``, as pushed) and attest its provenance and
    SBOMs."""
    from nanodistro.image.signatures import registry_target
    from nanodistro.registry import RegistryClient, parse_reference

    ref = parse_reference(repository_ref)
    with RegistryClient(ref.api_host) as client:
        target = registry_target(client, ref.repository, digest)
        _added, outcome = _sign_and_attest(workspace, layout, target, say=say, extra=extra)
    say(f"{repository_ref}@{digest[:19]}: {outcome}")


def sign_layout_image(
    workspace: Workspace,
    layout: Path,
    tag: str,
    *,
    say: Progress,
    extra: Sequence[StatementMaker] = (),
) -> None:
    """Sign and attest the image ``tag`` names in ``layout`` (the image's persistent layout), as
    cosign stores them in a layout (``sha256-<hex>.sig``/``.att`` entries of index.json)."""
    from nanodistro.image.signatures import layout_target

    target = layout_target(layout, tag)
    added, outcome = _sign_and_attest(workspace, layout, target, say=say, extra=extra)
    if added:  # quiet when a promotion or rollback re-signs nothing
        say(f"{layout.name}:{tag}@{target.digest[:19]}: {outcome}")


def sign_unsigned_stable(workspace: Workspace, *, say: Progress) -> list[str]:
    """Sign and attest every image layout whose ``stable`` image has no signature yet (layouts
    promoted before signing existed, or by a cycle that died before signing); the names done.
    Cheap when all are signed: index.json is read, the key is not."""
    from nanodistro.image.tags import tag_digest
    from nanodistro.registry.layout import OciLayout, ref_name_of

    done = []
    root = workspace.image_out_dir
    for layout in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        digest = tag_digest(layout, "stable")
        if digest is None:
            continue
        signature_tag = digest.replace(":", "-") + ".sig"
        if any(ref_name_of(e) == signature_tag for e in OciLayout(layout).manifests()):
            continue
        sign_layout_image(workspace, layout, "stable", say=say)
        done.append(layout.name)
    return done
