"""The BI views of the contract, written once in DuckDB's SQL and transpiled by sqlglot into the
destination's dialect, created anew after every load.

Each provider contributes a SELECT of its jobs (`Provider.jobs_sql`, generated for polled
providers), its history table, the status map it declares, and views of its own. Tables appear only
once they have had rows, and columns only once they have had a value, so before a view is
created every reference to a table or column the destination does not have yet is replaced by
a typed NULL: a view over an empty account is valid and empty, never an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import dlt
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from pipelines.analytics.concepts import (
    count_where,
    in_flight,
    is_terminal,
    job_day,
    resolved_status,
    success_rate_sql,
)
from pipelines.analytics.view_functions import unchecked_functions
from pipelines.destinations.dialects import render, sql_dialect
from sources import providers as registered
from sources.common.analytics import View, literal
from sources.common.errors import DestinationError
from sources.common.failing_units import FAILING_COLUMNS, failing_table
from sources.common.provider import Provider
from sources.common.status import CANONICAL
from sources.common.tracking import HISTORY_COLUMNS, history_table

# dlt data types as DuckDB SQL types (the dialect the views are written in)
_SQL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "bool": "BOOLEAN", "double": "DOUBLE",
              "timestamp": "TIMESTAMPTZ", "date": "DATE", "decimal": "DECIMAL(38, 9)",
              "json": "JSON", "time": "TIME", "binary": "BLOB"}

def status_map_view(providers: Sequence[Provider]) -> View:
    rows = [(literal(p.name), literal(native), literal(canonical))
            for p in providers for native, canonical in p.status_map.items()]
    # every canonical status once, so a provider with an empty map still yields rows
    rows += [("NULL", "NULL", literal(s)) for s in CANONICAL]
    # a UNION of SELECTs rather than VALUES: SQLite and MySQL name no VALUES columns
    first, *rest = rows
    selects = [f"SELECT CAST({first[0]} AS VARCHAR) AS provider, CAST({first[1]} AS VARCHAR) "
               f"AS native_status, CAST({first[2]} AS VARCHAR) AS status"]
    selects += [f"SELECT {', '.join(row)}" for row in rest]
    return View("upload_status_map", f"""
        SELECT m.provider, m.native_status, m.status, {is_terminal("m.status")} AS is_terminal
        FROM ({" UNION ALL ".join(selects)}) AS m
        WHERE m.provider IS NOT NULL""")


def history_view(providers: Sequence[Provider]) -> View:
    parts = [f"""
        SELECT CAST({literal(p.name)} AS VARCHAR) AS provider,
               h_{p.name}.job_id, COALESCE(h_{p.name}.job_ref, h_{p.name}.job_id) AS job_ref,
               h_{p.name}.scope_id, h_{p.name}.native_status, h_{p.name}.status_override,
               h_{p.name}.previous_native_status, h_{p.name}.observed_at
        FROM {{ds}}.{history_table(p)} AS h_{p.name}""" for p in providers]
    return View("upload_job_status_history", f"""
        SELECT h.provider, h.job_id, h.native_status,
               {resolved_status("h")} AS status, h.observed_at,
               h.job_ref, h.scope_id, h.previous_native_status
        FROM ({" UNION ALL ".join(parts)}) AS h
        LEFT JOIN {{ds}}.upload_status_map AS m
          ON m.provider = h.provider AND m.native_status = h.native_status""")


def jobs_view(providers: Sequence[Provider]) -> View:
    parts = " UNION ALL ".join(p.jobs_sql() for p in providers)
    return View("upload_jobs", f"""
        WITH seen AS (
            SELECT provider, job_ref, MIN(observed_at) AS first_seen_at,
                   MIN(CASE WHEN {is_terminal("status")} THEN observed_at END) AS finished_at
            FROM {{ds}}.upload_job_status_history GROUP BY provider, job_ref
        ), resolved AS (
            SELECT j.*, {resolved_status("j")} AS status
            FROM ({parts}) AS j
            LEFT JOIN {{ds}}.upload_status_map AS m
              ON m.provider = j.provider AND m.native_status = j.native_status
        )
        SELECT r.provider, r.job_id, r.scope_id, r.native_status, r.status,
               {is_terminal("r.status")} AS is_terminal, r.submitted_at, s.first_seen_at,
               r.last_seen_at,
               CASE WHEN {is_terminal("r.status")} THEN s.finished_at END AS finished_at,
               r.items_total, r.items_succeeded, r.items_failed, r.error_message, r.job_ref,
               r.untracked_at, r.scheduled_at
        FROM resolved AS r
        LEFT JOIN seen AS s ON s.provider = r.provider AND s.job_ref = r.job_ref""")


def success_rates_view() -> View:
    return View("upload_success_rates", f"""
        SELECT j.provider, {job_day()} AS day,
               CAST(COUNT(*) AS BIGINT) AS jobs,
               {count_where("j.status = 'succeeded'")} AS succeeded,
               {count_where("j.status = 'partial'")} AS partial,
               {count_where("j.status = 'failed'")} AS failed,
               {count_where("j.status = 'cancelled'")} AS cancelled,
               {count_where(in_flight())} AS in_flight,
               {success_rate_sql()} AS success_rate
        FROM {{ds}}.upload_jobs AS j
        GROUP BY j.provider, {job_day()}""")


def failures_view(providers: Sequence[Provider]) -> View:
    """One row per recorded failure reason (a post, a platform, an activity), for reports."""
    parts = [sql for p in providers if (sql := p.failures_sql())]
    return View("upload_failures", " UNION ALL ".join(parts) if parts else """
        SELECT CAST(NULL AS VARCHAR) AS provider, CAST(NULL AS VARCHAR) AS job_id,
               CAST(NULL AS VARCHAR) AS item, CAST(NULL AS VARCHAR) AS reason WHERE FALSE""")


def failing_units_view(providers: Sequence[Provider]) -> View:
    """The units (jobs, imports, locations) failing on their own now, every provider's."""
    parts = [f"""
        SELECT CAST({literal(p.name)} AS VARCHAR) AS provider, f_{p.name}.unit_kind,
               f_{p.name}.unit_id, f_{p.name}.scope_id, f_{p.name}.consecutive_failures,
               f_{p.name}.first_failed_at, f_{p.name}.last_failed_at, f_{p.name}.reason,
               f_{p.name}.next_try_at
        FROM {{ds}}.{failing_table(p.name)} AS f_{p.name}
        WHERE f_{p.name}.resolved_at IS NULL""" for p in providers]
    return View("upload_failing_units", " UNION ALL ".join(parts))


