"""Images in the API and the console: the list, one image's builds (tags, digests, sizes),
package diffs between any two builds, signature and vulnerability status — over a hand-made OCI
layout and state rows (fast), and over the miniature catalog after a second build (slow)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from querycount import count_statements
from webapp import console, empty_workspace

from nanodistro.factory import events
from nanodistro.factory.records import record_image
from nanodistro.factory.state.models import ImageRow
from nanodistro.web.context import WebContext

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REF = "org.opencontainers.image.ref.name"


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}"


def _image(layout: Path, layer: bytes) -> tuple[str, int, int]:
    """An image of one layer: (manifest digest, manifest size, compressed size)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "layer": len(layer)}).encode()
    config_digest, layer_digest = _blob(layout, config), _blob(layout, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return _blob(layout, manifest), len(manifest), len(manifest) + len(config) + len(layer)


def _entry(digest: str, size: int, tag: str) -> dict[str, Any]:
    return {"mediaType": MANIFEST, "digest": digest, "size": size, "annotations": {REF: tag}}


OLD_PACKAGES = ["hello-2.0-r0", "libgreet-1.2.0-r0", "mini-baselayout-1.0-r0", "zoneinfo-2024a-r0"]
NEW_PACKAGES = ["ca-certs-2024.1-r0", "hello-2.0-r1", "libgreet-1.3.0-r0", "mini-baselayout-1.0-r0"]


def make_images(root: Path, context: WebContext) -> dict[str, Any]:
    """``hello``: two builds in its layout (stable = the first, signed; staging = the second);
    ``static``: a build recorded in the state but no layout."""
    layout = root / "out" / "images" / "hello"
    first, first_size, first_total = _image(layout, b"first layer" * 10)
    second, second_size, second_total = _image(layout, b"second, larger layer" * 30)
    entries = [
        _entry(first, first_size, "build-1"),
        _entry(second, second_size, "build-2"),
        _entry(first, first_size, "stable"),
        _entry(second, second_size, "staging"),
        _entry(second, second_size, "latest"),
        # a signature entry as cosign stores it in a layout (names no image)
        _entry(_blob(layout, b"{}"), 2, first.replace(":", "-") + ".sig"),
    ]
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    state = context.write_state
    record_image(state, name="hello", digest=first, tag="build-1", repo_version=1,
                 packages=OLD_PACKAGES)  # fmt: skip
    record_image(state, name="hello", digest=second, tag="build-2", repo_version=2,
                 packages=NEW_PACKAGES)  # fmt: skip
    record_image(state, name="static", digest="sha256:" + "5" * 64, tag="build-1",
                 repo_version=1, packages=["mini-baselayout-1.0-r0"])  # fmt: skip
    events.record(state, events.IMAGE_BUILT, "image:hello", {"digest": first, "tag": "build-1"})
    events.record(state, events.PROMOTED, "image:hello", {"digest": first, "cycle": "c1"})
    events.record(state, events.IMAGE_BUILT, "image:hello", {"digest": second, "tag": "build-2"})
    return {
        "first": first,
        "second": second,
        "first_size": first_total,
        "second_size": second_total,
    }


@pytest.fixture
def images(tmp_path: Path) -> Iterator[tuple[TestClient, WebContext, dict[str, Any]]]:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        yield client, context, make_images(root, context)


def test_list_names_every_image_with_its_tags_size_and_signature(
    images: tuple[TestClient, WebContext, dict[str, Any]],
) -> None:
    client, _context, made = images
    answer = client.get("/api/images")
    assert answer.status_code == 200
    listed = {i["name"]: i for i in answer.json()}
    assert set(listed) == {"hello", "static"}
    hello = listed["hello"]
    assert hello["stable_digest"] == made["first"]
    assert hello["staging_digest"] == made["second"]
    assert hello["size"] == made["first_size"]  # the stable digest's compressed bytes
    assert hello["signed"] is True and hello["builds"] == 2
    static = listed["static"]
    assert static == {**static, "stable_digest": None, "size": None, "signed": False, "builds": 1}

    page = client.get("/images")
    assert page.status_code == 200
    assert '<tr data-image="hello">' in page.text and 'href="/images/static"' in page.text
    assert ">signed<" in page.text


def test_detail_has_builds_tags_sizes_events_and_the_last_diff(
    images: tuple[TestClient, WebContext, dict[str, Any]],
) -> None:
    client, _context, made = images
    detail = client.get("/api/images/hello").json()
    versions = detail["versions"]
    assert [v["digest"] for v in versions] == [made["second"], made["first"]]  # newest first
    assert [v["tags"] for v in versions] == [["staging", "latest"], ["stable"]]
    assert [v["size"] for v in versions] == [made["second_size"], made["first_size"]]
    assert [v["tag"] for v in versions] == ["build-2", "build-1"]
    assert [e["type"] for e in detail["events"]] == ["image-built", "promoted", "image-built"]
    diff = detail["diff"]
    assert (diff["from_digest"], diff["to_digest"]) == (made["first"], made["second"])
    assert diff["added"] == [{"name": "ca-certs", "old": None, "new": "2024.1-r0"}]
    assert diff["removed"] == [{"name": "zoneinfo", "old": "2024a-r0", "new": None}]
    assert diff["changed"] == [
        {"name": "hello", "old": "2.0-r0", "new": "2.0-r1"},
        {"name": "libgreet", "old": "1.2.0-r0", "new": "1.3.0-r0"},
    ]
    assert diff["unchanged"] == 1
    # no cosign.pub in this workspace, no OSV data: both say so instead of guessing
    assert detail["signatures"]["signed"] is False
    assert "no public key" in detail["signatures"]["detail"]
    assert detail["vulnerabilities"]["available"] is False
    assert "no OSV data" in detail["vulnerabilities"]["note"]
    # an image with builds recorded but no layout: history without sizes
    static = client.get("/api/images/static").json()
    assert static["versions"][0]["size"] is None and static["diff"]["changed"] == []


def test_diff_between_any_two_builds_and_unknowns_are_404(
    images: tuple[TestClient, WebContext, dict[str, Any]],
) -> None:
    client, _context, made = images
    back = client.get(
        "/api/images/hello/diff", params={"from": made["second"], "to": made["first"]}
    ).json()
    assert back["added"] == [{"name": "zoneinfo", "old": None, "new": "2024a-r0"}]
    assert {c["name"]: c["new"] for c in back["changed"]} == {
        "hello": "2.0-r0",
        "libgreet": "1.2.0-r0",
    }
    same = client.get("/api/images/hello/diff", params={"from": made["first"], "to": made["first"]})
    assert same.json()["changed"] == [] and same.json()["unchanged"] == 4
    unknown = client.get("/api/images/hello/diff", params={"from": "sha256:" + "0" * 64})
    assert unknown.status_code == 404 and "no recorded build" in unknown.json()["detail"]
    missing = client.get("/api/images/nope")
    assert missing.status_code == 404 and "no image 'nope'" in missing.json()["detail"]
    # a name is never a path: dots and encoded slashes find nothing
    for name in ("..", "...", "%2e%2e", "hello%2f..%2f..", ".hidden"):
        assert client.get(f"/api/images/{name}").status_code == 404, name
        assert client.get(f"/api/images/{name}/diff").status_code == 404, name
    too_long = client.get("/api/images/hello/diff", params={"to": "x" * 300})
    assert too_long.status_code == 422
    assert client.get("/images/nope").status_code == 404
    assert "no image" in client.get("/images/nope").text


def test_image_page_selects_and_diff_table(
    images: tuple[TestClient, WebContext, dict[str, Any]],
) -> None:
    client, _context, made = images
    page = client.get("/images/hello")
    assert page.status_code == 200
    html = page.text
    for select in ("diff-from", "diff-to"):
        options = re.search(rf'<select id="{select}"[^>]*>(.*?)</select>', html, re.S)
        assert options is not None, select
        values = re.findall(r'<option value="([^"]+)"', options.group(1))
        assert values == [made["second"], made["first"]]  # newest first
    assert re.search(rf'<option value="{made["first"]}" selected>', html)
    rows = re.findall(r'<tr class="(diff-\w+)" data-package="([^"]+)">', html)
    assert sorted(rows) == [
        ("diff-added", "ca-certs"),
        ("diff-changed", "hello"),
        ("diff-changed", "libgreet"),
        ("diff-removed", "zoneinfo"),
    ]
    assert "1.2.0-r0" in html and "1.3.0-r0" in html
    # ?from=&to= on the page picks the pair (what changing a select does)
    swapped = client.get("/images/hello", params={"from": made["second"], "to": made["first"]})
    rows = re.findall(r'<tr class="(diff-\w+)" data-package="([^"]+)">', swapped.text)
    assert ("diff-added", "zoneinfo") in rows and ("diff-removed", "ca-certs") in rows
    assert client.get("/images/hello", params={"from": "sha256:" + "1" * 64}).status_code == 404


def test_list_pages_stay_fast_with_thousands_of_rows(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        make_images(root, context)
        now = datetime.now(UTC)
        with context.write_state.session() as session, session.begin():
            session.add_all(
                ImageRow(
                    name=f"image-{i % 40}",
                    digest=f"sha256:{i:064x}",
                    tag=f"build-{i}",
                    repo_version=i,
                    created_at=now - timedelta(minutes=i),
                    packages=[f"p{j}-1.{i}-r0" for j in range(30)],
                )
                for i in range(3000)
            )
        for i in range(40):
            layout = root / "out" / "images" / f"image-{i}"
            digest, size, _total = _image(layout, f"layer {i}".encode())
            entries = [_entry(digest, size, "stable"), _entry(digest, size, "staging")]
            (layout / "index.json").write_text(json.dumps({"manifests": entries}))
        for path in ("/images", "/api/images", "/images/hello", "/images/image-7"):
            assert client.get(path).status_code == 200, path  # warm: sizes are kept per digest
        for path in ("/images", "/api/images", "/images/image-7"):
            # a bounded number of queries whatever the number of rows (bench/bench_console.py
            # measures the time)
            with count_statements(context.state.engine, context.write_state.engine) as sql:
                answer = client.get(path)
            assert answer.status_code == 200
            assert len(sql) <= 8, (path, sql)
        assert len(client.get("/api/images").json()) == 42  # and hello, static


# ------------------------------------------------------------------------- the mini catalog


@pytest.fixture(scope="module")
def rebuilt(built_catalog: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The miniature catalog after a first cycle and a second one that built libgreet 1.3.0."""
    from shared_catalog import copy_catalog

    from mini_catalog import factory_once, release_libgreet

    root = copy_catalog(built_catalog, tmp_path_factory.mktemp("images"))
    release_libgreet(built_catalog.served, "1.3.0")
    second = factory_once(root)
    assert second["status"] == "promoted", second
    return root


@pytest.mark.slow
def test_mini_catalog_image_page_shows_the_second_build_and_its_signature(rebuilt: Path) -> None:
    with console(rebuilt) as (client, _context):
        detail = client.get("/api/images/hello").json()
        assert len(detail["versions"]) == 2
        assert all(v["size"] and v["size"] > 0 for v in detail["versions"])
        changed = {c["name"]: (c["old"], c["new"]) for c in detail["diff"]["changed"]}
        assert changed["hello"] == ("2.0-r0", "2.0-r1"), detail["diff"]
        assert detail["versions"][0]["tags"] == ["stable", "staging", "latest"]
        # promoted images are signed and attested in their layout with keys/cosign.key
        signatures = detail["signatures"]
        assert signatures["signed"] is True, signatures
        assert signatures["digest"] == detail["summary"]["stable_digest"]
        assert {a["kind"] for a in signatures["attestations"] if a["present"]} == {
            "slsaprovenance1",
            "spdxjson",
            "cyclonedx",
        }
        assert detail["vulnerabilities"]["available"] is False  # no OSV data in the workspace
        html = client.get("/images/hello").text
        assert '<tr class="diff-changed" data-package="hello">' in html
        assert 'id="signature-state">signed<' in html
        listed = {i["name"]: i for i in client.get("/api/images").json()}
        assert listed["hello"]["signed"] and listed["static"]["signed"]
        # a job's log as the console follows it: lines, then the end (the factory records
        # no log path for jobs that succeed: the stream says so instead of hanging)
        jobs = client.get("/api/jobs", params={"kind": "build", "limit": 1000}).json()
        assert {j["label"] for j in jobs} >= {"hello", "libgreet"}
        with client.stream("GET", jobs[0]["log_url"]) as stream:
            body = "".join(stream.iter_text()).splitlines()
        assert any(line.startswith("data: ") and len(line) > 6 for line in body)
        assert "event: end" in body[-3:]
