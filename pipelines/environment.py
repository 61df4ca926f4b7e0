"""Configuration through environment variables: empty ones taken as not set, and values set
for the length of a block (demo, benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
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


# the sections of dlt's configuration that environment variables set (SECTION__KEY...)
_DLT_SECTIONS = ("SOURCES__", "DESTINATION__", "RUNTIME__", "NORMALIZE__", "LOAD__", "EXTRACT__",
                 "DATA_WRITER__", "PIPELINES__")


def unset_empty_settings(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove dlt settings whose value is empty or blank, and name them: a scheduler passes a
    secret that is not set as an empty string (GitHub Actions does), which means "not
    configured", not a value (dlt would take it as one: a credential "", a list that fails to
    parse)."""
    empty = sorted(key for key, value in environ.items()
                   if key.upper().startswith(_DLT_SECTIONS) and not value.strip())
    for key in empty:
        del environ[key]
    return empty
