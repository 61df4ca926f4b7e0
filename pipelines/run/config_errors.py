"""Configuration mistakes that surface as library exceptions (dlt, DuckDB, the Postgres driver),
turned into one line naming the key or the value's problem and the fix."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pipelines.common.errors import exception_chain, redact

# the RunConfiguration fields dlt resolves under `runtime` (RUNTIME__REQUEST_TIMEOUT, ...)
_RUNTIME_FIELDS = ("request_timeout", "request_max_attempts", "request_backoff_factor",
                   "request_max_retry_delay", "log_level", "dlthub_telemetry")


def explain(exc: BaseException) -> str | None:
    """One line for a configuration mistake behind `exc`, None when it is not one."""
    for err in exception_chain(exc):
        for line in _lines(err):
            return redact(line)
    return None


def _lines(err: BaseException) -> Iterator[str]:
    """What to tell of `err` if it is a configuration mistake (at most one line)."""
    name = type(err).__name__
    text = str(err)
    if name == "TomlProviderReadException":
        problem = re.sub(r"\s+", " ", text.split(":\n", 1)[-1]).strip()
        paths = [p for p in getattr(err, "full_paths", []) if Path(p).is_file()]
        yield (f"{paths[0] if paths else err.file_name} is not valid TOML: {problem}. Fix that "
               "line (a string is quoted on one line; a list is [\"a\", \"b\"])")
    elif name == "UnknownDestinationModule":
        yield (f"--destination {getattr(err, 'ref', '?')}: not a dlt destination; use duckdb "
               "(the default), "
               "postgres, or another name from https://dlthub.com/docs/dlt-ecosystem/"
               "destinations (with its extra installed, e.g. pip install \"dlt[bigquery]\")")
    elif name == "MissingDependencyException":
        yield _missing_dependency(text)
    elif isinstance(err, ImportError) and (err.name or "").startswith("psycopg"):
        yield _missing_dependency("postgres")
    elif name == "ConfigFieldMissingException" and "ClientConfiguration" in text:
        yield _missing_destination_setting(text)
    elif name == "ConfigValueCannotBeCoercedException":
        field = getattr(err, "field_name", "?")
        key = f"RUNTIME__{field.upper()}" if field in _RUNTIME_FIELDS else f"the key {field}"
        hint = getattr(err, "hint", None)
        yield (f"{key} has the wrong type: expected {getattr(hint, '__name__', hint)} "
               "(e.g. RUNTIME__REQUEST_TIMEOUT=60)")
    elif isinstance(err, PermissionError) and err.filename:
        yield (f"cannot write {err.filename}: permission denied (dlt's local pipeline folder "
               "is under DLT_DATA_DIR, the DuckDB file is DESTINATION__DUCKDB__CREDENTIALS: "
               "point them at folders this user can write)")
    elif _is_connection_refused(err, text):
        yield (f"cannot connect to the destination ({_first_line(text)}): check its "
               "credentials (e.g. DESTINATION__POSTGRES__CREDENTIALS) and that the server runs")


def _missing_dependency(text: str) -> str:
    if "postgres" in text.lower() or "psycopg" in text.lower():
        return ("the postgres destination needs psycopg2: pip install \"upload-status[postgres]\" "
                "(or pip install \"dlt[postgres]\")")
    deps = re.findall(r"\b(dlt\[[a-z_]+\][^\s']*|[a-z0-9_-]+>=[0-9.]+)", text)
    wanted = " ".join(dict.fromkeys(deps)) or "the destination's extra"
    return f"a package this destination needs is not installed: pip install {wanted}"


def _missing_destination_setting(text: str) -> str:
    match = re.search(r"`(\w+)ClientConfiguration`: `([\w, `]+)`", text)
    kind = (match.group(1) if match else "destination").lower()
    fields = [f.strip(" `") for f in (match.group(2) if match else "credentials").split(",")]
    keys = ", ".join(f"DESTINATION__{kind.upper()}__{f.upper()}" for f in fields)
    example = " (e.g. postgresql://loader:password@host:5432/analytics)" if kind == "postgres" \
        else ""
    return f"the {kind} destination is not configured: set {keys}{example}"


def _is_connection_refused(err: BaseException, text: str) -> bool:
    return type(err).__name__ == "OperationalError" and any(
        s in text for s in ("could not connect", "Connection refused", "connection to server",
                            "could not translate host name", "timeout expired"))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)[:200]


def check_runtime_settings() -> None:
    """UsageError naming the RUNTIME__ key whose value dlt cannot use, before any provider
    starts (dlt would fail each provider's first request with it)."""
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
    from dlt.common.configuration.specs import RuntimeConfiguration

    from pipelines.common.usage import UsageError

    try:
        runtime = resolve_configuration(RuntimeConfiguration())
    except ConfigValueCannotBeCoercedException as exc:
        raise UsageError(next(_lines(exc))) from None
    for name in ("request_timeout", "request_max_attempts", "request_max_retry_delay"):
        value = getattr(runtime, name, None)
        if value is not None and not value > 0:
            raise UsageError(f"RUNTIME__{name.upper()} must be a positive number")
    if (factor := getattr(runtime, "request_backoff_factor", None)) is not None and factor < 0:
        raise UsageError("RUNTIME__REQUEST_BACKOFF_FACTOR must not be negative")
