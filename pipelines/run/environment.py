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


TELEMETRY_KEY = "RUNTIME__DLTHUB_TELEMETRY"


def telemetry_off_unless_chosen(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Turn dlt's anonymous telemetry off unless the user chose (in the environment or a
    `.dlt` file): the demo and the tests need no network, and a scheduled loader should not
    call out. Returns whether it is on."""
    if TELEMETRY_KEY not in environ:
        import dlt

        chosen = dlt.config.get("runtime.dlthub_telemetry")
        if chosen is None:
            environ[TELEMETRY_KEY] = "false"
            return False
        return str(chosen).lower() in ("1", "true", "yes")
    return environ[TELEMETRY_KEY].strip().lower() in ("1", "true", "yes")


@contextmanager
def run_settings(environ: MutableMapping[str, str] = os.environ) -> Iterator[None]:
    """For the length of a run: empty settings taken as not set, telemetry off unless chosen;
    afterwards the caller's environment as it was (an Airflow or Dagster worker embedding the
    runner runs more than this)."""
    before = {k: environ.get(k) for k in [*environ, TELEMETRY_KEY]
              if k == TELEMETRY_KEY or not environ[k].strip()}
    unset_empty_settings(environ)
    telemetry_off_unless_chosen(environ)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value

