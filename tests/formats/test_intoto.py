"""formats/intoto: round trip, sorted-key bytes, and errors naming the field."""

from __future__ import annotations

import json

import pytest

from nanodistro.errors import FormatError
from nanodistro.formats.intoto import (
    Provenance,
    ResourceDescriptor,
    parse_provenance,
    parse_statement,
    provenance_statement,
)


def statement() -> bytes:
    provenance = Provenance(
        build_type="https://nanodistro.dev/build/apk/v1",
        builder_id="https://nanodistro.dev/factory/v1",
        external_parameters={"recipe": "recipes/a.yaml"},
        resolved_dependencies=(ResourceDescriptor(uri="https://x.example/a.tar.gz",
                                                  digest={"sha256": "0" * 64}),),
        started_on="2024-01-01T00:00:00Z",
    )  # fmt: skip
    subject = ResourceDescriptor(name="a-1-r0.apk", digest={"sha256": "1" * 64})
    return provenance_statement([subject], provenance).to_bytes()


def test_round_trip_is_canonical() -> None:
    data = statement()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    parsed = parse_statement(data)
    assert parsed.to_bytes() == data
    provenance = parse_provenance(parsed)
    assert provenance.resolved_dependencies[0].digest == {"sha256": "0" * 64}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(_type="https://in-toto.io/Statement/v0.1"), "_type"),
        (lambda d: d.update(subject=[]), "subject"),
        (lambda d: d["subject"][0].pop("digest"), "subject[0]"),
        (lambda d: d["subject"][0]["digest"].update(sha256="XYZ"), "subject[0].digest.sha256"),
        (lambda d: d["predicate"]["buildDefinition"].pop("buildType"),
         "predicate.buildDefinition.buildType"),
        (lambda d: d["predicate"]["runDetails"]["builder"].pop("id"),
         "predicate.runDetails.builder.id"),
        (lambda d: d["predicate"]["runDetails"].update(metadata={"startedOn": "yesterday"}),
         "predicate.runDetails.metadata.startedOn"),
        (lambda d: d["predicate"]["buildDefinition"]["resolvedDependencies"][0].clear(),
         "predicate.buildDefinition.resolvedDependencies[0]"),
    ],
)  # fmt: skip
def test_errors_name_the_field(edit: object, field: str) -> None:
    document = json.loads(statement())
    edit(document)  # type: ignore[operator]
    with pytest.raises(FormatError) as error:
        parse_provenance(
            parse_statement(json.dumps(document).encode(), where="p.json"), where="p.json"
        )
    assert error.value.field == field and error.value.where == "p.json"
