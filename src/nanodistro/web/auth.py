"""API tokens: created once and shown once, kept only as their sha256.

A token is 32 random bytes (``ndt_`` + URL-safe base64), so a plain sha256 is enough to keep
it: nothing short enough to guess is stored, and the lookup is by that digest (as GitHub does for
its tokens). Revoked tokens stay in the table so their names cannot be reused by mistake.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nanodistro.errors import ConfigError
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import ApiTokenRow
from nanodistro.factory.state.types import utcnow

__all__ = ["PREFIX", "TokenInfo", "authenticate", "create_token", "list_tokens", "revoke_token"]

PREFIX = "ndt_"


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    last_used: datetime | None
    revoked_at: datetime | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.name, row.created_at, row.last_used, row.revoked_at)


def create_token(state: State, name: str) -> str:
    """A new token named ``name`` (unique); the secret is returned here and nowhere else."""
    if not name or len(name) > 255 or not name.isprintable():
        raise ConfigError("expected a printable name of 1 to 255 characters", field="token name")
    token = PREFIX + secrets.token_urlsafe(32)
    with state.session() as session:
        session.add(ApiTokenRow(name=name, sha256=_digest(token)))
        try:
            session.commit()
        except IntegrityError:
            raise ConfigError(
                f"a token named {name!r} exists (revoked ones keep their names)",
                field="token name",
            ) from None
    return token


def list_tokens(state: State) -> list[TokenInfo]:
    with state.session() as session:
        return [_info(r) for r in session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]


def revoke_token(state: State, name: str) -> TokenInfo:
    with state.session() as session:
        row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name))
        if row is None:
            raise ConfigError(f"no token named {name!r}", field="token name")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.commit()
        return _info(row)


def authenticate(state: State, token: str) -> str | None:
    """The name of the live token ``token`` is, or None."""
    if not token.startswith(PREFIX):
        return None
    with state.session() as session:
        row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.sha256 == _digest(token)))
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        # one write a minute at most: reads with a token must not each take the write lock
        if row.last_used is None or (now - row.last_used).total_seconds() > 60:
            row.last_used = now
            session.commit()
        return row.name
