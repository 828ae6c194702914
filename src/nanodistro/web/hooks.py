"""Webhooks in: an upstream says it released, the factory checks the recipes naming it.

``POST /hooks/github``: GitHub's ``release`` deliveries, signed with the secret of
``[webhooks] github-secret-file`` (``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw
body>``). The signature is checked on the raw bytes before anything is parsed; a wrong or missing
one is a 401 and nothing is scheduled. GitHub sends several actions for one release: the
``released`` one (a release published, or a pre-release made a release) schedules the check,
``prereleased`` does only for recipes that opt into pre-releases
(``update: enable-prerelease-tags: true``); ``published``, ``created``, ``edited``... are
answered "ignored" so one release is one check, not two. A redelivery (same
``X-GitHub-Delivery``) schedules nothing new.

``POST /hooks/generic``: the same for any upstream, with an API token: ``{"upstream":
"github:owner/repo" | URL | recipe name, "version": ...}``.

Both queue one run of kind ``check`` (a cycle monitoring only those recipes), see web/runs.py.
``services_for`` gives the serving process its background services: the outgoing webhooks
(web/webhooks_out.py) when ``[webhooks] url`` is set.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from nanodistro.web import api_runs
from nanodistro.web.api_runs import RunOut
from nanodistro.web.context import Ctx, WebContext, Writer
from nanodistro.web.upstreams import (
    RecipeUpstreams,
    UpstreamQuery,
    github_key,
    match,
    parse_query,
    workspace_upstreams,
)
from nanodistro.web.webhooks_out import WebhookDispatcher, sign

__all__ = ["GenericHookIn", "HookOut", "router", "services_for", "verify_signature"]

router = APIRouter(prefix="/hooks", tags=["webhooks"])

# A release body is a few kB; GitHub caps payloads at 25 MB. Anything far bigger is not a release.
MAX_BODY = 1024 * 1024
SCHEDULE_ACTIONS = ("released", "prereleased")


class HookOut(BaseModel):
    """What a delivery did."""

    status: Literal["scheduled", "duplicate", "ignored", "pong"]
    reason: str = Field(description="Why, in words.")
    event: str | None = None
    delivery: str | None = None
    upstream: str | None = Field(default=None, description="github:owner/repo, a URL or a name.")
    release: str | None = None
    recipes: list[str] = Field(
        default_factory=list, description="The recipes naming the upstream that the run checks."
    )
    not_monitored: list[str] = Field(
        default_factory=list,
        description="Recipes naming the upstream without an enabled update: block (not checked).",
    )
    scheduled: RunOut | None = Field(
        default=None, description="The check run (the earlier one for a redelivery)."
    )


class GenericHookIn(BaseModel):
    upstream: str = Field(
        min_length=1,
        max_length=2000,
        description="github:owner/repo (or gitlab:, pypi:, npm:, oci:, release-monitor:), "
        "a URL the recipes fetch from, or a recipe name.",
    )
    version: str | None = Field(
        default=None, max_length=255, description="The version released (for the record)."
    )
    delivery: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="An id for this notification: sending it again schedules nothing new.",
    )


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """``header`` is ``sha256=`` + the hex HMAC-SHA256 of ``body`` under ``secret``
    (compared in constant time)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = sign(secret, body)  # the scheme our own outgoing webhooks sign with
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def _answer(out: HookOut, status_code: int) -> JSONResponse:
    return JSONResponse(out.model_dump(mode="json"), status_code=status_code)


def _schedule(
    context: WebContext,
    query: UpstreamQuery,
    release: str | None,
    by: str,
    *,
    dedup_key: str | None,
    only: Any = None,
    base: HookOut,
) -> HookOut:
    """Queue one check of the recipes naming ``query`` (``only``: a further filter)."""
    workspace = context.workspace
    found: list[RecipeUpstreams] = match(
        query, workspace_upstreams(workspace.recipe_files(), workspace.mirrors)
    )
    if only is not None:
        found = [r for r in found if only(r)]
    checked = [r.recipe for r in found if r.monitored]
    base.upstream, base.release = query.label, release
    base.recipes, base.not_monitored = checked, [r.recipe for r in found if not r.monitored]
    if not checked:
        base.status = "ignored"
        base.reason = f"no recipe with an enabled update: block names {query.label}" + (
            f" ({', '.join(base.not_monitored)} name it unmonitored)" if base.not_monitored else ""
        )
        return base
    params = {"recipes": checked, "upstream": query.label, "release": release}
    run, created = api_runs.submit_run(context, "check", params, by, dedup_key=dedup_key)
    if not created:
        base.status, base.scheduled = "duplicate", RunOut.of(run)
        base.reason = f"delivery already scheduled run {run.id}"
        return base
    base.status, base.scheduled = "scheduled", RunOut.of(run)
    base.reason = f"check of {', '.join(checked)} queued as run {run.id}"
    return base


