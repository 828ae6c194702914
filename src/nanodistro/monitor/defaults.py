"""The monitor's default deadlines, in a module of their own (no imports).

``cli/monitor.py`` shows them as option defaults: importing them from ``monitor.check`` or
``monitor.http`` loaded the whole engine (pydantic models, httpx) for ``monitor --help``.
"""

from __future__ import annotations

#: Seconds one recipe's check may take in all (every request, retries and the enrich step;
#: not the time its requests queue behind other recipes' for a host's free slot).
RECIPE_TIMEOUT = 60.0

#: Seconds one GET may take in all (attempts, backoff, every read of the body).
REQUEST_TIMEOUT = 30.0
