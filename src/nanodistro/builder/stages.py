"""Timing a build's stages and leaving its workspace behind only when asked to.

Every stage (a source step, the environment, a sandboxed step, a package, a test, the publish)
is announced as a ``StageStarted`` line and closed with a ``StageFinished`` line carrying its
duration, and recorded in ``BuildResult.steps`` (``build --json``). A failed or interrupted
build removes its workspace unless the caller keeps it, and says either way where it was.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from nanodistro.builder.config import BuildConfig, StepTiming
from nanodistro.util.progress import Progress, StageFinished, StageStarted


@contextlib.contextmanager
def stage(
    say: Progress, record: list[StepTiming], message: str, *, kind: str, package: str, step: str
) -> Iterator[None]:
    """Time the body as one stage: announced, recorded (also when it fails or is interrupted)."""
    say(StageStarted(message, kind))
    started = time.monotonic()
    status = "failed"
    try:
        yield
        status = "ok"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        seconds = time.monotonic() - started
        record.append(StepTiming(kind, package, step, seconds, status))
        say(StageFinished(message, seconds, status, kind))


def finish_workspace(base: Path, config: BuildConfig, *, success: bool, say: Progress) -> bool:
    """Clean up a build or test workspace; True when it is gone.

    Kept whole with ``keep_workspace`` (and said where); a success removes it; a failure or an
    interruption removes it too, except for the logs when ``keep_failed_logs`` (the factory
    points its run records at them), and never without saying so."""
    if config.keep_workspace:
        say(f"workspace kept: {base}")
        return False
    if success:
        shutil.rmtree(base, ignore_errors=True)
        return True
    if config.keep_failed_logs:
        # the logs stay for inspection, not the roots (whole package trees)
        for root in [base / "root", *base.glob("test-*/root")]:
            shutil.rmtree(root, ignore_errors=True)
        say(f"workspace kept for its logs: {base} (sandbox roots removed)")
        return False
    shutil.rmtree(base, ignore_errors=True)
    say(f"workspace removed: {base} (--keep-workspace keeps it)")
    return True
