"""The catalog API (``/api/catalog``, ``/api/packages/{name}`` with its SBOM and provenance,
``/api/freshness``) over a factory state written directly (tests/web/catalog_state.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_state import T0, seed_catalog
from fastapi.testclient import TestClient
from webapp import console, empty_workspace

from nanodistro.trust.ecdsa import generate_signer
from nanodistro.web.context import WebContext


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[TestClient, WebContext]]:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        signer = generate_signer()
        seed_catalog(root, context.write_state, signer)
        (root / "keys").mkdir(exist_ok=True)
        (root / "keys" / "cosign.pub").write_bytes(signer.public_pem)
        yield client, context


def rows(client: TestClient) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/catalog")
    assert answer.status_code == 200, answer.text
    return {row["package"]: row for row in answer.json()["packages"]}


def test_catalog_lists_each_package_with_its_channel_versions_freshness_and_status(
    seeded: tuple[TestClient, WebContext],
) -> None:
    client, _context = seeded
    answer = client.get("/api/catalog").json()
    assert (answer["stable_version"], answer["staging_version"]) == (1, 2)
    by_name = rows(client)
    # newthing never published: still listed (its first build failed)
    assert list(by_name) == ["hello", "libgreet", "libgreet-dev", "newthing"]
    greet = by_name["libgreet"]
    assert (greet["stable"], greet["staging"], greet["recipe"]) == (
        "1.2.0-r0",
        "1.3.0-r0",
        "libgreet",
    )
    # 1.3.0 is known upstream, built into staging, but the gate kept it out of stable
    assert greet["status"] == "gate-blocked"
    assert greet["freshness"]["stale"] is True
    assert greet["freshness"]["latest_upstream"] == "1.3.0"
    assert greet["freshness"]["release_to_stable"] == 5 * 3600  # released T0, promoted T0+5h
    assert greet["last_update"].startswith("2025-01-03T01:00:00")  # the 1.3.0 build
    hello = by_name["hello"]
    assert (hello["stable"], hello["staging"]) == ("2.0-r0", "2.0-r0")
    assert hello["status"] == "passed"  # its newest build/test event
    assert hello["freshness"]["stale"] is False
    assert hello["freshness"]["release_to_stable"] == 4 * 3600
    assert by_name["newthing"]["status"] == "failed"
    assert (
        by_name["newthing"]["stable"] is None and by_name["newthing"]["url"] == "/packages/newthing"
    )


def test_catalog_of_an_empty_workspace(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws")) as (client, _context):
        answer = client.get("/api/catalog")
        assert answer.status_code == 200
        assert answer.json() == {
            "workspace": "web",
            "stable_version": None,
            "staging_version": None,
            "packages": [],
        }
        assert client.get("/api/freshness").json()["series"] == []


def test_damaged_channel_link_is_no_server_error(seeded: tuple[TestClient, WebContext]) -> None:
    client, context = seeded
    stable = context.workspace.packages_dir / "stable"
    stable.unlink()
    stable.symlink_to("/etc")  # not versions/<N>
    answer = client.get("/api/catalog")
    assert answer.status_code == 200
    assert answer.json()["stable_version"] is None
    assert rows(client)["hello"]["stable"] is None


def test_package_detail(seeded: tuple[TestClient, WebContext]) -> None:
    client, _context = seeded
    answer = client.get("/api/packages/libgreet")
    assert answer.status_code == 200, answer.text
    greet = answer.json()
    assert greet["current_version"] == "1.2.0-r0"
    assert [(v["version"], v["channels"]) for v in greet["versions"]] == [
        ("1.3.0-r0", ["staging"]),
        ("1.2.0-r0", ["stable"]),
    ]
    assert greet["versions"][1]["recipe_sha256"] == "cd" * 32
    assert greet["versions"][1]["repo_version"] == 1
    # hello needs libgreet's soname at run time
    assert greet["dependents"] == [
        {"package": "hello", "version": "2.0-r0", "via": ["so:libgreet.so.1"]}
    ]
    assert greet["images"] == ["hello"]
    assert greet["rebuild_url"] == "/api/recipes/libgreet/rebuild"

    hello = client.get("/api/packages/hello").json()
    assert [(j["kind"], j["url"], j["has_log"]) for j in hello["jobs"]] == [
        ("build", hello["jobs"][0]["url"], True)
    ]  # the image job of the same recipe is not a build log
    assert hello["jobs"][0]["url"].startswith("/jobs/")
    assert [(t["passed"], t["against"]) for t in hello["tests"]] == [
        (True, ["build"]),
        (False, ["x"]),
    ]
    assert hello["tests"][1]["error"] == "boom"
    assert [(a["id"], a["status"], a["fixed_version"]) for a in hello["advisories"]] == [
        ("CGA-aaaa-bbbb-cccc", "fixed", "2.0-r0")
    ]
    assert hello["dependents"] == []

    # a recipe that never published: its page exists, with nothing to show but its status
    newthing = client.get("/api/packages/newthing").json()
    assert (newthing["status"], newthing["current_version"], newthing["sbom_url"]) == (
        "failed",
        None,
        None,
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/packages/nosuch",
        "/api/packages/nosuch/sbom",
        "/api/packages/nosuch/provenance",
        "/api/packages/libgreet/sbom",  # no .apk on disk
        "/api/packages/hello/sbom?version=9.9-r0",
    ],
)
def test_unknown_names_are_404_with_a_reason(
    seeded: tuple[TestClient, WebContext], path: str
) -> None:
    client, _context = seeded
    answer = client.get(path)
    assert answer.status_code == 404
    assert "nosuch" in answer.json()["detail"] or ".apk" in answer.json()["detail"]


@pytest.mark.parametrize("name", ["..", "a b", "x" * 300, "%2e%2e%2fetc", "-rf"])
def test_odd_names_are_client_errors(seeded: tuple[TestClient, WebContext], name: str) -> None:
    client, _context = seeded
    for suffix in ("", "/sbom", "/provenance"):
        answer = client.get(f"/api/packages/{name}{suffix}")
        assert answer.status_code in (404, 422), (name, suffix, answer.status_code)


def test_sbom_is_the_spdx_document_inside_the_stable_apk(
    seeded: tuple[TestClient, WebContext],
) -> None:
    client, _context = seeded
    answer = client.get("/api/packages/hello/sbom")
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["spdxVersion"] == "SPDX-2.3"
    names = {p["name"]: p for p in document["packages"]}
    assert names["hello"]["versionInfo"] == "2.0-r0"
    assert names["hello"]["licenseDeclared"] == "MIT"


def test_provenance_is_read_and_checked_with_the_workspace_key(
    seeded: tuple[TestClient, WebContext],
) -> None:
    client, context = seeded
    answer = client.get("/api/packages/hello/provenance")
    assert answer.status_code == 200, answer.text
    provenance = answer.json()
    assert provenance["file"] == "x86_64/hello-2.0-r0.apk.intoto.jsonl"
    assert provenance["envelopes"][0]["payload_type"] == "application/vnd.in-toto+json"
    assert provenance["envelopes"][0]["statement"]["_type"] == "https://in-toto.io/Statement/v1"
    # signed by the key, but not a SLSA provenance statement: not accepted as verified
    assert provenance["verified"] is False
    # an attacker's key in place of the workspace's: the signature no longer verifies
    (context.workspace.keys_dir / "cosign.pub").write_bytes(generate_signer().public_pem)
    tampered = client.get("/api/packages/hello/provenance").json()
    assert tampered["verified"] is False
    assert "signature" in tampered["problem"] or "verif" in tampered["problem"]


def test_freshness_reports_leads_percentiles_and_a_series_per_promotion(
    seeded: tuple[TestClient, WebContext],
) -> None:
    client, _context = seeded
    answer = client.get("/api/freshness")
    assert answer.status_code == 200, answer.text
    data = answer.json()
    promoted = data["stats"]["release_to_promoted"]
    # hello 4 h, libgreet and libgreet-dev 5 h: nearest-rank p50 and p95 are both 5 h
    assert promoted == {"count": 3, "p50": 18000.0, "p95": 18000.0}
    assert data["stats"]["release_to_published"]["count"] == 5
    (point,) = data["series"]
    assert point["time"].startswith("2025-01-01T05:00:00")
    assert (point["repo_version"], point["count"], point["p50"]) == (1, 3, 18000.0)
    assert point["cumulative_count"] == 3
    assert [row["package"] for row in data["stale"]] == ["libgreet", "libgreet-dev"]
    leads = {(p["package"], p["version"]): p for p in data["packages"]}
    assert leads[("libgreet", "1.3.0-r0")]["release_to_promoted"] is None
    assert leads[("libgreet", "1.3.0-r0")]["release_to_published"] == 3600.0
    assert T0.isoformat()[:10] in leads[("libgreet", "1.2.0-r0")]["released"]


def test_reads_need_a_token_when_not_public(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws", "\n[serve]\npublic-reads = false\n")
    with console(root) as (client, _context):
        for path in ("/api/catalog", "/api/packages/x", "/api/freshness"):
            assert client.get(path).status_code == 401, path
        # a page sends the browser to sign in instead
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/"


def test_openapi_documents_every_catalog_response(seeded: tuple[TestClient, WebContext]) -> None:
    client, _context = seeded
    schema = client.get("/openapi.json").json()
    for path in (
        "/api/catalog",
        "/api/packages/{name}",
        "/api/packages/{name}/sbom",
        "/api/packages/{name}/provenance",
        "/api/freshness",
    ):
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert "$ref" in ok["schema"], path
    assert "/" not in schema["paths"] and "/packages/{name}" not in schema["paths"]


def test_catalog_of_a_thousand_recipes_costs_a_fixed_number_of_queries(tmp_path: Path) -> None:
    """1,000 recipes (3,000 package versions, a promotion per 100 recipes): each page runs a
    bounded number of SQL statements, not one per row (bench/bench_console.py times them)."""
    from catalog_state import seed_synthetic
    from querycount import count_statements

    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        seed_synthetic(root, context.write_state, 1000)
        for path in ("/api/catalog", "/", "/api/freshness", "/freshness", "/packages/pkg0500"):
            with count_statements(context.state.engine, context.write_state.engine) as cold:
                assert client.get(path).status_code == 200, path
            with count_statements(context.state.engine, context.write_state.engine) as warm:
                answer = client.get(path)
            assert answer.status_code == 200
            assert len(cold) <= 20 and len(warm) <= 20, (path, len(cold), len(warm))
        assert len(client.get("/api/catalog").json()["packages"]) == 1000