def all_views(providers: Sequence[Provider]) -> list[View]:
    """In dependency order: each view reads only tables and the views before it."""
    return [status_map_view(providers), history_view(providers), jobs_view(providers),
            success_rates_view(), *(v for p in providers for v in p.views),
            failures_view(providers), failing_units_view(providers)]


def _column_types(pipeline: dlt.Pipeline, providers: Sequence[Provider]
                  ) -> dict[str, dict[str, str]]:
    """Column types as the providers declare them, then as dlt's schemas have seen them: the
    type a missing column's NULL stands in with."""
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for p in providers:
        tables += [(history_table(p), HISTORY_COLUMNS), (failing_table(p.name), FAILING_COLUMNS),
                   *p.declared_tables().items()]
    for schema in pipeline.schemas.values():
        tables += [(name, table.get("columns", {})) for name, table in schema.tables.items()]
    types: dict[str, dict[str, str]] = {}
    for name, columns in tables:
        for column, spec in columns.items():
            if spec.get("data_type"):
                types.setdefault(name, {})[column] = _SQL_TYPES.get(spec["data_type"], "VARCHAR")
    return types


def _null_type(sql_type: str) -> exp.DataType:
    """The type a missing column's NULL is cast to. Text stays VARCHAR (DuckDB's parser would
    make it TEXT): dlt's text columns are VARCHAR on Postgres, and a view whose column turns
    from TEXT to VARCHAR once the table exists cannot be replaced there."""
    if sql_type == "VARCHAR":
        return exp.DataType(this=exp.DataType.Type.VARCHAR)
    return exp.DataType.build(sql_type, dialect="duckdb")


_NO_ROW = sqlglot.parse_one("SELECT 1 AS one WHERE FALSE")


