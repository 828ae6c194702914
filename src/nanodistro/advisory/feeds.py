"""Advisories -> the feeds scanners read (reference/security.md §2-3):

- secdb (``security.json``): wolfictl's ``BuildSecurityDatabase``: per document, advisories in
  ID order, the latest event decides: ``fixed`` lists every *alias* under the fixed version,
  a false-positive determination under ``"0"``; other latest types (and the CGA ID itself)
  are not emitted; a document with nothing to say is left out.
- OSV: wolfictl's ``BuildOSVDataset``: one record per advisory whose latest event is ``fixed``
  or a false positive; ``affected`` = (origin package + its subpackages, sorted) x ecosystems,
  purl ``pkg:apk/<lower(ecosystem)>/<name>``; ``related`` = [ID] + aliases; ``modified`` =
  the latest event's time.
- OpenVEX: one document per package (wolfictl's historic ``vex`` wrote one per package config),
  one statement per advisory from its latest event, mapped as §3.2 suggests: detection and
  analysis-not-planned -> under_investigation; true-positive, fix-not-planned and
  pending-upstream-fix -> affected (with an action statement); fixed -> fixed (products at the
  fixed version); false positive -> not_affected with the justification the schema's comments
  give for its type (the note goes to status_notes: OpenVEX allows a justification *or* an
  impact statement, not both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from packageurl import PackageURL

from nanodistro.advisory.model import (
    ALIAS_PATTERNS,
    EVENT_TYPES,
    FP_JUSTIFICATION,
    Advisory,
    Document,
)
from nanodistro.formats.openvex import VexDocument, VexStatement, encode_openvex
from nanodistro.formats.osv_writer import OsvAdvisory, OsvAffected
from nanodistro.formats.secdb import NAK, SecDb, SecDbPackage

__all__ = ["OsvSource", "build_openvex", "build_osv", "build_secdb", "secdb_packages"]


def secdb_packages(documents: Sequence[Document]) -> list[SecDbPackage]:
    packages = []
    for doc in sorted(documents, key=lambda d: d.package):
        secfixes: dict[str, list[str]] = {}
        for adv in sorted(doc.advisories, key=lambda a: a.id):
            latest = adv.latest()
            if latest is None:
                continue
            if latest.type == "fixed" and latest.fixed_version:
                key = latest.fixed_version
            elif latest.type == "false-positive-determination":
                key = NAK
            else:
                continue
            for alias in adv.aliases:
                secfixes.setdefault(key, []).append(alias)
        if secfixes:
            packages.append(
                SecDbPackage(name=doc.package, secfixes={k: sorted(v) for k, v in secfixes.items()})
            )
    return packages


def build_secdb(
    groups: Sequence[Sequence[Document]], *, archs: Sequence[str], repo_name: str, url_prefix: str
) -> SecDb:
    """The secdb of one or more advisory directories (each group one directory, in order)."""
    packages: list[SecDbPackage] = []
    for group in groups:
        packages.extend(secdb_packages(group))
    return SecDb(archs=list(archs), repo_name=repo_name, url_prefix=url_prefix, packages=packages)


@dataclass(frozen=True)
class OsvSource:
    documents: Sequence[Document]
    ecosystems: Sequence[str]  # the first is the distro's own ecosystem
    subpackages: Mapping[str, Sequence[str]] = field(default_factory=dict)


def build_osv(sources: Sequence[OsvSource]) -> list[OsvAdvisory]:
    """OSV records sorted by ID (a later source's record for the same ID replaces an earlier)."""
    records: dict[str, OsvAdvisory] = {}
    for source in sources:
        for doc in sorted(source.documents, key=lambda d: d.package):
            names = [doc.package, *sorted(source.subpackages.get(doc.package, ()))]
            for adv in doc.advisories:
                latest = adv.latest()
                if latest is None:
                    continue
                if latest.type == "fixed" and latest.fixed_version:
                    fixed, false_positive = latest.fixed_version, False
                elif latest.type == "false-positive-determination":
                    fixed, false_positive = "0", True
                else:
                    continue  # wolfictl produces no OSV data for the other types
                affected = [
                    OsvAffected(
                        ecosystem=ecosystem,
                        name=name,
                        purl=f"pkg:apk/{ecosystem.lower()}/{name}",
                        fixed=fixed,
                        false_positive=false_positive,
                    )
                    for name in names
                    for ecosystem in source.ecosystems
                ]
                records[adv.id] = OsvAdvisory(
                    id=adv.id,
                    modified=latest.timestamp_text,
                    related=[adv.id, *adv.aliases],
                    affected=affected,
                )
    return [records[key] for key in sorted(records)]


def _purl(distro: str, name: str, version: str | None = None) -> str:
    return str(
        PackageURL(type="apk", namespace=distro.lower(), name=name, version=version).to_string()
    )


def _names(adv: Advisory) -> tuple[str, list[str]]:
    """The vulnerability name scanners match (a CVE if there is one) and the other IDs."""
    cve = next((a for a in adv.aliases if ALIAS_PATTERNS["CVE"].match(a)), None)
    name = cve or (adv.aliases[0] if adv.aliases else adv.id)
    return name, [i for i in [adv.id, *adv.aliases] if i != name]


def _statement(
    adv: Advisory, products: Sequence[str], distro: str, names: Sequence[str]
) -> VexStatement | None:
    latest = adv.latest()
    if latest is None or latest.type not in EVENT_TYPES:
        return None
    name, aliases = _names(adv)
    kind, note = latest.type, latest.note
    status, notes, justification, impact, action = "affected", "", "", "", ""
    if kind in ("detection", "analysis-not-planned"):
        status, notes = "under_investigation", note
    elif kind == "fixed":
        status = "fixed"
        products = [_purl(distro, n, latest.fixed_version or "") for n in names]
    elif kind == "false-positive-determination":
        status = "not_affected"
        justification = FP_JUSTIFICATION.get(latest.fp_type or "", "")
        if justification:
            notes = note
        else:
            impact = note or "false positive"
    elif kind == "true-positive-determination":
        notes, action = note, "No remediation is available yet."
    else:  # fix-not-planned, pending-upstream-fix: the note says what happens next
        action = note or "No remediation is available yet."
    return VexStatement(
        vulnerability=name,
        aliases=aliases,
        timestamp=latest.timestamp_text,
        status=status,
        products=products,
        status_notes=notes,
        justification=justification,
        impact_statement=impact,
        action_statement=action,
    )


def build_openvex(
    doc: Document, *, distro: str, author: str, subpackages: Sequence[str] = ()
) -> VexDocument | None:
    """The OpenVEX document of one package (None when no advisory has a known latest event)."""
    names = [doc.package, *sorted(subpackages)]
    products = [_purl(distro, name) for name in names]
    statements = [
        st
        for adv in sorted(doc.advisories, key=lambda a: a.id)
        if (st := _statement(adv, products, distro, names)) is not None
    ]
    if not statements:
        return None
    statements.sort(key=lambda st: (st.timestamp, st.vulnerability))
    timestamp = max(st.timestamp for st in statements)
    draft = VexDocument(
        id="", author=author, timestamp=timestamp, statements=statements, tooling="nanodistro"
    )
    # Content-derived ID: the same advisories give the same document, byte for byte.
    digest = hashlib.sha256(encode_openvex(draft)).hexdigest()
    return VexDocument(
        id=f"urn:nanodistro:vex:{distro.lower()}:{doc.package}:{digest[:32]}",
        author=author,
        timestamp=timestamp,
        statements=statements,
        tooling="nanodistro",
    )
