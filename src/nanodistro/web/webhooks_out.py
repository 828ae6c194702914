"""Webhooks out: the events a configured URL wants (``[webhooks] url`` and ``events``; by
default promotions, blocked gates and vulnerabilities), POSTed as they are recorded.

The dispatcher follows the append-only event log by id. Its cursor (the last event id handled)
is kept in ``<root>/.nanodistro/webhooks-out.json`` and written after each event, so a restart
neither resends what was delivered nor skips what was recorded while the process was down; the
first start (or a new URL) begins at the newest event, so a new receiver does not get the whole
history. Delivery is at least once: an event is retried with backoff on a connection error,
a 429 or a 5xx, given up (and logged) after ``attempts`` tries or on any other answer than 2xx;
stopping mid-retry leaves the cursor before it, so the next start sends it again.

Each POST is JSON ``{"id", "type", "subject", "time", "payload", "workspace"}`` with headers
``X-Nanodistro-Event: <type>``, ``X-Nanodistro-Delivery: <workspace>:<id>`` and, when
``[webhooks] secret-file`` is set, ``X-Nanodistro-Signature-256: sha256=<HMAC-SHA256 of the
body>`` (the same scheme as GitHub's, so receivers can reuse their check).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import func, select

from nanodistro.factory.events import Event
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import EventRow
from nanodistro.util.atomic import atomic_write_text
from nanodistro.util.http import describe_http_error

if TYPE_CHECKING:
    from nanodistro.web.context import WebContext

__all__ = ["CURSOR_FILE", "WebhookDispatcher", "event_body", "sign"]

log = logging.getLogger(__name__)

CURSOR_FILE = Path(".nanodistro") / "webhooks-out.json"
RETRY_STATUSES = frozenset({408, 429})


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def event_body(event: Event, workspace: str) -> bytes:
    data = {**event.to_json(), "workspace": workspace}
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class WebhookDispatcher:
    """One thread POSTing the wanted events of ``state`` to ``url``, in log order."""

    name = "webhooks-out"

    def __init__(
        self,
        state: State,
        root: Path,
        url: str,
        *,
        workspace: str,
        events: Collection[str],
        secret: bytes | None = None,
        attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        poll: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        self.state = state
        self.cursor_path = root / CURSOR_FILE
        self.url = url
        self.workspace = workspace
        self.events = frozenset(events)
        self.secret = secret
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll = poll
        self.timeout = timeout
        self.cursor: int | None = None
        self.delivered = 0
        self.given_up = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_context(cls, context: WebContext) -> WebhookDispatcher:
        settings = context.settings
        assert settings.webhook_url is not None
        return cls(
            context.state,
            context.workspace.root,
            settings.webhook_url,
            workspace=context.workspace.name,
            events=settings.webhook_events,
            secret=settings.webhook_secret,
        )

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        self.cursor = self._load_cursor()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="webhooks-out", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look for new events now rather than at the next poll."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def shown_url(self) -> str:
        """The URL without credentials or query (which may hold a token), for logs."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @property
    def _url_digest(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()

    # ------------------------------------------------------------------ cursor
    def _newest_id(self) -> int:
        with self.state.session() as session:
            return int(session.scalar(select(func.max(EventRow.id))) or 0)

    def _load_cursor(self) -> int:
        try:
            data = json.loads(self.cursor_path.read_text(encoding="utf-8"))
            if data.get("url_sha256") == self._url_digest and isinstance(
                data.get("last_event_id"), int
            ):
                return int(data["last_event_id"])
        except (OSError, ValueError, AttributeError):
            pass
        # first start, an unreadable cursor or another receiver: from now on, not the history
        newest = self._newest_id()
        self._save_cursor(newest)
        return newest

    def _save_cursor(self, event_id: int) -> None:
        # the URL's digest, not the URL: a receiver's URL may carry a token
        text = json.dumps({"url_sha256": self._url_digest, "last_event_id": event_id}) + "\n"
        atomic_write_text(self.cursor_path, text)
        self.cursor = event_id

    # ------------------------------------------------------------------ work
    def _pending(self, limit: int = 200) -> list[Event]:
        assert self.cursor is not None
        statement = (
            select(EventRow).where(EventRow.id > self.cursor).order_by(EventRow.id).limit(limit)
        )
        with self.state.session() as session:
            return [
                Event(row.id, row.type, row.subject, row.time, dict(row.payload))
                for row in session.scalars(statement)
            ]

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    batch = self._pending()
                except Exception as error:  # the database away for a moment: try again later
                    log.warning("webhooks out: cannot read events: %s", error)
                    batch = []
                for event in batch:
                    if event.type in self.events and not self._deliver(client, event):
                        return  # stopping mid-retry: the cursor stays before this event
                    self._save_cursor(event.id)
                if batch:
                    continue
                self._wake.wait(self.poll)
                self._wake.clear()

    def _deliver(self, client: httpx.Client, event: Event) -> bool:
        """POST ``event`` until it is accepted or given up (True), or the service stops (False)."""
        body = event_body(event, self.workspace)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "nanodistro-webhooks",
            "X-Nanodistro-Event": event.type,
            "X-Nanodistro-Delivery": f"{self.workspace}:{event.id}",
        }
        if self.secret is not None:
            headers["X-Nanodistro-Signature-256"] = sign(self.secret, body)
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            problem: str
            try:
                answer = client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as error:
                problem = describe_http_error(error)
            else:
                if 200 <= answer.status_code < 300:
                    self.delivered += 1
                    return True
                problem = f"HTTP {answer.status_code}"
                if answer.status_code < 500 and answer.status_code not in RETRY_STATUSES:
                    self._give_up(event, problem, attempt)
                    return True
            if attempt == self.attempts:
                self._give_up(event, problem, attempt)
                return True
            log.info(
                "webhooks out: event %s to %s failed (%s), retry in %.1fs",
                event.id,
                self.shown_url,
                problem,
                delay,
            )
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, self.max_backoff)
        return True  # pragma: no cover (the loop always returns)

    def _give_up(self, event: Event, problem: str, attempts: int) -> None:
        self.given_up += 1
        log.error(
            "webhooks out: gave up on event %s (%s %s) to %s after %d attempt(s): %s",
            event.id,
            event.type,
            event.subject,
            self.shown_url,
            attempts,
            problem,
        )

    def status(self) -> dict[str, Any]:
        return {
            "url": self.shown_url,
            "alive": self.alive,
            "cursor": self.cursor,
            "delivered": self.delivered,
            "given_up": self.given_up,
        }
