"""What every request handler of the console and API reaches: the workspace, its state, the
settings, the run queue, and the access checks (FastAPI dependencies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nanodistro.factory.state.db import State
from nanodistro.factory.workspace import Workspace
from nanodistro.web.auth import authenticate
from nanodistro.web.runs import FactoryRunner, RunStore
from nanodistro.web.settings import ServeSettings

__all__ = [
    "AUTH_RESPONSES",
    "BODY_RESPONSES",
    "TOKEN_COOKIE",
    "Ctx",
    "Reader",
    "WebContext",
    "Writer",
    "get_context",
    "reader",
    "writer",
]


@dataclass
class WebContext:
    """``state`` is for reading (opened read-only beside the runner, so pages never wait for
    a cycle's writes); writes (runs, token use) go through ``runs.state``."""

    workspace: Workspace
    state: State
    settings: ServeSettings
    runs: RunStore
    runner: FactoryRunner | None = None
    # services started with the app (webhook dispatcher...), each with start()/stop()
    services: list[Any] = field(default_factory=list)

    @property
    def write_state(self) -> State:
        return self.runs.state


def get_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.context
    return context


Ctx = Annotated[WebContext, Depends(get_context)]

# auto_error=False: a missing header is ours to answer (401 with a reason), and public reads
# need no header at all. The scheme still appears in the OpenAPI document.
_bearer = HTTPBearer(auto_error=False, description="A token from `nanodistro token create`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token_name(context: WebContext, credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise HTTPException(
            401,
            "a token is needed: send 'Authorization: Bearer <token>' (nanodistro token create)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    name = authenticate(context.write_state, credentials.credentials)
    if name is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return name


def writer(context: Ctx, credentials: Credentials) -> str:
    """Writes always need a token; the token's name (recorded as who asked)."""
    return _token_name(context, credentials)


TOKEN_COOKIE = "nanodistro_token"


def reader(request: Request, context: Ctx, credentials: Credentials) -> str | None:
    """Reads need a token only when ``[serve] public-reads = false``; a browser sends it as
    the cookie the console's sign-in sets (pages are plain navigations, without headers).
    Writes never take the cookie, so another site cannot make a browser trigger anything."""
    if context.settings.public_reads and credentials is None:
        return None
    cookie = request.cookies.get(TOKEN_COOKIE)
    if credentials is None and cookie:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=cookie)
    return _token_name(context, credentials)


# Documented on every API route: writes always need a token, reads when public-reads = false.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "A token is needed, or the one sent is unknown or revoked."}
}
# ...and on routes taking a JSON body: FastAPI answers 400 for bytes that are not JSON text.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON text (e.g. not UTF-8)."}
}

Writer = Annotated[str, Depends(writer)]
Reader = Annotated[str | None, Depends(reader)]
