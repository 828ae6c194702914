"""How ``nanodistro build`` and ``nanodistro test`` show their progress on stderr.

Each timed stage (util/progress.py: a source step, the environment, a sandboxed step, a
package, a test, the publish) ends with one line naming it and its elapsed time. While a stage
runs, a terminal shows a transient status line with a spinner and a running clock; elsewhere
(CI logs, pipes, tests) every line starts with the time of day and stage starts are printed too,
so a log shows what was running when it stopped. The display also remembers what a Ctrl-C
interrupted, for the one line the command prints then.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from nanodistro.cli._common import escape
from nanodistro.util.progress import StageFinished, StageStarted, format_seconds

if TYPE_CHECKING:  # Rich itself is loaded by the console the display prints to
    from rich.console import Console
    from rich.status import Status
    from rich.text import Text

_MARKS = {
    "ok": "[green]✓[/]",
    "failed": "[bold red]✗[/]",
    "interrupted": "[bold yellow]![/]",
}


class _Clock:
    """The status line's text: re-rendered on every refresh, so the elapsed time runs."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        elapsed = format_seconds(time.monotonic() - self.started)
        from rich.text import Text

        return Text.assemble(self.message, " ", (elapsed, "dim"))


class BuildDisplay:
    """The progress callback (``display(line)``) and log-line callback of one command."""

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self._open: list[tuple[StageStarted, float]] = []  # stages begun, innermost last
        self._status: Status | None = None
        self._recipe = ""  # the recipe being built ("name-version (path)")
        self.interrupted = ""  # what a Ctrl-C stopped, once it did

    # -- the progress callback
    def __call__(self, line: str) -> None:
        if isinstance(line, StageStarted):
            self._started(line)
        elif isinstance(line, StageFinished):
            self._finished(line)
        else:
            self._print(f"[bold cyan]»[/] {escape(line)}")

    def _started(self, stage: StageStarted) -> None:
        self._open.append((stage, time.monotonic()))
        if stage.kind == "recipe":
            self._recipe = str(stage)
            self._print(f"[bold cyan]»[/] [bold]building {escape(stage)}[/]")
            return
        if self.live:
            self._show(str(stage))
        else:
            self._print(f"[bold cyan]»[/] {escape(stage)}")

    def _finished(self, stage: StageFinished) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == stage.message:
                del self._open[index]
                break
        if stage.status == "interrupted" and not self.interrupted:
            # the innermost stage unwinds first: that is what the user stopped
            after = f"(after {format_seconds(stage.seconds)})"
            if stage.kind == "recipe":
                self.interrupted = f"interrupted while building {stage.message} {after}"
            elif self._recipe:
                self.interrupted = (
                    f"interrupted while building {self._recipe}: {stage.message} {after}"
                )
            else:
                self.interrupted = f"interrupted: {stage.message} {after}"
        mark = _MARKS.get(stage.status, _MARKS["failed"])
        word = "" if stage.status == "ok" else f"{stage.status} after "
        elapsed = f"[dim]{word}{format_seconds(stage.seconds)}[/]"
        if stage.kind == "recipe":
            self._print(f"{mark} [bold]{escape(stage.message)}[/] {elapsed}")
            self._recipe = ""
        else:
            self._print(f"  {mark} {escape(stage.message)} {elapsed}")
        inner = [s for s, _ in self._open if s.kind != "recipe"]
        if self.live and inner:
            self._show(str(inner[-1]))
        else:
            self._hide()

    # -- step output (-v)
    def log_line(self, label: str, line: str) -> None:
        self._print(escape(f"  {label} | {line}"))

    # -- the status line
    def _show(self, message: str) -> None:
        clock = _Clock(message)
        if self._status is None:
            self._status = self.console.status(clock, spinner="dots")
            self._status.start()
        else:
            self._status.update(clock)

    def _hide(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No status line while something else owns the terminal (the --debug shell)."""
        current = [s for s, _ in self._open if s.kind != "recipe"]
        self._hide()
        try:
            yield
        finally:
            if self.live and current:
                self._show(str(current[-1]))

    def close(self) -> None:
        self._hide()

    def _print(self, text: str) -> None:
        if not self.live:  # a log: every line says when
            text = f"[dim]{time.strftime('%H:%M:%S')}[/] {text}"
        self.console.print(text, highlight=False)

    def interruption(self) -> str:
        """The line a Ctrl-C prints: what was running when it came."""
        if self.interrupted:
            return self.interrupted
        if self._open:
            stage, started = self._open[-1]
            return f"interrupted: {stage} (after {format_seconds(time.monotonic() - started)})"
        return "interrupted"
