"""Webhooks in: GitHub ``release`` deliveries (HMAC checked on the raw body) and the generic
token hook each queue one check of the recipes naming the upstream; recipe <-> upstream
matching over real Wolfi recipes."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from webapp import bearer, console, empty_workspace

from fixture_paths import FIXTURES
from nanodistro.web.runs import RunStore
from nanodistro.web.upstreams import match, parse_query, recipe_upstreams, workspace_upstreams

WOLFI = FIXTURES / "wolfi-os-sample"
SECRET = b"s3cret-for-the-github-hook-0123456789"

# Hand-written recipes for what the Wolfi sample lacks: a github.com fetch URI without a github
# monitor, a mirror:// fetch, a recipe opting into pre-releases, an unmonitored recipe.
EXTRA_RECIPES = {
    "tarball-from-github": """
package:
  name: tarball-from-github
  version: "1.4.0"
  epoch: 0
pipeline:
  - uses: fetch
    with:
      uri: https://github.com/Acme/Widget/archive/refs/tags/v${{package.version}}.tar.gz
      expected-sha256: 0000000000000000000000000000000000000000000000000000000000000000
update:
  enabled: true
  release-monitor:
    identifier: 4242
""",
    "mirrored": """
package:
  name: mirrored
  version: "2.1"
  epoch: 0
pipeline:
  - uses: fetch
    with:
      uri: mirror://upstream/releases/mirrored-${{package.version}}.tar.gz
      expected-sha256: 0000000000000000000000000000000000000000000000000000000000000000
update:
  enabled: true
  http-regex:
    url: https://downloads.example.org/releases/
    pattern: 'mirrored-([0-9.]+)\\.tar\\.gz'
""",
    "widget-nightly": """
package:
  name: widget-nightly
  version: "1.5.0_rc1"
  epoch: 0
pipeline:
  - uses: git-checkout
    with:
      repository: https://github.com/acme/widget.git
      tag: v${{package.version}}
update:
  enabled: true
  enable-prerelease-tags: true
  github:
    identifier: acme/widget
""",
    "widget-docs": """
package:
  name: widget-docs
  version: "1.4.0"
  epoch: 0
pipeline:
  - uses: git-checkout
    with:
      repository: https://github.com/acme/widget
""",
}

TOML = """
[mirrors]
upstream = "https://downloads.example.org"

