"""OSV records loaded from a directory or a zip, indexed for the matcher.

``[vulnerabilities] osv = PATH`` names either a ``.zip`` (OSV's ``<Ecosystem>/all.zip``) or a
directory holding ``*.json`` records and/or ``*.zip`` files at any depth (what
``nanodistro vuln update`` writes: ``<dir>/<Ecosystem>/all.zip``). A record that does not parse
gives one warning naming the file (and zip member) and is skipped; the rest loads. Withdrawn
records are left out, and index files (a top-level JSON list, like ``all.json`` of the Chainguard
feed) are not records.

Zips are read in memory member by member, never extracted; every member's inflated size counts
against the command's decompression budget (formats/inflate.py) and is capped.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.errors import FormatError, NanodistroError
from nanodistro.formats.inflate import current_budget
from nanodistro.formats.langmeta import python_normalized_name
from nanodistro.formats.osv import Affected, OsvRecord, Range, record_from_dict
from nanodistro.formats.purl import parse_purl

__all__ = ["MAX_RECORD", "OsvDatabase", "ecosystem_key", "load_osv", "normalize_repo"]

#: One record larger than this (inflated) is refused; real ones are a few KB.
MAX_RECORD = 16 * 1024**2


def ecosystem_key(ecosystem: str) -> str:
    """``"Alpine:v3.18"`` -> ``"alpine"``: the ecosystem without its release suffix, lowercased."""
    return ecosystem.split(":", 1)[0].strip().lower()


def package_key(ecosystem: str, name: str) -> tuple[str, str]:
    key = ecosystem_key(ecosystem)
    if key == "pypi":
        return key, python_normalized_name(name)
    if key in ("go", "npm"):
        return key, name
    return key, name.lower()


def normalize_repo(url: str) -> str:
    """``https://github.com/Madler/zlib.git/`` -> ``github.com/madler/zlib`` (what two spellings of
    one upstream repository have in common)."""
    text = url.strip().lower()
    text = re.sub(r"^[a-z+]+://", "", text)
    text = re.sub(r"^[^@/]+@", "", text)  # user@ of ssh URLs
    text = text.replace(":", "/", 1) if "/" not in text.split(":", 1)[0] and ":" in text else text
    text = text.removeprefix("www.").rstrip("/").removesuffix(".git")
    return text


@dataclass
class OsvDatabase:
    records: list[OsvRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    # (ecosystem key, normalized name) -> the records' affected entries for that package
    by_package: dict[tuple[str, str], list[tuple[OsvRecord, Affected]]] = field(
        default_factory=dict
    )
    # normalized repository -> (record, affected entry, GIT range)
    by_repo: dict[str, list[tuple[OsvRecord, Affected, Range]]] = field(default_factory=dict)

    def add(self, record: OsvRecord) -> None:
        if record.withdrawn:
            return
        self.records.append(record)
        for affected in record.affected:
            for key in _keys(affected):
                self.by_package.setdefault(key, []).append((record, affected))
            for item in affected.ranges:
                if item.type == "GIT":
                    entry = (record, affected, item)
                    self.by_repo.setdefault(normalize_repo(item.repo), []).append(entry)

    def ecosystems(self) -> set[str]:
        return {key for key, _ in self.by_package}


def _keys(affected: Affected) -> list[tuple[str, str]]:
    package = affected.package
    if package is None:
        return []
    keys = []
    if package.ecosystem and package.name:
        keys.append(package_key(package.ecosystem, package.name))
    if package.purl:
        try:
            purl = parse_purl(package.purl)
        except FormatError:
            purl = None
        if purl is not None and purl.type == "apk" and purl.namespace:
            # A Chainguard/Wolfi record names its distro in the purl namespace.
            key = package_key(purl.namespace, purl.name)
            if key not in keys:
                keys.append(key)
    return keys


def _decode(data: bytes, where: str) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise FormatError(f"not JSON: {error}", where=where) from None


def _add_document(db: OsvDatabase, data: bytes, where: str) -> None:
    try:
        document = _decode(data, where)
        if isinstance(document, list):
            return  # an index (all.json: [{id, modified}]), not a record
        db.add(record_from_dict(document, where=where))
    except NanodistroError as error:
        db.warnings.append(f"{error}; record skipped")


def _zip_members(path: Path, where: str) -> Iterator[tuple[str, bytes | None, str]]:
    """(member where, bytes or None, problem) for each ``*.json`` member."""
    budget = current_budget()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            member = f"{where}:{info.filename}"
            if info.file_size > MAX_RECORD:
                yield member, None, f"larger than {MAX_RECORD} bytes"
                continue
            with archive.open(info) as handle:
                data = handle.read(MAX_RECORD + 1)
            budget.charge(len(data), where=member)
            if len(data) > MAX_RECORD:  # the header lied about the size
                yield member, None, f"larger than {MAX_RECORD} bytes"
                continue
            yield member, data, ""


def _load_zip(db: OsvDatabase, path: Path) -> None:
    where = str(path)
    try:
        for member, data, problem in _zip_members(path, where):
            if data is None:
                db.warnings.append(f"{member}: {problem}; record skipped")
            else:
                _add_document(db, data, member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as error:
        db.warnings.append(f"{where}: not a readable zip ({error}); skipped")
        return
    db.sources.append(where)


def load_osv(path: Path) -> OsvDatabase:
    """Every record under ``path`` (a directory, a zip or one ``.json`` record)."""
    path = Path(path)
    db = OsvDatabase()
    if path.is_file():
        if path.suffix == ".json":
            _add_document(db, path.read_bytes(), str(path))
            db.sources.append(str(path))
        else:
            _load_zip(db, path)
        return db
    if not path.is_dir():
        raise FormatError(
            "no OSV data here (a directory or .zip of OSV records; "
            "'nanodistro vuln update' downloads it)",
            where=str(path),
        )
    db.sources.append(str(path))
    for item in sorted(path.rglob("*")):
        if item.is_symlink() or not item.is_file():
            continue
        if item.suffix == ".json":
            _add_document(db, item.read_bytes(), str(item))
        elif item.suffix == ".zip":
            _load_zip(db, item)
    return db
