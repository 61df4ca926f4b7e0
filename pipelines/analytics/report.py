"""`upload-status report`: success rates, statuses, failure reasons and stuck jobs, read from the
views in whatever destination the pipeline loads into."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import dlt
import duckdb
import sqlglot
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from pipelines.analytics.concepts import in_flight, job_day, job_since, success_rate
from pipelines.common.usage import UsageError
from pipelines.destinations.destination import (
    check_duckdb_file,
    dataset_name,
    duckdb_file,
    duckdb_path,
    lock_holder,
    make_pipeline,
)
from pipelines.destinations.dialects import render, sql_dialect
from pipelines.destinations.lakehouse import is_lakehouse, lake_connection, refuse_appending


@dataclass
class Report:
    since: date
    generated_at: datetime
    stuck_hours: float
    rates: list[dict[str, Any]] = field(default_factory=list)  # per provider and day
    totals: list[dict[str, Any]] = field(default_factory=list)  # per provider, whole period
    statuses: list[dict[str, Any]] = field(default_factory=list)
    failure_reasons: list[dict[str, Any]] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)

    SECTIONS = ("totals", "rates", "statuses", "failure_reasons", "stuck")

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_json_value, indent=2)

    def to_csv(self) -> str:
        """One tidy table: a `section` column, then the union of every section's columns."""
        columns: dict[str, None] = {"section": None}
        rows = []
        for section in self.SECTIONS:
            for row in getattr(self, section):
                columns.update(dict.fromkeys(row))
                rows.append({"section": section, **row})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()


def _json_value(value: Any) -> Any:
    """ISO-8601 for dates and moments (a naive moment is UTC: some drivers drop the zone),
    numbers for decimals, text for anything else."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


Query = Callable[[str], list[dict[str, Any]]]


@contextmanager
def _reader(pipeline: dlt.Pipeline) -> Iterator[Query]:
    """Runs DuckDB-dialect SQL (with `{ds}`) where the pipeline loads: in the destination's own
    dialect, or over Delta tables in an in-memory DuckDB holding the views."""
    dataset = pipeline.dataset_name
    if (path := duckdb_file(pipeline)) is not None:
        with read_only_duckdb(path) as con:
            yield _duckdb_query(con, dataset)
        return
    if is_lakehouse(pipeline):
        with lake_connection(pipeline) as con:
            yield _duckdb_query(con, dataset)
        return
    dialect = sql_dialect(pipeline)
    # one client for every query: dlt resolves the configuration and opens the database anew
    # for each
    with pipeline.sql_client() as client:
        def in_destination(sql: str) -> list[dict[str, Any]]:
            native = render(sqlglot.parse_one(sql.format(ds=dataset), read="duckdb"), dialect)
            with client.execute_query(native) as cursor:
                names = list(cursor.columns_schema)  # dlt's cursors all have it
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        yield in_destination


def _duckdb_query(con: Any, dataset: str) -> Query:
    """The report's SQL run as it is on a DuckDB connection, rows as dicts."""
    def query(sql: str) -> list[dict[str, Any]]:
        cursor = con.execute(sql.format(ds=dataset))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return query


@contextmanager
def read_only_duckdb(path: str) -> Iterator[Any]:
    """The DuckDB file opened read-only: beside other readers (a BI tool), on a read-only
    file; UsageError naming the writer while a run holds it."""
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.IOException as exc:
        if (holder := lock_holder(exc)) is None:
            raise UsageError(f"DESTINATION__DUCKDB__CREDENTIALS: cannot read {path}: "
                             f"{str(exc).splitlines()[0]}") from None
        raise UsageError(f"DuckDB file {path} is being written by another process (PID "
                         f"{holder}), e.g. a run: report again when it has finished") from None
    try:
        yield con
    finally:
        con.close()


def build_report(pipeline: dlt.Pipeline, since_days: int = 30, stuck_hours: float = 24.0,
                 top: int = 5, now: datetime | None = None) -> Report:
    with _reader(pipeline) as rows:
        return _build(rows, since_days, stuck_hours, top, now)