[webhooks]
github-secret-file = "github.secret"
"""


def hook_workspace(root: Path, *, secret: bool = True) -> Path:
    empty_workspace(root, TOML if secret else "")
    if secret:
        (root / "github.secret").write_bytes(SECRET + b"\n")
    for name in ("htop", "fmt", "gosu", "simdjson", "crfsuite"):
        shutil.copy(WOLFI / f"{name}.yaml", root / "recipes" / f"{name}.yaml")
    for name, text in EXTRA_RECIPES.items():
        (root / "recipes" / f"{name}.yaml").write_text(text.lstrip())
    return root


def release_body(
    repo: str = "htop-dev/htop", action: str = "released", tag: str = "3.6.0", **release: Any
) -> bytes:
    payload = {
        "action": action,
        "release": {"tag_name": tag, "prerelease": False, "draft": False, **release},
        "repository": {"full_name": repo, "html_url": f"https://github.com/{repo}"},
        "sender": {"login": "octocat"},
    }
    return json.dumps(payload).encode()


def signed(
    body: bytes, delivery: str = "d-1", event: str = "release", secret: bytes = SECRET
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }


def checks(store: RunStore) -> list[Any]:
    return store.list(kind="check")


# ------------------------------------------------------------------ matching (upstreams.py)


def test_matching_over_the_wolfi_sample() -> None:
    recipes = workspace_upstreams(sorted(WOLFI.glob("*.yaml")))
    assert len(recipes) == len(list(WOLFI.glob("*.yaml")))  # every real recipe reads

    def names(text: str) -> list[str]:
        return [r.recipe for r in match(parse_query(text), recipes)]

    # update.github.identifier, any spelling GitHub accepts
    assert names("github:htop-dev/htop") == ["htop"]
    assert names("github:HTOP-dev/Htop") == ["htop"]
    assert names("htop-dev/htop") == ["htop"]
    # a github.com URL is the same upstream; a trailing slash / .git in the recipe too
    assert names("https://github.com/fmtlib/fmt/releases/tag/11.2.0") == ["fmt"]
    assert names("https://github.com/simdjson/simdjson.git") == ["simdjson"]
    # only the git-checkout names it (update disabled): matched, but not monitored
    (crfsuite,) = match(parse_query("github:chokkan/crfsuite"), recipes)
    assert crfsuite.recipe == "crfsuite" and not crfsuite.monitored
    assert names("gosu") == ["gosu"]  # a recipe name
    assert names("github:nobody/nothing") == []
    assert names("https://example.invalid/") == []


def test_matching_fetch_uris_mirrors_and_prereleases(tmp_path: Path) -> None:
    root = hook_workspace(tmp_path / "ws")
    mirrors = {"upstream": "https://downloads.example.org"}
    recipes = workspace_upstreams(sorted((root / "recipes").glob("*.yaml")), mirrors)

    def names(text: str) -> list[str]:
        return [r.recipe for r in match(parse_query(text), recipes)]

    # a fetch of a github.com archive names github:acme/widget (as does the git-checkout)
    assert names("github:acme/widget") == ["tarball-from-github", "widget-docs", "widget-nightly"]
    # a mirror:// fetch, resolved with [mirrors]; the download directory or the file itself
    assert names("http://downloads.example.org/releases/") == ["mirrored"]
    assert names("https://downloads.example.org/releases/mirrored-2.1.tar.gz") == ["mirrored"]
    assert names("https://downloads.example.org/rel") == []  # a prefix of a name is not a dir
    assert names("release-monitor:4242") == ["tarball-from-github"]
    nightly = recipe_upstreams(root / "recipes" / "widget-nightly.yaml")
    assert nightly.prereleases and nightly.monitored
    # without [mirrors] the mirror:// URI names nothing (the host's apt config is not read)
    alone = recipe_upstreams(root / "recipes" / "mirrored.yaml")
    assert alone.urls == {"https://downloads.example.org/releases"}  # only the http-regex url


def test_a_broken_recipe_does_not_stop_matching(tmp_path: Path) -> None:
    root = hook_workspace(tmp_path / "ws")
    (root / "recipes" / "broken.yaml").write_text("package: [not, a, mapping\n")
    recipes = workspace_upstreams(sorted((root / "recipes").glob("*.yaml")))
    assert "broken" not in {r.recipe for r in recipes}
    assert [r.recipe for r in match(parse_query("github:htop-dev/htop"), recipes)] == ["htop"]


# ------------------------------------------------------------------ POST /hooks/github


def test_a_signed_release_schedules_exactly_one_check_and_a_redelivery_none(
    tmp_path: Path,
) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        body = release_body()
        answer = client.post("/hooks/github", content=body, headers=signed(body, "abc-1"))
        assert answer.status_code == 202, answer.text
        out = answer.json()
        assert out["status"] == "scheduled" and out["recipes"] == ["htop"]
        (run,) = checks(context.runs)
        assert out["scheduled"]["id"] == run.id and run.requested_by == "github"
        assert run.params == {
            "recipes": ["htop"],
            "upstream": "github:htop-dev/htop",
            "release": "3.6.0",
        }
        # GitHub redelivers the same delivery (same id): the same run, nothing new
        again = client.post("/hooks/github", content=body, headers=signed(body, "abc-1"))
        assert again.status_code == 202
        assert again.json()["status"] == "duplicate"
        assert again.json()["scheduled"]["id"] == run.id
        assert len(checks(context.runs)) == 1
        # another release of the same upstream is another delivery: a second check
        other = release_body(tag="3.6.1")
        client.post("/hooks/github", content=other, headers=signed(other, "abc-2"))
        assert len(checks(context.runs)) == 2


def test_a_wrong_or_missing_signature_is_401_and_schedules_nothing(tmp_path: Path) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        body = release_body()
        attacks = {
            "another secret": signed(body, secret=b"not-the-secret-0123456789"),
            "no signature": {k: v for k, v in signed(body).items() if k != "X-Hub-Signature-256"},
            "sha1 scheme": {
                **signed(body),
                "X-Hub-Signature-256": "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest(),
            },
            "empty": {**signed(body), "X-Hub-Signature-256": "sha256="},
            "non-ascii": {**signed(body), "X-Hub-Signature-256": "sha256=\u00e9".encode("latin-1")},
        }
        for name, headers in attacks.items():
            answer = client.post("/hooks/github", content=body, headers=headers)
            assert answer.status_code == 401, (name, answer.text)
            assert "X-Hub-Signature-256" in answer.json()["detail"]
        # a genuine signature replayed over a body changed to name another upstream
        tampered = release_body(repo="fmtlib/fmt")
        answer = client.post("/hooks/github", content=tampered, headers=signed(body, "x"))
        assert answer.status_code == 401
        # an unsigned body is refused before it is parsed: garbage is 401, not 400
        answer = client.post(
            "/hooks/github", content=b"{not json", headers={"X-GitHub-Event": "release"}
        )
        assert answer.status_code == 401
        assert context.runs.list() == []


def test_hooks_disabled_without_a_secret(tmp_path: Path) -> None:
    with console(hook_workspace(tmp_path / "ws", secret=False)) as (client, context):
        body = release_body()
        answer = client.post("/hooks/github", content=body, headers=signed(body))
        assert answer.status_code == 404
        assert "github-secret-file" in answer.json()["detail"]
        assert context.runs.list() == []


def test_ping_other_events_and_actions(tmp_path: Path) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
        answer = client.post("/hooks/github", content=ping, headers=signed(ping, event="ping"))
        assert answer.status_code == 200 and answer.json()["status"] == "pong"
        push = json.dumps({"ref": "refs/heads/main"}).encode()
        answer = client.post("/hooks/github", content=push, headers=signed(push, event="push"))
        assert answer.status_code == 202 and answer.json()["status"] == "ignored"
        assert "'push'" in answer.json()["reason"]
        # GitHub sends published + released for one release: only 'released' acts
        for action in ("published", "created", "edited", "deleted"):
            body = release_body(action=action)
            answer = client.post("/hooks/github", content=body, headers=signed(body, action))
            assert answer.json()["status"] == "ignored", action
        draft = release_body(draft=True)
        answer = client.post("/hooks/github", content=draft, headers=signed(draft, "draft"))
        assert answer.json()["status"] == "ignored" and "draft" in answer.json()["reason"]
        # nobody's upstream: 202, nothing scheduled
        body = release_body(repo="nobody/nothing")
        answer = client.post("/hooks/github", content=body, headers=signed(body, "nobody"))
        assert answer.status_code == 202
        assert answer.json()["status"] == "ignored" and answer.json()["scheduled"] is None
        # only an unmonitored recipe names it: said, not scheduled
        body = release_body(repo="chokkan/crfsuite")
        answer = client.post("/hooks/github", content=body, headers=signed(body, "crf"))
        assert answer.json()["scheduled"] is None
        assert answer.json()["not_monitored"] == ["crfsuite"]
        assert context.runs.list() == []


def test_prereleases_check_only_recipes_that_want_them(tmp_path: Path) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        body = release_body("acme/widget", action="prereleased", tag="v1.5.0-rc2", prerelease=True)
        answer = client.post("/hooks/github", content=body, headers=signed(body, "pre"))
        assert answer.json()["recipes"] == ["widget-nightly"]
        body = release_body("Acme/Widget", tag="v1.5.0")
        answer = client.post("/hooks/github", content=body, headers=signed(body, "rel"))
        # widget-docs names it too but has no update: block
        assert answer.json()["recipes"] == ["tarball-from-github", "widget-nightly"]
        assert answer.json()["not_monitored"] == ["widget-docs"]
        assert [r.params["recipes"] for r in checks(context.runs)] == [
            ["tarball-from-github", "widget-nightly"],
            ["widget-nightly"],
        ]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b"\xff\xfe", b"", b'{"action": "released"}', b'{"repository": 5}'],
)
def test_odd_signed_bodies_are_400_not_500(tmp_path: Path, body: bytes) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        answer = client.post("/hooks/github", content=body, headers=signed(body))
        assert answer.status_code == 400, answer.text
        assert context.runs.list() == []


def test_no_event_header_is_ignored(tmp_path: Path) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        body = release_body()
        headers = {k: v for k, v in signed(body).items() if k != "X-GitHub-Event"}
        answer = client.post("/hooks/github", content=body, headers=headers)
        assert answer.status_code == 202 and answer.json()["status"] == "ignored"
        assert context.runs.list() == []


# ------------------------------------------------------------------ POST /hooks/generic


def test_generic_hook_needs_a_token_and_matches_like_github(tmp_path: Path) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        payload = {"upstream": "github:htop-dev/htop", "version": "3.6.0"}
        assert client.post("/hooks/generic", json=payload).status_code == 401
        bad = {"Authorization": "Bearer ndt_forged"}
        assert client.post("/hooks/generic", json=payload, headers=bad).status_code == 401
        assert context.runs.list() == []

        headers = bearer(context, "ci")
        answer = client.post("/hooks/generic", json=payload, headers=headers)
        assert answer.status_code == 202 and answer.json()["recipes"] == ["htop"]
        by_url = {"upstream": "https://downloads.example.org/releases/"}
        assert client.post("/hooks/generic", json=by_url, headers=headers).json()["recipes"] == [
            "mirrored"
        ]
        by_name = {"upstream": "gosu"}
        assert client.post("/hooks/generic", json=by_name, headers=headers).json()["recipes"] == [
            "gosu"
        ]
        nothing = client.post("/hooks/generic", json={"upstream": "zzz"}, headers=headers)
        assert nothing.status_code == 202 and nothing.json()["scheduled"] is None
        runs = checks(context.runs)
        assert [r.params["recipes"] for r in runs] == [["gosu"], ["mirrored"], ["htop"]]
        assert {r.requested_by for r in runs} == {"ci"}
        # a delivery id makes a retried notification one run
        once = {"upstream": "fmtlib/fmt", "delivery": "n-1"}
        first = client.post("/hooks/generic", json=once, headers=headers).json()
        second = client.post("/hooks/generic", json=once, headers=headers).json()
        assert (first["status"], second["status"]) == ("scheduled", "duplicate")
        assert len(checks(context.runs)) == 4
        # odd bodies: 422, never 500
        for odd in ({}, {"upstream": ""}, {"upstream": 5}, [1]):
            assert client.post("/hooks/generic", json=odd, headers=headers).status_code == 422
        raw = client.post("/hooks/generic", content=b"{", headers=headers)
        assert raw.status_code == 422


def test_an_oversized_body_is_413_even_when_signed(tmp_path: Path) -> None:
    with console(hook_workspace(tmp_path / "ws")) as (client, context):
        body = release_body()[:-1] + b', "padding": "' + b"x" * (1024 * 1024) + b'"}'
        answer = client.post("/hooks/github", content=body, headers=signed(body))
        assert answer.status_code == 413
        assert context.runs.list() == []
