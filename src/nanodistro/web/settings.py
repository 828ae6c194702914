"""The console's settings: ``[serve]`` and ``[webhooks]`` of nanodistro.toml, checked.

``[serve]``: ``public-reads`` (default true: anyone who reaches the port may read; false: reads
need a token too) and ``interval`` (time between scheduled factory cycles, default 10m).
``[webhooks]``: ``url`` (where ``events`` are POSTed; default events: promoted, gate-blocked and
the vulnerability events), ``secret-file`` (HMAC-SHA256 key signing what is sent),
``github-secret-file`` (the secret GitHub signs its ``release`` deliveries with). Secrets live in
files beside, never in, nanodistro.toml, which is meant to be committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from nanodistro.errors import ConfigError
from nanodistro.factory import events
from nanodistro.factory.workspace import WORKSPACE_FILE, Workspace

__all__ = ["DEFAULT_OUT_EVENTS", "ServeSettings", "serve_settings"]

DEFAULT_OUT_EVENTS: tuple[str, ...] = (
    events.PROMOTED,
    events.GATE_BLOCKED,
    events.VULNERABILITY_DETECTED,
    events.VULNERABILITY_FIXED,
)


@dataclass(frozen=True)
class ServeSettings:
    public_reads: bool = True
    interval: timedelta = timedelta(minutes=10)
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] = DEFAULT_OUT_EVENTS
    webhook_secret: bytes | None = None
    github_secret: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _secret(workspace: Workspace, value: Any, name: str) -> bytes | None:
    where = str(workspace.root / WORKSPACE_FILE)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError("expected a path string", where=where, field=f"webhooks.{name}")
    path = (workspace.root / value).expanduser()
    try:
        secret = path.read_bytes().strip()
    except OSError as error:
        raise ConfigError(
            f"cannot read the secret file {path}: {error.strerror}",
            where=where,
            field=f"webhooks.{name}",
        ) from None
    if len(secret) < 16:
        raise ConfigError(
            f"the secret in {path} is shorter than 16 bytes", where=where, field=f"webhooks.{name}"
        )
    return secret


def serve_settings(workspace: Workspace) -> ServeSettings:
    """The workspace's console settings; a wrong value names its key."""
    where = str(workspace.root / WORKSPACE_FILE)
    serve, hooks = workspace.serve_config, workspace.webhooks_config
    public = serve.get("public-reads", True)
    if not isinstance(public, bool):
        raise ConfigError("expected true or false", where=where, field="serve.public-reads")
    interval_text = serve.get("interval", "10m")
    if not isinstance(interval_text, str):
        raise ConfigError("expected a duration such as 10m", where=where, field="serve.interval")
    try:
        interval = events.parse_duration(interval_text, "serve.interval")
    except ConfigError as error:
        raise ConfigError(error.message, where=where, field="serve.interval") from None
    url = hooks.get("url")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise ConfigError("expected an http(s) URL", where=where, field="webhooks.url")
    wanted = hooks.get("events", list(DEFAULT_OUT_EVENTS))
    if not isinstance(wanted, list) or not all(isinstance(e, str) for e in wanted):
        raise ConfigError("expected a list of event types", where=where, field="webhooks.events")
    unknown = sorted(set(wanted) - set(events.EVENT_TYPES))
    if unknown:
        raise ConfigError(
            f"unknown event type {unknown[0]!r} (one of: {', '.join(events.EVENT_TYPES)})",
            where=where,
            field="webhooks.events",
        )
    return ServeSettings(
        public_reads=public,
        interval=interval,
        webhook_url=url,
        webhook_events=tuple(wanted),
        webhook_secret=_secret(workspace, hooks.get("secret-file"), "secret-file"),
        github_secret=_secret(workspace, hooks.get("github-secret-file"), "github-secret-file"),
    )
