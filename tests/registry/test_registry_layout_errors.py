"""Broken or hostile layouts give one RegistryError naming the file/field, before any upload."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from registry_testdata import make_layout

from nanodistro.errors import RegistryError
from nanodistro.registry import OciLayout, push_layout

# Port 9 (discard) on loopback: nothing listens, and none of these cases may get that far.
NOWHERE = "127.0.0.1:9/x/y:v1"


def _index(root: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((root / "index.json").read_text())
    return document


def _no_layout_marker(root: Path) -> None:
    (root / "oci-layout").unlink()


def _index_not_json(root: Path) -> None:
    (root / "index.json").write_text("{oops")


def _entry_without_digest(root: Path) -> None:
    index = _index(root)
    del index["manifests"][0]["digest"]
    (root / "index.json").write_text(json.dumps(index))


def _traversal_digest(root: Path) -> None:
    index = _index(root)
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    (root / "index.json").write_text(json.dumps(index))


def _negative_size(root: Path) -> None:
    index = _index(root)
    index["manifests"][0]["size"] = -1
    (root / "index.json").write_text(json.dumps(index))


def _missing_child_manifest(root: Path) -> None:
    index = _index(root)
    top = root / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    child = json.loads(top.read_text())["manifests"][0]["digest"]
    (root / "blobs/sha256" / child.split(":")[1]).unlink()


def _wrong_size(root: Path) -> None:
    index = _index(root)
    index["manifests"][0]["size"] += 1
    (root / "index.json").write_text(json.dumps(index))


def _annotations_not_a_map(root: Path) -> None:
    index = _index(root)
    index["manifests"][0]["annotations"] = ["not", "a", "map"]
    index["manifests"].append(dict(index["manifests"][0]))
    (root / "index.json").write_text(json.dumps(index))


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "no oci-layout": (_no_layout_marker, "no oci-layout file"),
    "index.json not JSON": (_index_not_json, "index.json"),
    "entry without digest": (_entry_without_digest, "digest"),
    "path traversal digest": (_traversal_digest, "invalid digest"),
    "negative size": (_negative_size, "size"),
    "missing child manifest": (_missing_child_manifest, "layout has no blob"),
    "size mismatch": (_wrong_size, "descriptor says"),
    "bad annotations": (_annotations_not_a_map, "several entries including an index"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_layout_is_one_clear_error(case: str, tmp_path: Path) -> None:
    built = make_layout(tmp_path / "layout")
    breaker, needle = CASES[case]
    breaker(built.root)
    with pytest.raises(RegistryError, match=needle):
        push_layout(built.root, NOWHERE)


def test_layout_reads_verify_and_refuse_traversal(tmp_path: Path) -> None:
    built = make_layout(tmp_path / "layout")
    layout = OciLayout(built.root)
    with pytest.raises(RegistryError, match="invalid digest"):
        layout.blob_path("sha256:../../x")
    digest = built.blob_digests[0]
    layout.blob_path(digest).write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="tampered or corrupt"):
        layout.read_blob(digest)
    created = OciLayout.create(tmp_path / "new")
    assert created.manifests() == []
    created.add_manifest({"mediaType": "x", "digest": digest, "size": 1}, "v1")
    created.add_manifest({"mediaType": "x", "digest": digest, "size": 1}, "v1")
    assert len(created.manifests()) == 1
