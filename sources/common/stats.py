"""Per-provider run counters that the command line prints as the run summary."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import requests

from sources.common.errors import ConfigurationError

log = logging.getLogger("upload_status")

MAX_UNIT_LINES = 20  # error lines kept per provider for units that failed alone


@dataclass
class ProviderStats:
    provider: str
    requests: int = 0
    http_status: Counter[int] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    outcome: str = "not run"  # loaded | partly failed | failed | skipped | config error
    # parts of the provider that failed while the rest loaded (a location the API refused)
    failed_parts: list[str] = field(default_factory=list)
    # units (a job, an import, a listing page) that could not be read while the rest loaded:
    # each has a reject row and is read again next run; the run partly failed
    failed_units: int = 0
    # configuration mistakes that did not stop the run (invalid configured ids, skipped)
    config_errors: list[str] = field(default_factory=list)
    # the API answered nothing this run (its first answers failed): the failure, for the line
    down: BaseException | None = None
    answered: int = 0  # requests answered about their unit (a job's status, a 404 included)
    # settings taken as not set (empty, a placeholder from the example file)
    warnings: list[str] = field(default_factory=list)
    # responses arrive on the concurrent poller's threads
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # a source used outside the runner (plain `pipeline.run`): nobody reads these lists, so
    # each line is logged as it comes and a configuration mistake raises
    standalone: bool = False

    def __post_init__(self) -> None:
        if self.standalone:
            self.warnings = _Logged(logging.WARNING, self.provider)
            self.failed_parts = _Logged(logging.ERROR, self.provider)
            self.errors = _Logged(logging.ERROR, "")

    def config_error(self, message: str, key: str) -> None:
        """A configuration mistake that does not stop the run (invalid configured ids): the
        run ends with it (exit 2); outside the runner it raises `ConfigurationError`."""
        if self.standalone:
            raise ConfigurationError(f"{key}: {message}", key)
        self.config_errors.append(f"{key}: {message}")

    def unit_failed(self, line: str) -> None:
        """One unit (a job, an import, a listing page) could not be read: its line (naming it)
        for the summary, the first `MAX_UNIT_LINES` of them; the count is always exact."""
        with self.lock:
            self.failed_units += 1
            if self.failed_units <= MAX_UNIT_LINES:
                self.errors.append(f"{self.provider} {line}")

    def count_response(self, response: requests.Response) -> None:
        with self.lock:
            self.requests += 1
            self.http_status[response.status_code] += 1


class _Logged(list[str]):
    """A list of lines each logged as it is added (a standalone source's outcome)."""

    def __init__(self, level: int, prefix: str) -> None:
        super().__init__()
        self.level, self.prefix = level, f"{prefix}: " if prefix else ""

    def append(self, line: str) -> None:
        super().append(line)
        log.log(self.level, "%s%s", self.prefix, line)


_current: ContextVar[ProviderStats | None] = ContextVar("upload_status_stats", default=None)


def current_stats(provider: str) -> ProviderStats:
    """The stats being collected for `provider` by the runner; outside it (a source in a
    plain `pipeline.run`), stats that log every warning and failure and raise on a
    configuration mistake."""
    stats = _current.get()
    if stats is not None and stats.provider == provider:
        return stats
    return ProviderStats(provider, standalone=True)


# called with each provider's stats as its collection starts (the command's live progress)
_watchers: list[Callable[[ProviderStats], None]] = []


@contextmanager
def watching(watcher: Callable[[ProviderStats], None]) -> Iterator[None]:
    """Hand `watcher` the stats of every provider run that starts inside the block."""
    _watchers.append(watcher)
    try:
        yield
    finally:
        _watchers.remove(watcher)


@contextmanager
def collecting(provider: str) -> Iterator[ProviderStats]:
    stats = ProviderStats(provider)
    for watcher in list(_watchers):
        watcher(stats)
    token = _current.set(stats)
    try:
        yield stats
    finally:
        _current.reset(token)