async def _read_body(request: Request) -> bytes:
    """The raw body, refused past ``MAX_BODY`` without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"body over {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, f"body over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_GITHUB_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "GitHub's webhook payload (release: action, release, repository).",
            }
        }
    },
    "required": True,
}


@router.post(
    "/github",
    response_model=HookOut,
    status_code=202,
    summary="GitHub release webhook (HMAC X-Hub-Signature-256)",
    openapi_extra={"requestBody": _GITHUB_BODY},
    responses={
        200: {"model": HookOut, "description": "ping answered."},
        400: {"description": "The signed body is not a JSON object."},
        401: {"description": "Missing or wrong X-Hub-Signature-256: nothing scheduled."},
        404: {"description": "GitHub hooks are disabled ([webhooks] github-secret-file)."},
        413: {"description": "Body too large."},
    },
)
async def post_github(
    request: Request,
    context: Ctx,
    x_github_event: Annotated[str | None, Header()] = None,
    x_github_delivery: Annotated[str | None, Header()] = None,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    secret = context.settings.github_secret
    if secret is None:
        raise HTTPException(
            404,
            "GitHub webhooks are disabled: set [webhooks] github-secret-file in nanodistro.toml",
        )
    body = await _read_body(request)
    # the signature first: nothing of an unsigned body is parsed, logged or acted on
    if not verify_signature(secret, body, x_hub_signature_256):
        raise HTTPException(
            401,
            "missing or wrong X-Hub-Signature-256 (sha256=HMAC-SHA256 of the body with the "
            "github-secret-file secret)",
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "expected a JSON object")
    event = (x_github_event or "").strip()
    delivery = (x_github_delivery or "").strip()[:200] or None
    out = HookOut(status="ignored", reason="", event=event or None, delivery=delivery)
    if event == "ping":
        out.status, out.reason = "pong", "webhook configured"
        return _answer(out, 200)
    if event != "release":
        out.reason = f"event {event or '(none)'!r} is not acted on: only 'release' and 'ping'"
        return _answer(out, 202)
    action = payload.get("action")
    release = payload.get("release")
    if not isinstance(release, dict):
        release = {}
    repository = payload.get("repository")
    full_name = repository.get("full_name") if isinstance(repository, dict) else None
    key = github_key(full_name) if isinstance(full_name, str) else None
    if key is None:
        raise HTTPException(400, "expected repository.full_name 'owner/repo' in a release event")
    tag = release.get("tag_name")
    tag = tag if isinstance(tag, str) else None
    out.upstream, out.release = key, tag
    if action not in SCHEDULE_ACTIONS:
        out.reason = (
            f"release action {action!r} is not acted on: 'released' (and 'prereleased' for "
            "recipes with update.enable-prerelease-tags) schedule the check, once per release"
        )
        return _answer(out, 202)
    if bool(release.get("draft")):
        out.reason = "draft releases are not acted on"
        return _answer(out, 202)
    only = None
    if action == "prereleased":

        def only(recipe: RecipeUpstreams) -> bool:
            return recipe.prereleases

    # reading the recipes is file I/O: off the event loop
    out = await run_in_threadpool(
        _schedule,
        context,
        UpstreamQuery(key, key=key),
        tag,
        "github",
        dedup_key=f"github:{delivery}" if delivery else None,
        only=only,
        base=out,
    )
    return _answer(out, 202)


@router.post(
    "/generic",
    response_model=HookOut,
    status_code=202,
    summary="Any upstream released: check the recipes naming it (token needed)",
    responses={
        400: {"description": "The body cannot be parsed (not UTF-8 JSON)."},
        401: {"description": "No or a wrong token."},
    },
)
def post_generic(body: GenericHookIn, context: Ctx, who: Writer) -> HookOut:
    query = parse_query(body.upstream)
    out = HookOut(status="ignored", reason="", event="generic", delivery=body.delivery)
    return _schedule(
        context,
        query,
        body.version,
        who,
        dedup_key=f"generic:{who}:{body.delivery}" if body.delivery else None,
        base=out,
    )


def services_for(context: WebContext) -> list[Any]:
    """Background services the serving process starts (the outgoing webhook dispatcher)."""
    if context.settings.webhook_url is None:
        return []
    return [WebhookDispatcher.for_context(context)]
