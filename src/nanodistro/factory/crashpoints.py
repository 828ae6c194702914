"""Named points of a factory cycle where the crash tests kill the process.

The hook itself is util/crashpoints.py (engines mark points too: the repository's index write);
this module names every point a cycle passes.
"""

from __future__ import annotations

from nanodistro.util.crashpoints import CRASH_ENV, crash_point

__all__ = ["CRASH_ENV", "POINTS", "crash_point"]

#: every point a cycle passes, in order (tests iterate over some of them)
POINTS = (
    "after-bump",  # a recipe file was rewritten, before its git commit
    "during-build",  # the first log line of a build step
    "during-index-write",  # repo/repository.py: the new signed index is in its temp file
    "after-publish",  # a package is in the working repository, before the snapshot
    "before-promote",  # staging moved and the gates passed, stable not yet
    "during-promote",  # the stable channel moved, the images' stable tags not yet
)
