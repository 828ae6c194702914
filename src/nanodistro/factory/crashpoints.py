"""Named points of a factory cycle where the crash tests kill the process.

``NANODISTRO_TEST_CRASH_AT=<point>`` makes the process SIGKILL itself when it reaches that point
(no cleanup, no ``finally``: exactly what ``kill -9`` does). Only the crash tests set it; the
variable is read at the point, so nothing else in a cycle depends on it.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "NANODISTRO_TEST_CRASH_AT"

#: every point a cycle passes, in order (tests iterate over some of them)
POINTS = (
    "after-bump",  # a recipe file was rewritten, before its git commit
    "during-build",  # the first log line of a build step
    "after-publish",  # a package is in the working repository, before the snapshot
    "before-promote",  # staging moved and the gates passed, stable not yet
    "during-promote",  # the stable channel moved, the images' stable tags not yet
)


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when the crash tests asked for ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
