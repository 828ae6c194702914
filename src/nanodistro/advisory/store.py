"""The advisories folder of a workspace: ``<dir>/<package>.advisories.yaml``.

:func:`load_directory` reads every document; a file that cannot be read or decoded is reported
and skipped, so one bad file never hides the others (the CLI warns; ``validate`` fails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.advisory.decode import parse_document
from nanodistro.advisory.model import Document, document_file_name
from nanodistro.errors import AdvisoryError, NanodistroError
from nanodistro.util.atomic import atomic_write_bytes

__all__ = ["SUFFIX", "LoadedAdvisories", "document_path", "load_directory", "save_document"]

SUFFIX = ".advisories.yaml"


@dataclass
class LoadedAdvisories:
    documents: list[Document] = field(default_factory=list)
    errors: list[NanodistroError] = field(default_factory=list)

    def by_package(self) -> dict[str, Document]:
        return {doc.package: doc for doc in self.documents}


def document_path(directory: Path, package: str) -> Path:
    return directory / document_file_name(package)


def load_directory(directory: Path) -> LoadedAdvisories:
    loaded = LoadedAdvisories()
    if not directory.is_dir():
        return loaded
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            data = path.read_bytes()
        except OSError as error:
            loaded.errors.append(
                AdvisoryError(f"cannot read ({error.strerror})", rule="yaml", where=str(path))
            )
            continue
        try:
            loaded.documents.append(parse_document(data, str(path)))
        except NanodistroError as error:
            loaded.errors.append(error)
    return loaded


def save_document(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
