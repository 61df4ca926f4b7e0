"""How a provider's tables feed the cross-provider views: each provider declares a SELECT of its
jobs with the columns below (DuckDB SQL, `{ds}` for the dataset, every column of a dataset table
qualified by its table's alias), and may add views of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    """A view of the BI contract or a provider's own: DuckDB SQL, `{ds}` for the dataset."""

    name: str
    sql: str


# the columns, in order, of every provider's job rows; the views add status, timing from history
JOB_ROW_COLUMNS = {
    "job_ref": "VARCHAR",
    "job_id": "VARCHAR",
    "scope_id": "VARCHAR",
    "native_status": "VARCHAR",
    "status_override": "VARCHAR",
    "submitted_at": "TIMESTAMPTZ",
    "last_seen_at": "TIMESTAMPTZ",
    "items_total": "BIGINT",
    "items_succeeded": "BIGINT",
    "items_failed": "BIGINT",
    "error_message": "VARCHAR",
    "untracked_at": "TIMESTAMPTZ",  # `upload-status untrack`: no longer polled
    "scheduled_at": "TIMESTAMPTZ",  # a scheduled post: when it was to run
}
# the columns of every provider's failure rows: one per recorded reason
FAILURE_ROW_COLUMNS = {"job_id": "VARCHAR", "item": "VARCHAR", "reason": "VARCHAR"}


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _select(provider: str, source: str, exprs: Mapping[str, str], columns: Mapping[str, str],
            where: str | None) -> str:
    unknown = set(exprs) - set(columns)
    if unknown:
        raise ValueError(f"not a column of these rows: {', '.join(sorted(unknown))}")
    cols = [f"CAST({literal(provider)} AS VARCHAR) AS provider"] + [
        f"CAST({exprs.get(c, 'NULL')} AS {t}) AS {c}" for c, t in columns.items()]
    return f"SELECT {', '.join(cols)} FROM {source}" + (f" WHERE {where}" if where else "")


def job_rows_sql(provider: str, source: str, exprs: Mapping[str, str],
                 where: str | None = None) -> str:
    """A SELECT of `JOB_ROW_COLUMNS` (NULL where `exprs` gives no expression) from `source`."""
    return _select(provider, source, exprs, JOB_ROW_COLUMNS, where)


def failure_rows_sql(provider: str, source: str, exprs: Mapping[str, str],
                     where: str | None = None) -> str:
    return _select(provider, source, exprs, FAILURE_ROW_COLUMNS, where)
