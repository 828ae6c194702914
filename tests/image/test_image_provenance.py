"""Image provenance statements: schema-valid, naming every installed package and the config."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import jsonschema

from nanodistro.formats.intoto import parse_provenance, parse_statement
from nanodistro.image.lock import LockedPackage
from nanodistro.image.provenance import ImageInputs, image_provenance_statement

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "formats/data/slsa_provenance_v1.schema.json").read_text()
)


def test_image_statement_names_packages_config_and_repositories() -> None:
    digest = "sha256:" + "ab" * 32
    packages = [
        LockedPackage("busybox", "1.36-r0", "https://r.example/x86_64/busybox-1.36-r0.apk",
                      "x86_64", "Q1abc="),
        LockedPackage("glibc", "2.40-r1", "https://r.example/x86_64/glibc-2.40-r1.apk",
                      "x86_64", "Q1def="),
    ]  # fmt: skip
    inputs = ImageInputs(
        name="registry.example/app",
        digest=digest,
        config_path="images/app.yaml",
        config_bytes=b"contents: {}\n",
        packages=packages,
        repositories=["https://r.example"],
        archs=["x86_64"],
        package_sha256={"x86_64/busybox-1.36-r0": "cd" * 32},
        started=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        finished=datetime.datetime(2024, 1, 1, 0, 0, 5, tzinfo=datetime.UTC),
        invocation_id="run-1",
    )
    statement = image_provenance_statement(inputs)
    document = statement.to_json()
    jsonschema.validate(document, SCHEMA)
    assert document["subject"] == [
        {"name": "registry.example/app", "digest": {"sha256": "ab" * 32}}
    ]
    parsed = parse_provenance(parse_statement(statement.to_bytes()))
    deps = {d.name or d.uri: d for d in parsed.resolved_dependencies}
    assert deps["images/app.yaml"].digest["sha256"] == hashlib.sha256(b"contents: {}\n").hexdigest()
    assert deps["https://r.example"].annotations["kind"] == "repository"
    assert deps["busybox-1.36-r0"].digest["sha256"] == "cd" * 32
    assert deps["glibc-2.40-r1"].annotations["apkChecksum"] == "Q1def="
    assert parsed.build_type == "https://nanodistro.dev/build/image/v1"
    # deterministic bytes, and an input change shows
    assert image_provenance_statement(inputs).to_bytes() == statement.to_bytes()
    changed = ImageInputs(**{**inputs.__dict__, "config_bytes": b"contents: {x: 1}\n"})
    assert image_provenance_statement(changed).to_bytes() != statement.to_bytes()