def _build(rows: Query, since_days: int, stuck_hours: float, top: int,
           now: datetime | None) -> Report:
    now = now or datetime.now(timezone.utc)
    since = (now - timedelta(days=since_days)).date()
    report = Report(since=since, generated_at=now, stuck_hours=stuck_hours)
    day = f"DATE '{since.isoformat()}'"
    report.rates = rows(f"""
        SELECT provider, day, jobs, succeeded, partial, failed, cancelled, in_flight,
               success_rate
        FROM {{ds}}.upload_success_rates WHERE day >= {day} ORDER BY provider, day""")
    for row in report.rates:
        row["success_rate"] = None if row["success_rate"] is None else float(row["success_rate"])
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in report.rates:
        for key in ("jobs", "succeeded", "partial", "failed", "cancelled", "in_flight"):
            totals[row["provider"]][key] += int(row[key])
    report.totals = [{"provider": p, **t, "success_rate": success_rate(t)}
                     for p, t in sorted(totals.items())]
    in_period = f"{job_day()} >= {day}"
    report.statuses = rows(f"""
        SELECT j.provider, j.status, COUNT(*) AS jobs FROM {{ds}}.upload_jobs AS j
        WHERE {in_period} GROUP BY j.provider, j.status ORDER BY j.provider, jobs DESC""")
    reasons = rows(f"""
        SELECT f.provider, f.reason, COUNT(*) AS occurrences, COUNT(DISTINCT f.job_id) AS jobs
        FROM {{ds}}.upload_failures AS f
        JOIN {{ds}}.upload_jobs AS j ON j.provider = f.provider AND j.job_id = f.job_id
        WHERE {in_period}
        GROUP BY f.provider, f.reason ORDER BY f.provider, occurrences DESC, f.reason""")
    kept: dict[str, int] = defaultdict(int)
    for row in reasons:
        kept[row["provider"]] += 1
        if kept[row["provider"]] <= top:
            report.failure_reasons.append(row)
    cutoff = (now - timedelta(hours=stuck_hours)).isoformat()
    report.stuck = rows(f"""
        SELECT j.provider, j.job_id, j.scope_id, j.status, j.native_status,
               {job_since()} AS since, j.last_seen_at
        FROM {{ds}}.upload_jobs AS j
        WHERE {in_flight(now=f"CAST('{now.isoformat()}' AS TIMESTAMPTZ)")}
          AND {job_since()} < CAST('{cutoff}' AS TIMESTAMPTZ)
        ORDER BY since, j.provider, j.job_id""")
    for row in report.stuck:
        started = row["since"]
        if isinstance(started, str):  # SQLite keeps timestamps as text
            started = datetime.fromisoformat(started)
        if started.tzinfo is None:  # some drivers hand back naive UTC
            started = started.replace(tzinfo=timezone.utc)
        row["hours_unfinished"] = round((now - started).total_seconds() / 3600, 1)
    return report


def load_report(destination: str | None, dataset: str | None, since_days: int,
                stuck_hours: float, top: int) -> Report:
    """The report over what the pipeline has loaded; UsageError when nothing is there yet. A
    DuckDB file is only read: opened read-only, no pipeline folder made."""
    if destination in (None, "duckdb"):
        name = dataset_name(dataset)
        path = duckdb_path(name)
        if "://" not in path:
            check_duckdb_file(path, write=False)
            with read_only_duckdb(path) as con:
                return _views_needed(name, lambda: _build(
                    _duckdb_query(con, name), since_days, stuck_hours, top, None))
    pipeline = make_pipeline(destination, dataset)
    refuse_appending(pipeline)
    return _views_needed(pipeline.dataset_name, lambda: build_report(
        pipeline, since_days, stuck_hours, top))


def _views_needed(dataset: str, build: Callable[[], Report]) -> Report:
    try:
        return build()
    except (DatabaseUndefinedRelation, duckdb.CatalogException):
        raise UsageError(f"no views in dataset {dataset} yet: run `upload-status run` "
                         "first") from None
