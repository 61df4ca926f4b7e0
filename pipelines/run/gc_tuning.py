"""Python's cycle collector tuned for a run's many short-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Python's cycle collector at larger generation sizes while a provider loads.

    A run allocates millions of short-lived objects (every listing record, status and row),
    nearly all freed by reference counting: collecting every 700 allocations walks them again
    and again for nothing (measurements: bench/RESULTS.md)."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