def fill_missing(tree: exp.Expression, dataset: str, present: dict[str, set[str]],
                 types: dict[str, dict[str, str]]) -> exp.Expression:
    """Replace references to missing dataset tables or columns in a parsed view by typed NULLs
    (in place).

    Every column of a dataset table must be qualified with its table's alias; aliases are
    resolved in their own SELECT (sqlglot's scopes), so two providers' parts may use the same.
    """
    missing: list[tuple[exp.Column, str]] = []
    for scope in traverse_scope(tree):
        tables = {alias: source.name for alias, source in scope.sources.items()
                  if isinstance(source, exp.Table) and source.db == dataset}
        for column in scope.columns:
            table_name = tables.get(column.table)
            if table_name is None or "*" in present.get(table_name, ()):
                continue  # not a dataset table, or a view (read whole)
            if column.name not in present.get(table_name, set()):
                missing.append((column, types.get(table_name, {}).get(column.name, "VARCHAR")))
    for column, sql_type in missing:
        null: exp.Expression = exp.cast(exp.null(), _null_type(sql_type))
        if isinstance(column.parent, exp.Select):  # a bare output column keeps its name
            null = exp.alias_(null, column.name)
        column.replace(null)
    for table in list(tree.find_all(exp.Table)):
        if table.db == dataset and table.name not in present:
            # its columns are NULLs now; one row of them, filtered away, keeps the joins valid
            table.replace(exp.Subquery(this=_NO_ROW.copy(),
                                       alias=exp.TableAlias(this=exp.to_identifier(
                                           table.alias_or_name))))
    return tree


def view_statements(pipeline: dlt.Pipeline, client: Any, dialect: str,
                    providers: Sequence[Provider] | None = None) -> list[tuple[str, str]]:
    """(view name, CREATE VIEW statement in `dialect`, the destination's) for every view;
    `client` is an open destination (job) client of `pipeline`."""
    providers = _or_registered(providers)
    dataset = pipeline.dataset_name
    views = all_views(providers)
    # parsed once: sqlglot's parsing is most of the views' cost
    trees = [sqlglot.parse_one(view.sql.format(ds=dataset), read="duckdb") for view in views]
    for view, tree in zip(views, trees, strict=True):
        if unchecked := unchecked_functions(tree):
            raise ViewsUnchecked(
                f"view {view.name} uses {', '.join(unchecked)}, whose rendering for {dialect} "
                "no test checks (pipelines/analytics/view_functions.py: add a sample and run "
                "tests/test_view_functions.py on every destination); no view was changed")
    referenced = {t.name for tree in trees for t in tree.find_all(exp.Table) if t.db == dataset}
    present = {name: set(columns) for name, columns in client.get_storage_tables(
        sorted(referenced - {v.name for v in views})) if columns}
    present |= {v.name: {"*"} for v in views}  # views are read whole, never column-filled
    types = _column_types(pipeline, providers)
    statements = []
    for view, tree in zip(views, trees, strict=True):
        tree = fill_missing(tree, dataset, present, types)
        body = render(tree, dialect)
        target = exp.table_(view.name, db=dataset).sql(dialect=dialect)
        statements.append((view.name, f"CREATE VIEW {target} AS {body}"))
    return statements


def _or_registered(providers: Sequence[Provider] | None) -> Sequence[Provider]:
    """`providers`, or every registered one."""
    return providers or [p.provider for p in registered().values()]


VIEWS_DIGEST_FILE = "views.digest"  # in the local pipeline folder (one per destination)


def view_names(providers: Sequence[Provider] | None = None) -> list[str]:
    providers = _or_registered(providers)
    return [view.name for view in all_views(providers)]


def views_digest(pipeline: dlt.Pipeline, providers: Sequence[Provider] | None = None) -> str:
    """What the views are made of: every schema's version (a table or column added changes
    it) and the views' SQL. Equal digests make equal views over the same destination."""
    providers = _or_registered(providers)
    from pipelines.destinations.dlt_tooling import (
        SCHEMA_NAME,  # the schema made from the views: not theirs
    )

    parts = [pipeline.dataset_name, *(f"{name}:{pipeline.schemas[name].version_hash}"
                                      for name in sorted(pipeline.schema_names)
                                      if name != SCHEMA_NAME),
             *(view.sql for view in all_views(providers))]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# dialects whose CREATE OR REPLACE VIEW keeps what users built on a view (their views, dbt
# models): a view is replaced in place, never dropped, where its columns stay the same
_REPLACES = frozenset({"duckdb", "postgres", "mysql", "snowflake", "bigquery", "databricks"})


class ViewsBlocked(DestinationError):
    """A view whose columns changed cannot be replaced: objects of the user depend on it."""


class ViewsUnchecked(DestinationError):
    """A view uses a function whose rendering for the destination is not checked."""


class ViewUnreadable(DestinationError):
    """A view was created but cannot be read on the destination (a function it lacks)."""


