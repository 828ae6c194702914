"""The monitor's small JSON state: when each recipe was last checked, what each version was.

``last_checked`` implements ``update.schedule``; the recorded commit/checksum of each version
seen is how a re-tag (same version, different content) is noticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nanodistro.monitor.providers.base import parse_time
from nanodistro.util.atomic import atomic_write_bytes

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7), "monthly": timedelta(days=30)}
STATE_VERSION = 1


@dataclass
class MonitorState:
    path: Path | None
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> MonitorState:
        if path is None or not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            recipes = data.get("recipes", {}) if isinstance(data, dict) else {}
        except (OSError, ValueError):
            recipes = {}  # a damaged state file only costs re-checking everything
        return cls(path, recipes if isinstance(recipes, dict) else {})

    def save(self) -> None:
        if self.path is None:
            return
        document = {"version": STATE_VERSION, "recipes": self.recipes}
        atomic_write_bytes(self.path, json.dumps(document, indent=1, sort_keys=True).encode())

    def _entry(self, name: str) -> dict[str, Any]:
        entry = self.recipes.setdefault(name, {})
        entry.setdefault("releases", {})
        return entry

    def due(self, name: str, period: str, now: datetime) -> bool:
        """Whether a recipe on ``period`` schedule should be checked at ``now``."""
        last = parse_time(self.recipes.get(name, {}).get("last_checked"))
        return last is None or now - last >= PERIODS.get(period, timedelta(0))

    def mark_checked(self, name: str, now: datetime) -> None:
        self._entry(name)["last_checked"] = now.isoformat()

    def recorded(self, name: str, version: str) -> dict[str, str]:
        release = self.recipes.get(name, {}).get("releases", {}).get(version)
        return release if isinstance(release, dict) else {}

    def record(self, name: str, version: str, commit: str | None, checksum: str | None) -> None:
        """Remember the first-seen identity of a version (later differences are re-tags)."""
        values = {k: v for k, v in (("commit", commit), ("checksum", checksum)) if v}
        if values:
            self._entry(name)["releases"].setdefault(version, values)
