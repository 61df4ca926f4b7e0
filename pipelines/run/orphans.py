"""Rows of a load no run finished: removed before a run records changes again.

A load package commits job by job; dlt marks it loaded (a `_dlt_loads` row) only after its last
job, and its state (what was recorded) is restored only from loaded packages. Rows of a
package that never got there (its writer killed on another machine, its lock lost, the package
set aside) are therefore observed and recorded again by the next run: in the history tables
that would store a change twice. Such rows are deleted: a set-aside package's at once
(`drop_rows_of`), a dead writer's at the next run's start (`drop_unfinished_rows`), except
those of packages this machine still has pending (`finish_interrupted` completes those).
Current-state tables need nothing: their merge replaces the rows.
"""

from __future__ import annotations

from contextlib import suppress

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.job_client_impl import SqlJobClientBase


def _appended_tables(pipeline: dlt.Pipeline, schema_name: str) -> list[str]:
    """Top-level tables whose rows are never replaced by a later load of the same thing: the
    history (merged on a key made per run) and plain appends."""
    schema = pipeline.schemas[schema_name]
    out = []
    for table in schema.data_tables(seen_data_only=True):
        if table.get("parent") or "_dlt_load_id" not in table.get("columns", {}):
            continue
        keys = [n for n, c in table["columns"].items() if c.get("primary_key")]
        if table.get("write_disposition") == "append" or keys == ["change_key"]:
            out.append(table["name"])
    return out


def _history_tables(pipeline: dlt.Pipeline) -> list[str]:
    """Every schema's appended tables; none on file destinations (Delta: dlt's own)."""
    if pipeline.destination.destination_name == "filesystem":
        return []
    return [t for name in pipeline.schema_names for t in _appended_tables(pipeline, name)]


def drop_unfinished_rows(pipeline: dlt.Pipeline) -> int:
    """Delete the rows of loads that never finished (see the module); returns how many. One
    connection, one count per history table."""
    if not (tables := _history_tables(pipeline)):
        return 0
    with pipeline.destination_client() as client:
        if not isinstance(client, SqlJobClientBase):
            return 0
        return _delete(client, tables, list(pipeline.list_normalized_load_packages()))


def drop_rows_of(pipeline: dlt.Pipeline, load_id: str) -> None:
    """Delete the history rows a package committed before it was set aside: the state rolls
    back, so the next run records those changes again."""
    if not (tables := _history_tables(pipeline)):
        return
    with pipeline.destination_client() as client:
        if not isinstance(client, SqlJobClientBase):
            return
        sql = client.sql_client
        for table in tables:
            with suppress(DestinationUndefinedEntity), sql.begin_transaction():
                sql.execute_sql(f"DELETE FROM {sql.make_qualified_table_name(table)} "
                                "WHERE _dlt_load_id = %s", load_id)


def newest_finished_load(pipeline: dlt.Pipeline) -> str | None:
    """The newest load id the destination marks loaded, None if none or it cannot tell."""
    with pipeline.destination_client() as client:
        if not isinstance(client, SqlJobClientBase):
            return None
        sql = client.sql_client
        loads = sql.make_qualified_table_name(client.schema.loads_table_name)
        try:
            rows = sql.execute_sql(f"SELECT MAX(load_id) FROM {loads} WHERE status = 0")
        except DestinationUndefinedEntity:
            return None
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def _delete(client: SqlJobClientBase, tables: list[str], pending: list[str]) -> int:
    sql = client.sql_client
    loads = sql.make_qualified_table_name(client.schema.loads_table_name)
    keep = " AND ".join(["_dlt_load_id <> %s"] * len(pending))
    # newer than the newest finished load: a writer that died or lost its lock was the last
    # to write; an emptied `_dlt_loads` (NULL) deletes nothing
    where = (f"_dlt_load_id > (SELECT MAX(load_id) FROM {loads} WHERE status = 0)"
             + (f" AND {keep}" if keep else ""))
    deleted = 0
    for table in tables:
        name = sql.make_qualified_table_name(table)
        with suppress(DestinationUndefinedEntity):
            found = sql.execute_sql(f"SELECT COUNT(*) FROM {name} WHERE {where}", *pending)
            if found and found[0][0]:
                with sql.begin_transaction():  # a commit: it passes the run lock's fence
                    sql.execute_sql(f"DELETE FROM {name} WHERE {where}", *pending)
                deleted += int(found[0][0])
    return deleted
