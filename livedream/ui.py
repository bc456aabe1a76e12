"""The terminal: a live status table for streams and a progress bar for file renders (Rich).

Used by ``run.py`` only; writes to stderr so stdout stays free for pipes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from livedream.pipeline import Stats

REFRESH_PER_SECOND = 4  # a few times a second: readable, and costs the dream nothing


def status_table(stats: Stats, info: dict[str, str]) -> Table:
    """The live status table: fps of each stage, latency, drops, and the dream settings."""
    table = Table(title="livedream", show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold cyan")
    table.add_column()
    table.add_row(
        "fps",
        f"output {stats.output_fps.rate():5.1f}   dream {stats.dream_fps.rate():5.1f}   "
        f"(capture {stats.capture_fps.rate():.1f})",
    )
    table.add_row(
        "latency",
        f"p50 {stats.latency_ms(0.5):6.0f} ms   p95 {stats.latency_ms(0.95):6.0f} ms",
    )
    table.add_row(
        "dream age",
        f"p50 {stats.dream_age_ms(0.5):6.0f} ms   p95 {stats.dream_age_ms(0.95):6.0f} ms",
    )
    table.add_row(
        "frames",
        f"{stats.output} out, {stats.dreamed} dreamed, {stats.dropped} dropped",
    )
    for key, value in info.items():
        table.add_row(key, value)
    return table


def hud_lines(stats: Stats, info: dict[str, str]) -> list[str]:
    """The preview's heads-up overlay, as short lines."""
    return [
        f"{stats.output_fps.rate():4.1f} fps out  {stats.dream_fps.rate():4.1f} dream",
        f"latency {stats.latency_ms(0.5):4.0f} ms  dream age {stats.dream_age_ms(0.5):4.0f} ms",
        f"dropped {stats.dropped}",
        *(f"{key} {value}" for key, value in info.items()),
    ]


class StatusDisplay:
    """Shows the status table (a stream) or a progress bar (a file render) while a run goes on.

    Quiet where stderr is not a terminal (CI, pipes): ``update()`` then does nothing.

    Args:
        console: where to draw; tests pass a recording console.
        total: frames a file render will produce; None for a live stream.
        info: the settings rows (read each refresh, so key presses show at once).
    """

    def __init__(
        self, console: Console, *, total: int | None, info: Callable[[], dict[str, str]]
    ) -> None:
        self.console = console
        self.total = total
        self.info = info
        self._live: Live | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last = 0.0

    def __enter__(self) -> StatusDisplay:
        if not self.console.is_terminal:
            return self
        if self.total is not None:
            self._progress = Progress(
                TextColumn("[bold]dreaming"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[fps]:5.1f} fps"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._task = self._progress.add_task("dream", total=self.total, fps=0.0)
            self._progress.start()
        else:
            self._live = Live(console=self.console, refresh_per_second=REFRESH_PER_SECOND)
            self._live.start()
        return self

    def update(self, stats: Stats) -> None:
        """Refreshes from ``stats``; cheap to call every frame."""
        now = time.monotonic()
        if now - self._last < 1.0 / REFRESH_PER_SECOND:
            return
        self._last = now
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=stats.output, fps=stats.output_fps.rate())
        elif self._live is not None:
            self._live.update(status_table(stats, self.info()))

    def close(self, stats: Stats | None = None) -> None:
        """Draws the last state (when ``stats`` is given) and stops. Idempotent."""
        if stats is not None:
            self._last = 0.0
            self.update(stats)
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
