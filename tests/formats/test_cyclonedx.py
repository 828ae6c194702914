"""CycloneDX 1.6 codec: deterministic bytes, content-derived serial numbers, a valid document."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from nanodistro.errors import FormatError
from nanodistro.formats import cyclonedx
from nanodistro.formats.apk_cyclonedx import apk_component, package_bom
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.purl import apk_purl

SPDX = {
    "documentDescribes": ["SPDXRef-Package-apk-foo-1.2.3-r1"],
    "packages": [
        {
            "SPDXID": "SPDXRef-Package-apk-foo-1.2.3-r1",
            "name": "foo",
            "versionInfo": "1.2.3-r1",
            "supplier": "Organization: Wolfi",
            "licenseDeclared": "MIT AND (Apache-2.0 OR BSD-3-Clause)",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    # melange's form, with the redundant distro qualifier
                    "referenceLocator": "pkg:apk/wolfi/foo@1.2.3-r1?arch=x86_64&distro=wolfi",
                }
            ],
        },
        {
            "SPDXID": "SPDXRef-Package-Source-foo-1.2.3",
            "name": "foo",
            "versionInfo": "1.2.3",
            "downloadLocation": "https://example.org/foo-1.2.3.tar.gz",
            "primaryPackagePurpose": "SOURCE",
            "checksums": [{"algorithm": "SHA256", "checksumValue": "A" * 64}],
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": "pkg:generic/foo@1.2.3",
                }
            ],
        },
        {"SPDXID": "SPDXRef-Package-Melange-foo.yaml", "name": "foo.yaml", "versionInfo": "c0ffee"},
    ],
    "relationships": [
        {
            "spdxElementId": "SPDXRef-Package-apk-foo-1.2.3-r1",
            "relationshipType": "GENERATED_FROM",
            "relatedSpdxElement": "SPDXRef-Package-Source-foo-1.2.3",
        },
        {
            "spdxElementId": "SPDXRef-Package-apk-foo-1.2.3-r1",
            "relationshipType": "DESCRIBED_BY",
            "relatedSpdxElement": "SPDXRef-Package-Melange-foo.yaml",
        },
    ],
}
INFO = PackageInfo(
    name="foo",
    version="1.2.3-r1",
    arch="x86_64",
    description="Foo",
    url="https://example.org/foo",
    license="MIT",
    origin="foo",
    depends=["so:libc.musl-x86_64.so.1", "bar>=2"],
    datahash="d" * 64,
)


def _bom() -> cyclonedx.Bom:
    return package_bom(
        INFO,
        SPDX,
        distro="nanodistro",
        timestamp="2023-11-14T22:13:20Z",
        tool_version="0.1.0",
        identity="Q1abc=",
        file_sha256="e" * 64,
    )


def test_package_bom_is_valid_cyclonedx_1_6_and_deterministic() -> None:
    raw = cyclonedx.to_json(_bom())
    assert raw == cyclonedx.to_json(_bom())
    assert raw.endswith(b"}\n")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw.decode()) is None
    data = json.loads(raw)
    assert (data["bomFormat"], data["specVersion"], data["version"]) == ("CycloneDX", "1.6", 1)
    assert data["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    component = data["metadata"]["component"]
    # the package's own SBOM names the distro; our purl form, melange's qualifier dropped
    assert component["purl"] == component["bom-ref"] == "pkg:apk/wolfi/foo@1.2.3-r1?arch=x86_64"
    assert component["licenses"] == [{"expression": "MIT AND (Apache-2.0 OR BSD-3-Clause)"}]
    assert component["hashes"] == [{"alg": "SHA-256", "content": "e" * 64}]
    assert component["supplier"] == {"name": "Wolfi"}
    (source,) = component["pedigree"]["ancestors"]
    assert source["hashes"] == [{"alg": "SHA-256", "content": "a" * 64}]
    assert source["externalReferences"] == [
        {"type": "distribution", "url": "https://example.org/foo-1.2.3.tar.gz"}
    ]
    properties = [(p["name"], p["value"]) for p in component["properties"]]
    assert ("nanodistro:recipe", "foo.yaml@c0ffee") in properties
    assert ("nanodistro:apk:depends", "bar>=2") in properties
    assert data["dependencies"] == [{"ref": component["bom-ref"], "dependsOn": []}]


def test_serial_number_follows_content() -> None:
    first = json.loads(cyclonedx.to_json(_bom()))["serialNumber"]
    assert first.startswith("urn:uuid:")
    changed = _bom()
    changed.timestamp = "2023-11-14T22:13:21Z"
    assert json.loads(cyclonedx.to_json(changed))["serialNumber"] != first


def test_package_without_sbom_falls_back_to_pkginfo_and_distro() -> None:
    component = apk_component(INFO, None, distro="nanodistro-examples")
    assert component.purl == apk_purl("nanodistro-examples", "foo", "1.2.3-r1", "x86_64")
    assert component.licenses == "MIT"
    assert component.ancestors == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MIT", [{"expression": "MIT"}]),
        ("GPL-2.0-only WITH Classpath-exception-2.0", None),
        ("(MIT OR Apache-2.0) AND LicenseRef-custom", None),
        ("GPL-2.0+", None),
        ("NOASSERTION", []),
        ("", []),
        ("MIT AND", [{"license": {"name": "MIT AND"}}]),
        ("Public domain, see COPYING", [{"license": {"name": "Public domain, see COPYING"}}]),
        ("(MIT", [{"license": {"name": "(MIT"}}]),
    ],
)
def test_licenses_are_expressions_or_named(text: str, expected: list[object] | None) -> None:
    bom = cyclonedx.Bom(
        component=cyclonedx.Component("library", "x", bom_ref="x", licenses=text),
        timestamp="1970-01-01T00:00:00Z",
    )
    data = cyclonedx.to_dict(bom)
    licenses = data["metadata"]["component"].get("licenses", [])
    assert licenses == (expected if expected is not None else [{"expression": text}])
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(data)) is None


def test_refuses_duplicate_and_dangling_refs() -> None:
    one = cyclonedx.Component("library", "a", bom_ref="pkg:apk/x/a@1-r0?arch=x86_64")
    with pytest.raises(FormatError, match="bom-ref used twice"):
        cyclonedx.to_dict(
            cyclonedx.Bom(component=one, timestamp="1970-01-01T00:00:00Z", components=[one])
        )
    with pytest.raises(FormatError, match="unknown bom-refs: nowhere"):
        cyclonedx.to_dict(
            cyclonedx.Bom(
                component=one,
                timestamp="1970-01-01T00:00:00Z",
                dependencies={one.bom_ref: ["nowhere"]},
            )
        )


def test_from_json_refuses_other_documents() -> None:
    with pytest.raises(FormatError, match="not a CycloneDX"):
        cyclonedx.from_json(b'{"spdxVersion": "SPDX-2.3"}', where="x.json")
    with pytest.raises(FormatError, match="not JSON"):
        cyclonedx.from_json(b"{", where="x.json")
    data = cyclonedx.from_json(cyclonedx.to_json(_bom()))
    assert cyclonedx.component_purls(data) == []
