"""Named points where the crash tests kill the process (``kill -9`` at a known moment).

``NANODISTRO_TEST_CRASH_AT=<point>`` makes the process SIGKILL itself when it reaches that point
(no cleanup, no ``finally``: exactly what ``kill -9`` does). Only the crash tests set it; the
variable is read at the point, so nothing else depends on it. It lives in util/ so engines
(repo/, builder/) can mark points too; factory/crashpoints.py re-exports it with the list of a
cycle's points.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "NANODISTRO_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when the crash tests asked for ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
