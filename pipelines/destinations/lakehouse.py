"""The filesystem destination as a lakehouse: Delta tables (DESTINATION__FILESYSTEM__TABLE_FORMAT
= "delta"), merged by upsert on each table's key, since dlt's Delta tables have no
delete-insert; read back for the views and the report through an in-memory DuckDB over the
Delta tables (read with `deltalake`: DuckDB 2.0's delta extension is not installable offline).
Plain files are refused: dlt appends every run there."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import dlt
import duckdb
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.extract.items import TableNameMeta
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource
from sqlglot import exp

from pipelines.analytics.views import view_statements
from pipelines.common.usage import UsageError
from pipelines.destinations.dlt_private import table_variants

TABLE_FORMAT_KEY = "destination.filesystem.table_format"


def table_format(pipeline: dlt.Pipeline) -> str | None:
    """`delta` (or another value) for the filesystem destination, None elsewhere."""
    if pipeline.destination.destination_name != "filesystem":
        return None
    value = dlt.config.get(TABLE_FORMAT_KEY)
    return str(value).strip().lower() if value else ""


def is_lakehouse(pipeline: dlt.Pipeline) -> bool:
    return table_format(pipeline) == "delta"


def refuse_appending(pipeline: dlt.Pipeline) -> None:
    """UsageError for the filesystem destination without Delta tables (dlt's merge falls back
    to append there: every run would store every job again) or without `deltalake`."""
    fmt = table_format(pipeline)
    if fmt is None:
        return
    if fmt != "delta":
        raise UsageError(
            "the filesystem destination cannot merge plain files: dlt appends every run there, "
            "so every job would be stored again by each run. Set DESTINATION__FILESYSTEM__"
            f"TABLE_FORMAT=delta (Delta tables, merged by upsert){f', not {fmt!r}' if fmt else ''}"
            ", or load into a database (DuckDB, the default, Postgres, ...).")
    try:
        import deltalake  # noqa: F401
    except ImportError:
        raise UsageError('Delta tables need the deltalake package: pip install '
                         '"dlt[deltalake]"') from None


def for_destination(source: DltSource, pipeline: dlt.Pipeline) -> DltSource:
    """The source as the pipeline's destination can load it: on Delta, every table of every
    resource (its table variants too) a Delta table, and each merge an upsert on the
    table's primary key, or on its `_dlt_id` where it has none (rows built with one: a
    replaced list's extra rows stay)."""
    if is_lakehouse(pipeline):
        for resource in source.resources.values():
            _as_delta(resource)
    return source


def _as_delta(resource: DltResource) -> None:
    for variant in [None, *table_variants(resource)]:
        meta = None if variant is None else TableNameMeta(variant)
        table = resource.compute_table_schema(meta=meta)
        hints: dict[str, Any] = {"table_format": "delta"}
        if table.get("write_disposition") == "merge":
            keys = [name for name, column in table.get("columns", {}).items()
                    if column.get("primary_key")]
            hints.update(write_disposition={"disposition": "merge", "strategy": "upsert"},
                         primary_key=keys or "_dlt_id", merge_key="")
        if variant is None:
            resource.apply_hints(**hints)
        else:
            resource.apply_hints(table_name=variant, create_table_variant=True, **hints)


class _DuckDBTables:
    """What `view_statements` asks of a destination client, answered by a DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, dataset: str) -> None:
        self.con, self.dataset = con, dataset

    def get_storage_tables(self, names: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        for name in names:
            rows = self.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ?", [self.dataset, name]).fetchall()
            yield name, {column: {} for (column,) in rows}


@contextmanager
def lake_connection(pipeline: dlt.Pipeline) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB holding, in a schema named as the dataset, a view over each Delta
    table the pipeline has loaded, and the BI views over those."""
    if not pipeline.schema_names:
        pipeline.sync_destination()  # a machine without the local folder: the lake has it
    dataset = pipeline.dataset_name
    con = duckdb.connect()
    try:
        schema = exp.to_identifier(dataset).sql(dialect="duckdb")
        con.execute(f"CREATE SCHEMA {schema}")
        for index, (name, delta) in enumerate(_delta_tables(pipeline)):
            con.register(f"_delta_{index}", delta.to_pyarrow_dataset())
            target = exp.table_(name, db=dataset).sql(dialect="duckdb")
            con.execute(f"CREATE VIEW {target} AS SELECT * FROM _delta_{index}")
        for _, statement in view_statements(pipeline, _DuckDBTables(con, dataset), "duckdb"):
            con.execute(statement)
        yield con
    finally:
        con.close()


def _delta_tables(pipeline: dlt.Pipeline) -> Iterator[tuple[str, Any]]:
    seen: set[str] = set()
    for schema_name in pipeline.schema_names:
        with pipeline.destination_client(schema_name) as client:
            for table in pipeline.schemas[schema_name].data_tables(seen_data_only=True):
                if table["name"] in seen:
                    continue
                try:
                    delta = client.load_open_table("delta", table["name"])
                except DestinationUndefinedEntity:
                    continue  # declared, never written
                seen.add(table["name"])
                yield table["name"], delta
