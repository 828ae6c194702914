"""The catalog, package and freshness pages (the DOM the browser tests rely on), the vendored
chart library's bytes, and the pages over a really built miniature catalog (slow)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from catalog_state import seed_catalog
from fastapi.testclient import TestClient
from webapp import console, empty_workspace

from nanodistro.web.app import STATIC
from nanodistro.web.context import WebContext


class Page(HTMLParser):
    """Elements as (tag, attributes, text inside), in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[list[str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text: list[str] = []
        self.elements.append((tag, {k: v or "" for k, v in attrs}, text))
        if tag not in ("input", "link", "meta", "br", "img"):
            self._open.append(text)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for text in self._open:
            text.append(data)

    def find(self, tag: str, **attrs: str) -> list[tuple[dict[str, str], str]]:
        found = []
        for name, have, text in self.elements:
            wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
            if name == tag and all(have.get(k) == v for k, v in wanted.items()):
                found.append((have, "".join(text).strip()))
        return found


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[TestClient, WebContext]]:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        seed_catalog(root, context.write_state)
        yield client, context


def page(client: TestClient, path: str, status: int = 200) -> Page:
    answer = client.get(path)
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    return Page(answer.text)


def catalog_rows(html: str) -> dict[str, str]:
    """package -> the stable version cell, from the catalog table's rows."""
    rows = re.findall(
        r'<tr data-package="([^"]+)".*?<td class="version mono">([^<]*)</td>', html, re.S
    )
    return dict(rows)


def test_catalog_page_lists_packages_with_their_stable_version(
    seeded: tuple[TestClient, WebContext],
) -> None:
    client, _context = seeded
    answer = client.get("/")
    parsed = Page(answer.text)
    assert parsed.find("table", id="catalog")
    assert catalog_rows(answer.text) == {
        "hello": "2.0-r0",
        "libgreet": "1.2.0-r0",
        "libgreet-dev": "1.2.0-r0",
        "newthing": "",
    }
    links = {text: a["href"] for a, text in parsed.find("a") if a["href"].startswith("/packages/")}
    assert links["libgreet"] == "/packages/libgreet"
    # staging ahead of stable, kept out by the gate, a newer upstream known
    assert "gate-blocked" in [t for _a, t in parsed.find("span", class_="badge gate-blocked")]
    assert "stale: 1.3.0" in [t for _a, t in parsed.find("span", class_="badge stale")]
    assert parsed.find("input", id="catalog-filter")


def test_package_page_shows_current_version_history_and_rebuild(
    seeded: tuple[TestClient, WebContext],
) -> None:
    client, _context = seeded
    parsed = page(client, "/packages/libgreet")
    ((_attrs, current),) = parsed.find("span", id="current-version")
    assert current == "1.2.0-r0"
    versions = [a["data-version"] for a, _t in parsed.find("tr") if "data-version" in a]
    assert versions == ["1.3.0-r0", "1.2.0-r0"]
    ((button, _text),) = parsed.find("button", id="rebuild")
    assert button["data-post"] == "/api/recipes/libgreet/rebuild"
    assert button["data-follow"] == "run"
    dependents = [t for a, t in parsed.find("a") if a["href"] == "/packages/hello"]
    assert dependents == ["hello"]

    hello = page(client, "/packages/hello")
    jobs = [a["href"] for a, _t in hello.find("a") if a["href"].startswith("/jobs/")]
    assert jobs and all(re.fullmatch(r"/jobs/\d+", j) for j in jobs)
    assert "CGA-aaaa-bbbb-cccc" in [t for _a, t in hello.find("td", class_="mono")]
    lazy = {a["id"]: a["data-src"] for a, _t in hello.find("details")}
    assert lazy == {
        "sbom": "/api/packages/hello/sbom",
        "provenance": "/api/packages/hello/provenance",
    }


@pytest.mark.parametrize("name", ["nosuch", "...", "a%20b%3Cscript%3E", "x" * 400])
def test_unknown_package_page_is_404_with_a_reason(
    seeded: tuple[TestClient, WebContext], name: str
) -> None:
    client, _context = seeded
    parsed = page(client, f"/packages/{name}", status=404)
    ((_attrs, reason),) = parsed.find("p", id="not-found")
    assert "no package or recipe named" in reason
    if "script" in name:  # escaped: the name stays text inside the paragraph, not markup
        assert "a b<script>" in reason
    assert not parsed.find("span", id="current-version")


def test_freshness_page_draws_charts_from_inline_series(
    seeded: tuple[TestClient, WebContext],
) -> None:
    client, _context = seeded
    answer = client.get("/freshness")
    parsed = Page(answer.text)
    scripts = [a.get("src") for a, _t in parsed.find("script")]
    assert "/static/vendor/uplot/uPlot.iife.min.js" in scripts
    assert "/static/charts.js" in scripts
    ((_a, data),) = parsed.find("script", id="freshness-series")
    (point,) = json.loads(data)
    assert point["cumulative_p50"] == 18000.0
    charts = parsed.find("div", class_="chart", **{"data-chart": "freshness-series"})
    assert len(charts) == 2
    stale = [a["data-package"] for a, _t in parsed.find("tr") if "data-package" in a]
    assert stale[:2] == ["libgreet", "libgreet-dev"]
    # every static file a page names is served from this server, none from elsewhere
    for src in [*scripts, *[a["href"] for a, _t in parsed.find("link")]]:
        if src:
            assert src.startswith("/static/"), src
            assert client.get(src).status_code == 200, src


def test_empty_workspace_pages_render(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws")) as (client, _context):
        assert "Nothing built yet" in client.get("/").text
        assert client.get("/freshness").status_code == 200


def _recorded_hashes() -> dict[str, str]:
    readme = (STATIC / "vendor" / "README.md").read_text()
    return dict(re.findall(r"\| `(uplot/[^`]+)` \([^)]*\) \| `([0-9a-f]{64})` \|", readme))


def test_vendored_chart_library_matches_the_recorded_hashes() -> None:
    recorded = _recorded_hashes()
    assert set(recorded) == {"uplot/uPlot.iife.min.js", "uplot/uPlot.min.css", "uplot/LICENSE"}
    for name, digest in recorded.items():
        data = (STATIC / "vendor" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
    script = (Path(__file__).parents[2] / "scripts" / "vendor-web-assets.sh").read_text()
    readme = (STATIC / "vendor" / "README.md").read_text()
    integrity = re.search(r'UPLOT_INTEGRITY="(sha512-[^"]+)"', script)
    assert integrity is not None and integrity.group(1) in readme
    assert "MIT" in (STATIC / "vendor" / "uplot" / "LICENSE").read_text()


# --------------------------------------------------------------- a really built catalog (slow)


@pytest.fixture(scope="module")
def built(built_catalog: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shared_catalog import copy_catalog

    return copy_catalog(built_catalog, tmp_path_factory.mktemp("built"))


@pytest.mark.slow
def test_pages_and_api_over_a_built_catalog(built: Path) -> None:
    with console(built) as (client, _context):
        html = client.get("/").text
        rows = catalog_rows(html)
        assert rows["hello"] == "2.0-r0"
        assert rows["libgreet"] == "1.2.0-r0"
        assert {"ca-certs", "mini-baselayout"} <= set(rows)
        assert Page(client.get("/packages/hello").text).find("span", id="current-version")[0][
            1
        ] == ("2.0-r0")
        hello = client.get("/api/packages/hello").json()
        assert hello["status"] in ("built", "passed")
        assert [j["kind"] for j in hello["jobs"]].count("build") >= 1
        assert hello["versions"][0]["recipe_sha256"]
        sbom = client.get("/api/packages/hello/sbom").json()
        assert sbom["spdxVersion"] == "SPDX-2.3"
        assert "hello" in {p["name"] for p in sbom["packages"]}
        provenance = client.get("/api/packages/hello/provenance")
        assert provenance.status_code == 200, provenance.text
        statement = provenance.json()["envelopes"][0]["statement"]
        assert statement["subject"][0]["name"].startswith("hello-2.0-r0")
        assert (built / "keys" / "cosign.pub").is_file()  # the factory made the key pair
        assert provenance.json()["verified"] is True, provenance.json()["problem"]
        freshness = client.get("/api/freshness").json()
        # no monitored upstream in this catalog: versions are listed, without release times
        published = {p["package"]: p for p in freshness["packages"]}
        assert published["hello"]["published"] and published["hello"]["released"] is None


def test_catalog_page_filters_and_pages_on_the_server(tmp_path: Path) -> None:
    from catalog_state import seed_synthetic

    from nanodistro.web.pages_catalog import PAGE_ROWS

    def packages(html: str) -> list[str]:
        return re.findall(r'<tr data-package="([^"]+)"', html)

    root = empty_workspace(tmp_path / "ws")
    with console(root) as (client, context):
        seed_synthetic(root, context.write_state, 600)
        first = client.get("/").text
        assert packages(first) == [f"pkg{i:04d}" for i in range(PAGE_ROWS)]
        assert "page 1 of 3" in first and 'rel="next" href="?q=&page=2"' in first
        last = client.get("/", params={"page": 3}).text
        assert packages(last) == [f"pkg{i:04d}" for i in range(2 * PAGE_ROWS, 600)]
        assert packages(client.get("/", params={"page": 99}).text) == packages(last)
        found = client.get("/", params={"q": "PKG0512"}).text
        assert packages(found) == ["pkg0512"] and "1 of 600" in found
        assert "No package matches." in client.get("/", params={"q": "zzz"}).text
        assert client.get("/", params={"page": 0}).status_code == 422
