"""``nanodistro verify``: check a package or an image against keys and a policy.

Each check gives one line: its name, ok or FAIL, and why. Packages (an ``.apk`` file, or one in
a repository ``REPO/<arch>/<file>.apk``): APK signature (RSA keyring), provenance signature
(``<file>.apk.intoto.jsonl`` beside it, ECDSA key), subject digest = sha256 of the file, builder
id and source repositories allowed by the policy, embedded SPDX SBOM present and describing this
package. Images (an OCI layout, ``LAYOUT:TAG`` or a registry reference): cosign signature,
provenance attestation (signature, subject, builder id, sources), SBOM (SPDX attestation, else
the layout's ``sboms/``) listing every package of the installed db.

Nothing is printed here; the CLI prints the checks. A check that cannot run because an earlier
one failed says so rather than passing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.formats.intoto import Provenance, Statement, parse_provenance, parse_statement
from nanodistro.formats.signature import Keyring
from nanodistro.trust.provenance import (
    Policy,
    provenance_path,
    read_envelopes,
    verify_provenance,
)

__all__ = ["Check", "verify_image", "verify_package"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "reason": self.reason}


def _fail(name: str, error: NanodistroError | str) -> Check:
    return Check(name, False, error if isinstance(error, str) else str(error))


def _policy_checks(provenance: Provenance | None, policy: Policy, *, skipped: str) -> list[Check]:
    if provenance is None:
        return [
            Check("builder id", False, skipped),
            Check("source repositories", False, skipped),
        ]
    checks = []
    if policy.builder_allowed(provenance.builder_id):
        checks.append(Check("builder id", True, f"{provenance.builder_id} allowed"))
    else:
        checks.append(
            Check(
                "builder id",
                False,
                f"{provenance.builder_id} is not allowed by {policy.where} "
                f"(builder-ids: {', '.join(policy.builder_ids)})",
            )
        )
    sources = [
        d.uri
        for d in provenance.resolved_dependencies
        if d.annotations.get("kind") == "source" and d.uri
    ]
    refused = [uri for uri in sources if not policy.source_allowed(uri)]
    if refused:
        checks.append(
            Check(
                "source repositories",
                False,
                f"not allowed by {policy.where}: {', '.join(refused)}",
            )
        )
    elif not policy.source_repositories:
        checks.append(
            Check("source repositories", True, f"{len(sources)} source(s); the policy allows any")
        )
    else:
        checks.append(Check("source repositories", True, f"{len(sources)} source(s) allowed"))
    return checks


def _subject_check(statement: Statement, digest: str, what: str) -> Check:
    algorithm, _, encoded = digest.partition(":")
    names = [name for name, d in statement.digests() if d.get(algorithm) == encoded]
    if names:
        return Check("provenance subject", True, f"{what} {digest} is the subject {names[0]!r}")
    found = ", ".join(f"{n or '_'} {dict(d)}" for n, d in statement.digests())
    return Check(
        "provenance subject", False, f"{what} is {digest}; the provenance is about {found}"
    )


# ------------------------------------------------------------------------------- packages


def _spdx_names(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    packages = document.get("packages")
    return (
        {
            (str(p.get("name", "")), str(p.get("versionInfo", "")))
            for p in packages
            if isinstance(p, dict)
        }
        if isinstance(packages, list)
        else set()
    )


def verify_package(
    path: Path,
    *,
    keyring: Keyring | None,
    public_key: bytes | None,
    policy: Policy,
    provenance_file: Path | None = None,
) -> list[Check]:
    """The checks of one ``.apk`` file (in a repository or not)."""
    from nanodistro.builder.sbom import embedded_sbom
    from nanodistro.formats.apk import read_apk, verify_apk

    checks: list[Check] = []
    where = str(path)
    data = path.read_bytes()
    try:
        pkg = read_apk(data, where=where)
    except NanodistroError as error:
        return [_fail("apk signature", error)]
    if not keyring:
        checks.append(_fail("apk signature", "no keyring given (--keyring DIR)"))
    else:
        try:
            verify_apk(pkg, keyring)
            checks.append(Check("apk signature", True, "signed by a key of the keyring"))
        except NanodistroError as error:
            checks.append(_fail("apk signature", error))

    verified: Provenance | None = None
    statement: Statement | None = None
    attestation = provenance_file or provenance_path(path)
    skipped = "provenance not verified"
    if public_key is None:
        checks.append(_fail("provenance signature", "no public key given (--key cosign.pub)"))
    elif not attestation.is_file():
        checks.append(_fail("provenance signature", f"no provenance at {attestation}"))
    else:
        try:
            envelopes = read_envelopes(attestation.read_bytes(), where=str(attestation))
            result = verify_provenance(envelopes, public_key, where=str(attestation))
            statement, verified = result.statement, result.provenance
            checks.append(Check("provenance signature", True, f"{attestation.name} verifies"))
        except NanodistroError as error:
            checks.append(_fail("provenance signature", error))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if statement is None:
        checks.append(Check("provenance subject", False, skipped))
    else:
        checks.append(_subject_check(statement, digest, path.name))
        if not checks[-1].ok:
            verified = None  # the provenance is about something else: its claims do not apply
            skipped = "the provenance is not about this package"
    checks += _policy_checks(verified, policy, skipped=skipped)

    sbom = embedded_sbom(pkg)
    info = pkg.info
    if sbom is None:
        checks.append(
            Check("sbom", not policy.require_sbom, "no embedded SPDX SBOM under var/lib/db/sbom/")
        )
    else:
        try:
            document = json.loads(sbom)
        except ValueError:
            checks.append(_fail("sbom", "the embedded SBOM is not JSON"))
        else:
            if (info.name, info.version) in _spdx_names(document):
                checks.append(Check("sbom", True, f"SPDX describes {info.name} {info.version}"))
            else:
                checks.append(
                    _fail("sbom", f"the embedded SPDX does not describe {info.name} {info.version}")
                )
    return checks


# --------------------------------------------------------------------------------- images


def _installed(target_text: str, *, insecure: bool) -> dict[str, dict[str, str]]:
    from nanodistro.image.diff import load_image_packages

    packages = load_image_packages(target_text, insecure=insecure)
    return {arch: dict(p.packages) for arch, p in packages.archs.items()}


def _layout_sboms(target_text: str) -> list[dict[str, Any]]:
    root = Path(target_text)
    if not (root / "index.json").is_file():
        head, _, _tag = target_text.rpartition(":")
        root = Path(head)
    documents = []
    for file in sorted((root / "sboms").glob("*.spdx.json")) if (root / "sboms").is_dir() else []:
        try:
            documents.append(json.loads(file.read_bytes()))
        except ValueError:
            continue
    return documents


def _sbom_check(
    documents: Sequence[Mapping[str, Any]],
    installed: Mapping[str, Mapping[str, str]],
    source: str,
    policy: Policy,
) -> Check:
    if not documents:
        return Check("sbom", not policy.require_sbom, "no SPDX attestation and no layout SBOM")
    described: set[tuple[str, str]] = set()
    for document in documents:
        described |= _spdx_names(document)
    missing = sorted(
        f"{name} {version}"
        for packages in installed.values()
        for name, version in packages.items()
        if (name, version) not in described
    )
    total = sum(len(p) for p in installed.values())
    if missing:
        return _fail("sbom", f"{source} lacks installed package(s): {', '.join(missing)}")
    if not total:
        return _fail("sbom", "the image has no installed db to compare the SBOM with")
    return Check("sbom", True, f"{source} lists all {total} installed package(s)")


def verify_image(
    target_text: str,
    *,
    public_key: bytes | None,
    policy: Policy,
    insecure: bool = False,
) -> list[Check]:
    """The checks of an OCI layout (``DIR[:TAG]``) or a registry reference."""
    from nanodistro.image.signatures import (
        open_target,
        verify_attestations,
        verify_image_signatures,
    )

    checks: list[Check] = []
    if public_key is None:
        skipped = "no public key given (--key cosign.pub)"
        return [
            _fail("image signature", skipped),
            _fail("provenance signature", skipped),
            *_policy_checks(None, policy, skipped=skipped),
        ]
    with open_target(target_text, insecure=insecure) as target:
        try:
            found = verify_image_signatures(target, public_key)
            checks.append(Check("image signature", True, f"{len(found)} valid signature(s)"))
        except NanodistroError as error:
            checks.append(_fail("image signature", error))
        verified: Provenance | None = None
        skipped = "provenance not verified"
        try:
            statements = verify_attestations(target, public_key, "slsaprovenance1")
            statement = parse_statement(statements[0], where=target.where)
            verified = parse_provenance(statement, where=target.where)
            checks.append(
                Check("provenance signature", True, "SLSA provenance attestation verifies")
            )
            checks.append(_subject_check(statement, target.digest, "the image"))
            if not checks[-1].ok:
                verified, skipped = None, "the provenance is not about this image"
        except NanodistroError as error:
            checks.append(_fail("provenance signature", error))
            checks.append(Check("provenance subject", False, skipped))
        checks += _policy_checks(verified, policy, skipped=skipped)
        documents: list[dict[str, Any]] = []
        source = "SPDX attestation"
        try:
            for spdx in verify_attestations(target, public_key, "spdxjson"):
                predicate = spdx.get("predicate")
                if isinstance(predicate, dict):
                    documents.append(predicate)
        except NanodistroError:
            documents = _layout_sboms(target_text)
            source = "the layout's sboms/"
    try:
        installed = _installed(target_text, insecure=insecure)
    except NanodistroError as error:
        checks.append(_fail("sbom", f"cannot read the installed db: {error}"))
        return checks
    checks.append(_sbom_check(documents, installed, source, policy))
    return checks


def all_ok(checks: Iterable[Check]) -> bool:
    return all(c.ok for c in checks)
