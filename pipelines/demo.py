"""`upload-status demo`: the pipeline against the bundled simulator, into a local DuckDB file."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dlt
import duckdb
from rich.table import Table

from pipelines.cli import console, print_report
from pipelines.runner import DEFAULT_DATASET, loader_file_format, run_providers
from simulator import HighLevelFixture, Simulator

DEMO_DB = Path("upload_status_demo.duckdb")
DEMO_PIPELINES_DIR = Path(".demo")
DEMO_LOCATIONS = {"loc_north_store": 60, "loc_south_store": 35, "loc_new_store": 0}


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
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


def run_demo(fresh: bool = True) -> int:
    if fresh:
        DEMO_DB.unlink(missing_ok=True)
        shutil.rmtree(DEMO_PIPELINES_DIR, ignore_errors=True)
    # a page cap below the requested limit, as real servers may impose
    fixture = HighLevelFixture(locations=DEMO_LOCATIONS, seed=2026, page_cap=40)
    with Simulator(fixture) as sim, _env({
        "SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
        "SOURCES__HIGHLEVEL__ACCESS_TOKEN": fixture.token,
        "SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(list(DEMO_LOCATIONS)),
    }):
        console.print(f"Simulator of the HighLevel API listening on {sim.base_url}")
        pipeline = dlt.pipeline("upload_status_demo", destination=dlt.destinations.duckdb(
            str(DEMO_DB)), dataset_name=DEFAULT_DATASET, pipelines_dir=str(DEMO_PIPELINES_DIR))
        assert loader_file_format(pipeline) == "parquet"
        first = run_providers(["highlevel"], pipeline=pipeline)
        print_report(first, "Run 1: first load")
        # time passes: unfinished imports progress and a new location gets its first imports
        sim.advance()
        fixture.add_imports("loc_new_store", 4)
        second = run_providers(["highlevel"], pipeline=pipeline)
        print_report(second, "Run 2: after the simulator advanced")
    show_loaded(DEMO_DB)
    console.print(f"\nDuckDB file: {DEMO_DB.resolve()} (dataset {DEFAULT_DATASET})")
    return max(first.exit_code, second.exit_code)


def show_loaded(db: Path) -> None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        ds = DEFAULT_DATASET
        _print_query(con, "HighLevel CSV imports by location and status", f"""
            select location_id, status, count(*) as imports, sum("count") as posts
            from {ds}.highlevel_csv_uploads group by all order by location_id, imports desc""")
        _print_query(con, "Newest imports (highlevel_csv_uploads)", f"""
            select _id, location_id, file_name, status, "count", created_at
            from {ds}.highlevel_csv_uploads order by created_at desc limit 8""")
        _print_query(con, "Why posts failed (highlevel_csv_posts.error_message)", f"""
            select error_message, count(*) as posts, count(distinct csv_id) as imports
            from {ds}.highlevel_csv_posts where error_message is not null
            group by all order by posts desc""")
        _print_query(con, "Status changes observed (highlevel_status_history)", f"""
            select previous_native_status, native_status, count(*) as imports
            from {ds}.highlevel_status_history group by all order by imports desc""")
    finally:
        con.close()


def _print_query(con: duckdb.DuckDBPyConnection, title: str, sql: str) -> None:
    cursor = con.execute(sql)
    table = Table(title=title)
    for col in cursor.description:
        table.add_column(col[0])
    for row in cursor.fetchall():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
