"""What every console page shares: the Jinja2 environment, its filters, and ``render``.

Pages are server-rendered from the same queries the JSON API answers with; the little
JavaScript there is (static/app.js) posts triggers with the token kept in the browser and
follows logs as server-sent events. Nothing is loaded from another origin.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from nanodistro import __version__

__all__ = ["NAV", "TEMPLATES", "render", "router"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

# (path, label): the header's navigation, in order
NAV: tuple[tuple[str, str], ...] = (
    ("/", "Catalog"),
    ("/images", "Images"),
    ("/events", "Events"),
    ("/runs", "Runs & jobs"),
    ("/freshness", "Freshness"),
)


def ago(value: datetime | str | None, now: datetime | None = None) -> str:
    """'3 min ago', '2 h ago', '5 d ago'; '-' for nothing."""
    if value is None or value == "":
        return "-"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    if seconds < 60:
        return "just now" if seconds >= 0 else "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "-"


def short_digest(value: str | None, length: int = 12) -> str:
    """``sha256:0123456789ab``: enough to tell digests apart on a page."""
    if not value:
        return "-"
    algorithm, _, hexdigest = value.partition(":")
    return f"{algorithm}:{hexdigest[:length]}" if hexdigest else value[:length]


def size(value: int | float | None) -> str:
    """Bytes as 1.2 MiB, 340 KiB, 12 B."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3.5 h', '2.1 d'."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


TEMPLATES.env.filters.update(ago=ago, short_digest=short_digest, size=size, duration=duration)
TEMPLATES.env.globals.update(nav=NAV, version=__version__)


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render ``templates/<template>`` with ``values``; ``request`` and ``workspace`` are always
    there (base.html uses them)."""
    context = request.app.state.context
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"workspace": context.workspace.name, **values},
        status_code=status_code,
    )


router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html")
