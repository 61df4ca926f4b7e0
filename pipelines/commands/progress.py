"""Live progress of a run on the terminal: per provider its requests, pages, jobs polled,
changes and request rate, redrawn a few times a second; nothing when stderr is not a terminal
(cron mail, CI logs and pipes get the summary only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from sources.common.counts import Count
from sources.common.stats import ProviderStats, watching


class RunProgress:
    """The providers of a run as they start, drawn from their live counters."""

    def __init__(self) -> None:
        self.providers: list[tuple[ProviderStats, float]] = []  # stats, start time
        self._spinner = Spinner("dots")

    def started(self, stats: ProviderStats) -> None:
        self.providers.append((stats, time.monotonic()))

    def line(self, stats: ProviderStats, since: float, current: bool) -> Text:
        elapsed = max(time.monotonic() - since, 1e-6)
        counts = stats.counts
        pages = sum(n for key, n in counts.items() if "pages" in str(key) and "not" not in
                    str(key))
        parts = [f"{stats.requests:,} requests"]
        if pages:
            parts.append(f"{pages:,} pages")
        parts += [f"{counts.get(Count.POLLED, 0):,} polled",
                  f"{counts.get(Count.NEW, 0) + counts.get(Count.CHANGED, 0):,} changed"]
        if current:
            parts.append(f"{stats.requests / elapsed:,.0f} req/s")
        state = stats.outcome if stats.outcome != "not run" else "running"
        return Text(f"{stats.provider:<12} {state:<8} " + " · ".join(parts))

    def __rich__(self) -> Group:
        table = Table.grid(padding=(0, 1))
        for i, (stats, since) in enumerate(self.providers):
            if stats.outcome == "skipped":
                continue
            current = i == len(self.providers) - 1 and stats.outcome == "not run"
            table.add_row(self._spinner if current else Text(" "),
                          self.line(stats, since, current))
        return Group(table)


@contextmanager
def run_progress(console: Console) -> Iterator[RunProgress | None]:
    """Draw the run's progress on `console` while the block runs, if it is a terminal."""
    if not console.is_terminal:
        yield None
        return
    progress = RunProgress()
    with watching(progress.started), Live(progress, console=console, refresh_per_second=4,
                                          transient=True):
        yield progress
