"""Our Arrow rows are what dlt's own row path would load: the same imports written as Arrow
items (imports, their accounts, status history) and as plain dicts dlt normalizes itself end
up as the same columns, types and values in DuckDB."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pendulum
import pytest

from sources.common.arrow_items import history_arrow, to_arrow
from sources.common.tracking import HISTORY_COLUMNS
from sources.highlevel.accounts import ACCOUNT_COLUMNS, ACCOUNTS_TABLE, account_table, import_key
from sources.highlevel.fixture import HighLevelFixture
from sources.highlevel.post_rows import (
    POST_LISTS,
    POSTS_COLUMNS,
    POSTS_TABLE,
    declare_list_tables,
    post_items,
    row_key,
)
from sources.highlevel.settings import CSV_COLUMNS

SEEN_AT = pendulum.datetime(2026, 11, 30, 12, 0, tz="UTC")


def imports() -> list[dict[str, Any]]:
    """The simulator's imports prepared as the listing prepares them, plus the field shapes
    a real API adds: a field not declared, a float, a bool, a null, an empty account list."""
    records = copy.deepcopy(HighLevelFixture(locations={"loc1": 40}, seed=11,
                                             now=SEEN_AT).imports["loc1"])
    for i, record in enumerate(records):
        record.update(locationId="loc1", last_seen_at=SEEN_AT, _dlt_id=import_key(record["_id"]))
        record["extraNote"] = None if i % 3 else f"note {i}"
        record["score"] = i / 4
        record["isTest"] = i % 2 == 0
    records[0]["accountIds"] = []
    return records


def history() -> list[tuple]:
    return [(f"k{i}", "highlevel", f"job{i}", f"job{i}", "loc1", "completed", "succeeded",
             None if i else "partial", None if i % 2 else "pending", SEEN_AT) for i in range(5)]


def posts() -> list[dict[str, Any]]:
    """The simulator's posts of those imports as `read_posts` tags them, a field added."""
    fixture = HighLevelFixture(locations={"loc1": 40}, seed=11, now=SEEN_AT)
    return [{"csv_id": record["_id"], "location_id": "loc1", "post_index": i, **post,
             "boosted": i % 2 == 0}
            for record in fixture.imports["loc1"] for i, post in enumerate(fixture.posts(record))]


def load(folder: Path, as_arrow: bool) -> duckdb.DuckDBPyConnection:
    rows = imports()
    naming = dlt.Schema("highlevel").naming

    @dlt.resource(name="highlevel_csv_uploads", primary_key="_id", write_disposition="merge",
                  columns=CSV_COLUMNS)
    def uploads():
        yield to_arrow(rows, CSV_COLUMNS, naming, unnested=("accountIds",)) if as_arrow else rows

    @dlt.resource(name=ACCOUNTS_TABLE, columns=ACCOUNT_COLUMNS, write_disposition="append")
    def accounts():
        yield account_table(rows)

    @dlt.resource(name="highlevel_status_history", columns=HISTORY_COLUMNS,
                  write_disposition="append")
    def status_history():
        yield history_arrow(history()) if as_arrow else [
            dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in history()]

    @dlt.resource(name=POSTS_TABLE, primary_key=("csv_id", "post_index"), merge_key="csv_id",
                  write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                  columns=POSTS_COLUMNS)
    def highlevel_posts():
        if as_arrow:
            yield from post_items(posts(), dlt.current.source_schema())
        else:
            yield [{**post, "_dlt_id": row_key(post["csv_id"], post["post_index"])}
                   for post in posts()]

    declare_list_tables(highlevel_posts)
    pipeline = dlt.pipeline("contract", destination=dlt.destinations.duckdb(
        str(folder / "db.duckdb")), dataset_name="ds", pipelines_dir=str(folder / "p"))
    resources = [uploads(), status_history(), highlevel_posts] + (
        [accounts()] if as_arrow else [])
    info = pipeline.run(resources, loader_file_format="parquet")
    assert not info.has_failed_jobs
    return duckdb.connect(str(folder / "db.duckdb"), read_only=True)


def columns(con, table: str) -> dict[str, str]:
    return dict(con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = "
        f"'ds' and table_name = '{table}' and column_name not in ('_dlt_load_id', '_dlt_id')"
    ).fetchall())


def rows(con, table: str) -> list[tuple]:
    names = ", ".join(f'"{c}"' for c in sorted(columns(con, table)))
    return sorted(con.execute(f"select {names} from ds.{table}").fetchall(), key=repr)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    arrow = load(tmp_path_factory.mktemp("arrow"), as_arrow=True)
    dicts = load(tmp_path_factory.mktemp("dicts"), as_arrow=False)
    yield arrow, dicts
    arrow.close()
    dicts.close()


@pytest.mark.parametrize("table", ["highlevel_csv_uploads", "highlevel_status_history",
                                   POSTS_TABLE])
def test_arrow_items_load_as_dlt_rows_would(both, table):
    arrow, dicts = both
    assert columns(arrow, table) == columns(dicts, table)
    assert rows(arrow, table) == rows(dicts, table)
    assert len(rows(arrow, table)) in (40, 5, len(posts()))


@pytest.mark.parametrize("table", POST_LISTS.values())
def test_post_lists_built_as_arrow_equal_dlt_unnesting_plus_their_import(both, table):
    """The same rows with the same ids as dlt's nested tables (`csv_id` added: what a
    re-read import replaces them on)."""
    arrow, dicts = both
    assert columns(arrow, table) == {**columns(dicts, table), "csv_id": "VARCHAR"}
    sql = f"""select p.csv_id, p.post_index, l.* exclude ({{}})
              from ds.{table} l join ds.{POSTS_TABLE} p on l._dlt_parent_id = p._dlt_id"""
    made = sorted(arrow.execute(sql.format("_dlt_load_id, _dlt_id, csv_id")).fetchall(),
                  key=repr)
    # dlt's nested rows carry no load id, and a digest for an id
    assert made == sorted(dicts.execute(sql.format("_dlt_id")).fetchall(), key=repr)
    assert len(made) >= len(posts())


def test_accounts_built_as_arrow_equal_dlt_unnesting(both):
    arrow, dicts = both
    sql = f"""select u._id, a.value, a._dlt_list_idx from ds.{ACCOUNTS_TABLE} a
              join ds.highlevel_csv_uploads u on a._dlt_parent_id = u._dlt_id order by 1, 3"""
    assert arrow.execute(sql).fetchall() == dicts.execute(sql).fetchall()
    assert columns(arrow, ACCOUNTS_TABLE) == columns(dicts, ACCOUNTS_TABLE)
    assert arrow.execute(f"select count(*) from ds.{ACCOUNTS_TABLE}").fetchone()[0] > 40


@pytest.mark.parametrize("table", ["highlevel_csv_uploads", "highlevel_status_history",
                                   ACCOUNTS_TABLE, POSTS_TABLE, *POST_LISTS.values()])
def test_arrow_rows_carry_the_load_id_without_a_process_wide_setting(both, table):
    """dlt adds `_dlt_load_id` to Arrow items only under a process-wide setting a source must
    not flip: the items carry the extracting package's own."""
    arrow, _ = both
    (load_id,) = arrow.execute("select load_id from ds._dlt_loads").fetchone()
    assert arrow.execute(f"select distinct _dlt_load_id from ds.{table}").fetchall() == [
        (load_id,)]
