"""The catalog's JSON API: packages with their channel versions, freshness and status; one
package's history, jobs, tests, advisories and dependents; its SBOM and provenance (read from
the ``.apk`` and its ``.intoto.jsonl`` on request); the freshness dashboard's data."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from nanodistro.errors import NanodistroError
from nanodistro.web.context import AUTH_RESPONSES, Ctx, Reader, WebContext
from nanodistro.web.queries_catalog import CatalogOut, catalog
from nanodistro.web.queries_freshness import FreshnessOut, freshness_dashboard
from nanodistro.web.queries_package import PackageOut, package_detail, package_file

__all__ = ["ProvenanceOut", "SpdxDocument", "router"]

router = APIRouter(prefix="/api", tags=["catalog"], responses=AUTH_RESPONSES)

# what a package (or recipe) name may be; anything else cannot name one, so it is a 404 early
PackageName = Annotated[str, Path(max_length=255, pattern=r"^[A-Za-z0-9_+][A-Za-z0-9_+.~-]*$")]
Version = Annotated[
    str | None,
    Query(max_length=255, pattern=r"^[A-Za-z0-9_+.~-]+$", description="Default: the stable one."),
]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No package or recipe of that name."}
}


class SpdxDocument(BaseModel):
    """The package's embedded SPDX 2.3 document, as the builder wrote it."""

    model_config = ConfigDict(extra="allow")

    # SPDX's own field names
    spdxVersion: str
    SPDXID: str
    name: str
    documentNamespace: str = ""
    packages: list[dict[str, Any]] = Field(default_factory=list)


class EnvelopeOut(BaseModel):
    payload_type: str
    keyids: list[str]
    statement: dict[str, Any] | None = Field(description="The decoded in-toto statement.")


class ProvenanceOut(BaseModel):
    package: str
    file: str = Field(description="The provenance file, relative to the repository.")
    envelopes: list[EnvelopeOut]
    verified: bool | None = Field(
        description="Signature checked with the workspace's keys/cosign.pub (None: no key)."
    )
    problem: str | None


@router.get("/catalog", response_model=CatalogOut, summary="Every package of the catalog")
def get_catalog(context: Ctx, _reader: Reader) -> CatalogOut:
    return catalog(context)


def _detail(context: WebContext, name: str) -> PackageOut:
    detail = package_detail(context, name)
    if detail is None:
        raise HTTPException(404, f"no package or recipe named {name!r} in this workspace")
    return detail


@router.get(
    "/packages/{name}", response_model=PackageOut, summary="One package", responses=_NOT_FOUND
)
def get_package(name: PackageName, context: Ctx, _reader: Reader) -> PackageOut:
    return _detail(context, name)


def _apk(context: WebContext, name: str, version: str | None) -> Any:
    path = package_file(context, name, version)
    if path is None:
        which = f"version {version}" if version else "a published version"
        raise HTTPException(404, f"no .apk of {name!r} ({which}) in the repository")
    return path


@router.get(
    "/packages/{name}/sbom",
    response_model=SpdxDocument,
    summary="The SPDX SBOM embedded in the package",
    responses=_NOT_FOUND,
)
def get_sbom(
    name: PackageName, context: Ctx, _reader: Reader, version: Version = None
) -> SpdxDocument:
    from nanodistro.builder.sbom import apk_spdx
    from nanodistro.formats.apk import read_apk

    path = _apk(context, name, version)
    try:
        document = json.loads(apk_spdx(read_apk(path.read_bytes(), where=str(path))))
        return SpdxDocument.model_validate(document)
    except (NanodistroError, OSError, ValueError) as error:
        raise HTTPException(422, f"cannot read the SBOM of {path.name}: {error}") from None


@router.get(
    "/packages/{name}/provenance",
    response_model=ProvenanceOut,
    summary="The signed SLSA provenance of the package",
    responses=_NOT_FOUND,
)
def get_provenance(
    name: PackageName, context: Ctx, _reader: Reader, version: Version = None
) -> ProvenanceOut:
    from nanodistro.trust.provenance import provenance_path, read_envelopes, verify_provenance

    path = provenance_path(_apk(context, name, version))
    relative = str(path.relative_to(context.workspace.packages_dir))
    try:
        envelopes = read_envelopes(path.read_bytes(), where=str(path))
    except FileNotFoundError:
        raise HTTPException(404, f"no provenance for {name!r} ({relative})") from None
    except (NanodistroError, OSError) as error:
        raise HTTPException(422, f"unreadable provenance {relative}: {error}") from None
    out = []
    for envelope in envelopes:
        try:
            statement = json.loads(envelope.payload)
        except ValueError:
            statement = None
        out.append(
            EnvelopeOut(
                payload_type=envelope.payload_type,
                keyids=[s.keyid for s in envelope.signatures],
                statement=statement if isinstance(statement, dict) else None,
            )
        )
    key = context.workspace.keys_dir / "cosign.pub"
    verified: bool | None = None
    problem = None
    if key.is_file():
        try:
            verify_provenance(envelopes, key.read_bytes(), where=relative)
            verified = True
        except (NanodistroError, OSError) as error:
            verified, problem = False, str(error)
    return ProvenanceOut(
        package=name, file=relative, envelopes=out, verified=verified, problem=problem
    )


@router.get(
    "/freshness",
    response_model=FreshnessOut,
    summary="Release -> stable lead times per package, p50/p95 overall and per promotion",
)
def get_freshness(context: Ctx, _reader: Reader) -> FreshnessOut:
    return freshness_dashboard(context)
