"""Configuration through environment variables for the length of a block (demo, benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def temporary_env(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in os.environ inside the block; restore what was there after it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
