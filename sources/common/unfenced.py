"""Commits exempt from the run lock's fence (`pipelines.destinations.fence`), on this thread,
for a block: a rotated OAuth refresh token must be stored even by a run that lost its lock (the
server has already spent the old one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


@contextmanager
def unfenced() -> Iterator[None]:
    before = getattr(_local, "on", False)
    _local.on = True
    try:
        yield
    finally:
        _local.on = before


def is_unfenced() -> bool:
    return getattr(_local, "on", False)
