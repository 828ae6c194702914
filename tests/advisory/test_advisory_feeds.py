"""Feeds from advisories equal wolfictl's own expected outputs (secdb, OSV) and validate against
the published OSV and OpenVEX JSON schemas (vendored in data/, see data/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from fixture_paths import FIXTURES, WOLFICTL_ADVISORY_TESTDATA
from nanodistro.advisory.feeds import OsvSource, build_openvex, build_osv, build_secdb
from nanodistro.advisory.store import load_directory
from nanodistro.formats.openvex import decode_openvex, encode_openvex
from nanodistro.formats.osv_writer import encode_index, encode_record
from nanodistro.formats.secdb import decode_secdb, encode_secdb
from nanodistro.recipe.expand import subpackage_names
from nanodistro.recipe.loading import load_recipe

TESTDATA = WOLFICTL_ADVISORY_TESTDATA
SAMPLES = FIXTURES / "wolfi-advisories-sample"
DATA = Path(__file__).parent / "data"


def _docs(directory: Path):  # type: ignore[no-untyped-def]
    loaded = load_directory(directory)
    assert loaded.errors == []
    return loaded.documents


@pytest.mark.parametrize(
    ("dirs", "expected"),
    [
        (["advisories"], "security.json"),
        (["advisories", "other-advisories"], "security-multiple.json"),
    ],
)
def test_secdb_equals_wolfictl_expectation(dirs: list[str], expected: str) -> None:
    db = build_secdb(
        [_docs(TESTDATA / "secdb" / d) for d in dirs],
        archs=["x86_64"],
        repo_name="os",
        url_prefix="https://packages.wolfi.dev",
    )
    data = encode_secdb(db)
    assert data == (TESTDATA / "secdb" / expected).read_bytes()
    assert encode_secdb(decode_secdb(data)) == data


def _subpackages(directory: Path) -> dict[str, list[str]]:
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        recipe = load_recipe(path)
        out[recipe.package.name] = [name for _, name, _ in subpackage_names(recipe, "x86_64")]
    return out


def test_osv_equals_wolfictl_expectation() -> None:
    osv = TESTDATA / "osv"
    records = build_osv(
        [
            OsvSource(
                _docs(osv / "advisories-repo-a"),
                ["Chainguard", "Wolfi"],
                _subpackages(osv / "packages-repo-a"),
            ),
            OsvSource(
                _docs(osv / "advisories-repo-b"),
                ["Chainguard"],
                _subpackages(osv / "packages-repo-b"),
            ),
        ]
    )
    expected = sorted(p.name for p in (osv / "expected").glob("CGA-*.json"))
    assert [f"{r.id}.json" for r in records] == expected
    schema = json.loads((DATA / "osv_schema.json").read_text())
    for record in records:
        data = encode_record(record)
        assert data == (osv / "expected" / f"{record.id}.json").read_bytes(), record.id
        jsonschema.validate(json.loads(data), schema)
    assert encode_index(records) == (osv / "expected" / "all.json").read_bytes()


def test_feeds_of_the_75_samples_validate_against_the_schemas() -> None:
    docs = _docs(SAMPLES)
    # one compiled validator per schema: jsonschema.validate() re-checks the schema every call
    osv_schema = json.loads((DATA / "osv_schema.json").read_text())
    vex_schema = json.loads((DATA / "openvex_json_schema.json").read_text())
    osv_validator = jsonschema.validators.validator_for(osv_schema)(osv_schema)
    vex_validator = jsonschema.validators.validator_for(vex_schema)(vex_schema)
    records = build_osv([OsvSource(docs, ["demo"])])
    assert records
    for record in records:
        osv_validator.validate(json.loads(encode_record(record)))
    statuses = set()
    for doc in docs:
        vex = build_openvex(doc, distro="demo", author="demo")
        assert vex is not None
        data = encode_openvex(vex)
        vex_validator.validate(json.loads(data))
        assert encode_openvex(decode_openvex(data)) == data
        statuses |= {st.status for st in vex.statements}
    assert statuses == {"not_affected", "affected", "fixed", "under_investigation"}
    secdb = json.loads(
        encode_secdb(build_secdb([docs], archs=["x86_64"], repo_name="os", url_prefix="u"))
    )
    assert len(secdb["packages"]) > 50
