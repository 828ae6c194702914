"""Write a workspace's vulnerability feeds to disk: secdb ``security.json``, OSV records
(``osv/<CGA-ID>.json`` + ``osv/all.json``) and OpenVEX documents
(``openvex/<package>.openvex.json``), from its advisories (advisory/feeds.py builds them).

Shared by ``nanodistro feeds OUT`` and the factory, which publishes them after each cycle:
``security.json`` at the repository's root (where grype and trivy look for a secdb, as at
packages.wolfi.dev/os/security.json) and the OSV/OpenVEX folders beside the repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.advisory.feeds import OsvSource, build_openvex, build_osv, build_secdb
from nanodistro.advisory.model import Document
from nanodistro.advisory.validate import document_problems
from nanodistro.errors import NanodistroError
from nanodistro.formats.openvex import encode_openvex
from nanodistro.formats.osv_writer import encode_index, encode_record
from nanodistro.formats.secdb import encode_secdb
from nanodistro.util.atomic import atomic_write_bytes

__all__ = ["FeedsWritten", "recipe_packages", "valid_documents", "write_feeds"]


@dataclass
class FeedsWritten:
    secdb: str
    osv: list[str] = field(default_factory=list)  # record ids
    openvex: list[str] = field(default_factory=list)  # packages
    skipped: int = 0  # documents left out (unreadable or invalid)

    def to_json(self) -> dict[str, object]:
        return {
            "secdb": self.secdb,
            "osv": self.osv,
            "openvex": self.openvex,
            "skipped": self.skipped,
        }


def valid_documents(
    documents: Sequence[Document],
) -> tuple[list[Document], list[NanodistroError]]:
    """The documents without problems, and the first problem of each one left out."""
    good: list[Document] = []
    problems: list[NanodistroError] = []
    for doc in documents:
        found = document_problems(doc)
        if found:
            problems.append(found[0])
        else:
            good.append(doc)
    return good, problems


def recipe_packages(
    recipe_files: Sequence[Path], arch: str
) -> tuple[dict[str, str], dict[str, list[str]], list[NanodistroError]]:
    """Every package name the recipes build (-> its recipe), each recipe's subpackages, and the
    recipes that could not be read."""
    from nanodistro.recipe.expand import subpackage_names
    from nanodistro.recipe.loading import load_recipe

    packages: dict[str, str] = {}
    subpackages: dict[str, list[str]] = {}
    errors: list[NanodistroError] = []
    for path in recipe_files:
        try:
            recipe = load_recipe(path)
            names = [name for _, name, _ in subpackage_names(recipe, arch)]
        except NanodistroError as error:
            errors.append(error)
            continue
        origin = recipe.package.name
        packages[origin] = origin
        subpackages[origin] = names
        for name in names:
            packages[name] = origin
    return packages, subpackages, errors


def write_feeds(
    out: Path,
    documents: Sequence[Document],
    *,
    ecosystem: str,
    distro: str,
    archs: Sequence[str],
    repo_name: str,
    url_prefix: str,
    subpackages: dict[str, list[str]],
    secdb_file: Path | None = None,
) -> FeedsWritten:
    """Write the three feeds under ``out`` (the secdb to ``secdb_file`` when given); each file
    atomically. ``documents`` should be valid (``valid_documents``)."""
    out.mkdir(parents=True, exist_ok=True)
    secdb_path = secdb_file or out / "security.json"
    secdb = build_secdb([documents], archs=list(archs), repo_name=repo_name, url_prefix=url_prefix)
    secdb_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(secdb_path, encode_secdb(secdb))
    written = FeedsWritten(secdb=str(secdb_path))
    records = build_osv(
        [OsvSource(documents=list(documents), ecosystems=[ecosystem], subpackages=subpackages)]
    )
    osv_dir = out / "osv"
    osv_dir.mkdir(exist_ok=True)
    for record in records:
        atomic_write_bytes(osv_dir / f"{record.id}.json", encode_record(record))
    atomic_write_bytes(osv_dir / "all.json", encode_index(records))
    written.osv = [r.id for r in records]
    vex_dir = out / "openvex"
    vex_dir.mkdir(exist_ok=True)
    for doc in documents:
        vex = build_openvex(
            doc, distro=distro, author=ecosystem, subpackages=subpackages.get(doc.package, ())
        )
        if vex is not None:
            atomic_write_bytes(vex_dir / f"{doc.package}.openvex.json", encode_openvex(vex))
            written.openvex.append(doc.package)
    return written