def create_views(pipeline: dlt.Pipeline, providers: Sequence[Provider] | None = None
                 ) -> list[str]:
    """Create or replace every view in one transaction where the destination has them;
    returns the names created. A view is replaced in place where the dialect can (what users
    built on it stays); on Postgres a view whose columns changed is dropped and created anew,
    and when objects of the user depend on it, `ViewsBlocked` names them (nothing changes)."""
    dialect = sql_dialect(pipeline)  # resolves the destination's configuration: once
    # one client for reading the tables and writing the views: dlt resolves the destination's
    # configuration for each, and a DuckDB file is opened (and checkpointed) each time
    with pipeline.destination_client() as client:
        statements = view_statements(pipeline, client, dialect, providers)
        sql = client.sql_client
        with sql.begin_transaction():
            if dialect not in _REPLACES:  # e.g. SQLite: no OR REPLACE, no dependencies
                for name, _ in reversed(statements):
                    sql.execute_sql(f"DROP VIEW IF EXISTS {_target(pipeline, name, dialect)}")
            for i, (name, statement) in enumerate(statements):
                later = {later_name for later_name, _ in statements[i + 1:]}
                _create(sql, pipeline, dialect, name, statement, later)
            _read_each(sql, pipeline, dialect, [name for name, _ in statements])
    return [name for name, _ in statements]


def _create(sql: Any, pipeline: dlt.Pipeline, dialect: str, name: str, statement: str,
            later: set[str]) -> None:
    """Create or replace one view; a database refusing its SQL names the view."""
    try:
        if dialect not in _REPLACES:
            sql.execute_sql(statement)
        elif dialect == "postgres":
            _replace_postgres(sql, pipeline, name, statement, later)
        else:
            sql.execute_sql(statement.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
    except ViewsBlocked:
        raise
    except Exception as exc:
        if "connection" in type(exc).__name__.lower():
            raise  # not the view's fault
        raise ViewUnreadable(f"view {name} cannot be made on {dialect}: "
                             f"{str(exc).splitlines()[0][:300]}; no view was changed") from None


def _read_each(sql: Any, pipeline: dlt.Pipeline, dialect: str, names: list[str]) -> None:
    """Read every view once, no row asked for: a database that creates a view without
    resolving its functions (SQLite) refuses it here, and the views' transaction rolls back."""
    for name in names:
        try:
            sql.execute_sql(f"SELECT * FROM {_target(pipeline, name, dialect)} WHERE 1 = 0")
        except Exception as exc:
            raise ViewUnreadable(f"view {name} cannot be read on {dialect}: "
                                 f"{str(exc).splitlines()[0][:300]}; no view was changed"
                                 ) from None


def _target(pipeline: dlt.Pipeline, name: str, dialect: str) -> str:
    return exp.table_(name, db=pipeline.dataset_name).sql(dialect=dialect)


def _replace_postgres(sql: Any, pipeline: dlt.Pipeline, name: str, statement: str,
                      later: set[str]) -> None:
    """CREATE OR REPLACE (Postgres refuses it when a column is renamed, retyped or removed);
    then DROP and CREATE, with the views of ours that read it (`later`: created after it in
    this transaction); a user's object reading it is named and nothing changes. Through
    psycopg2's own cursor: dlt's resets the connection, and so the transaction, on any error."""
    import psycopg2

    target = _target(pipeline, name, "postgres")
    with sql.native_connection.cursor() as cur:
        cur.execute("SAVEPOINT upload_status_view")
        try:
            cur.execute(statement.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
            cur.execute("RELEASE SAVEPOINT upload_status_view")
            return
        except psycopg2.Error:
            cur.execute("ROLLBACK TO SAVEPOINT upload_status_view")
        dependents = _postgres_dependents(cur, target)
        theirs = sorted(f"{schema}.{view}" for schema, view in dependents
                        if schema != pipeline.dataset_name or view not in later)
        if theirs:
            raise ViewsBlocked(
                f"view {name} changed its columns and must be dropped to be made anew, but "
                f"{', '.join(theirs)} depend(s) on it: drop them, run again, then create "
                "them again (every view was left as it was)")
        ours = [target, *(_target(pipeline, view, "postgres") for _, view in dependents)]
        cur.execute(f"DROP VIEW IF EXISTS {', '.join(ours)}")
        cur.execute(statement)


def _postgres_dependents(cur: Any, target: str) -> list[tuple[str, str]]:
    """(schema, name) of every view or rule reading `target`, directly or through another."""
    cur.execute("""
        WITH RECURSIVE readers(oid) AS (
            SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.refobjid = to_regclass(%s) AND r.ev_class <> d.refobjid
            UNION
            SELECT r.ev_class FROM readers JOIN pg_depend d ON d.refobjid = readers.oid
            JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class <> d.refobjid)
        SELECT n.nspname, c.relname FROM readers JOIN pg_class c ON c.oid = readers.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2""", (target,))
    return [(schema, view) for schema, view in cur.fetchall()]
