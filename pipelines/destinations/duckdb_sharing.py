"""A reader opening the DuckDB file while a run writes it (a BI tool's refresh) delays the
run's next connection instead of failing it.

DuckDB lets one process open a file for writing, and none while another reads it; dlt opens
and closes the file several times a run (state sync, each load, views), so a reader opening it
every few seconds fails one of them: the run ended with a dlt "check your credentials" error,
no summary and later providers not loaded. Every connection dlt opens (its pool's
`borrow_conn`) and the run's own check at start wait for the file instead, up to
DESTINATION__DUCKDB__READER_WAIT_SECONDS (60), then fail as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import dlt
import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbConnectionPool

from pipelines.destinations.dlt_private import wrap_method

READER_WAIT_SECONDS = 60.0
WAIT_KEY = "destination.duckdb.reader_wait_seconds"
T = TypeVar("T")


def reader_wait() -> float:
    """How long to wait for a reader; UsageError-free: `check_reader_wait` refused bad ones."""
    try:
        return max(float(dlt.config.get(WAIT_KEY) or READER_WAIT_SECONDS), 0.0)
    except (TypeError, ValueError):
        return READER_WAIT_SECONDS


def check_reader_wait() -> None:
    """UsageError naming the key when its value is no number of seconds >= 0."""
    from pipelines.common.usage import UsageError

    value = dlt.config.get(WAIT_KEY)
    try:
        ok = value is None or float(value) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok or str(value).lower() in ("nan", "inf", "infinity"):
        raise UsageError(f"DESTINATION__DUCKDB__READER_WAIT_SECONDS must be a number of "
                         f"seconds >= 0, not {str(value)[:40]!r}")


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether DuckDB refused the file because another process holds it."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def waiting_for_readers(connect: Callable[[], T], wait: float | None = None) -> T:
    """`connect()`, tried again while another process holds the file, for up to `wait` s
    (`reader_wait()` by default)."""
    deadline = time.monotonic() + (reader_wait() if wait is None else wait)
    pause = 0.05
    while True:
        try:
            return connect()
        except duckdb.IOException as exc:
            if not is_lock_conflict(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _waiting(borrow_conn: Any) -> Any:
    def waiting_borrow_conn(self: DuckDbConnectionPool, *args: Any, **kwargs: Any) -> Any:
        return waiting_for_readers(lambda: borrow_conn(self, *args, **kwargs))

    return waiting_borrow_conn


wrap_method(DuckDbConnectionPool, "borrow_conn", _waiting)
