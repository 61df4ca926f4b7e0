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
from pipelines.track import track_jobs
from simulator import (
    ClearTaxFixture,
    HighLevelFixture,
    LobstrFixture,
    Simulator,
    UploadPostFixture,
)

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


def _demo_fixtures() -> tuple[HighLevelFixture, UploadPostFixture, LobstrFixture,
                                ClearTaxFixture]:
    # a page cap below the requested limit, as real servers may impose
    return (HighLevelFixture(locations=DEMO_LOCATIONS, seed=2026, page_cap=40),
            UploadPostFixture(), LobstrFixture(), ClearTaxFixture())


def run_demo(fresh: bool = True, runs: int = 3) -> int:
    if fresh:
        DEMO_DB.unlink(missing_ok=True)
        shutil.rmtree(DEMO_PIPELINES_DIR, ignore_errors=True)
    highlevel, up, lobstr, cleartax = fixtures = _demo_fixtures()
    up_refs = up.generate(40, seed=2026)
    lobstr_ids = lobstr.generate(15, seed=2026)
    activities = cleartax.generate(["te-mumbai-01", "te-pune-02", "te-delhi-03"], 18, seed=2026)
    with Simulator(*fixtures) as sim, _env({
        "SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
        "SOURCES__HIGHLEVEL__ACCESS_TOKEN": highlevel.token,
        "SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(list(DEMO_LOCATIONS)),
        "SOURCES__UPLOAD_POST__BASE_URL": sim.base_url,
        "SOURCES__UPLOAD_POST__API_KEY": up.token,
        "SOURCES__LOBSTR__BASE_URL": sim.base_url,
        "SOURCES__LOBSTR__API_KEY": lobstr.token,
        # some ids come from configuration, the rest are registered with `track` below
        "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(lobstr_ids[:5]),
        "SOURCES__CLEARTAX__BASE_URL": sim.base_url,
        "SOURCES__CLEARTAX__AUTH_TOKEN": cleartax.token,
    }):
        console.print(f"Simulator of the four APIs listening on {sim.base_url}")
        pipeline = dlt.pipeline("upload_status_demo", destination=dlt.destinations.duckdb(
            str(DEMO_DB)), dataset_name=DEFAULT_DATASET, pipelines_dir=str(DEMO_PIPELINES_DIR))
        assert loader_file_format(pipeline) == "parquet"
        # requests still waiting for a platform are not in Upload-Post's history yet: a user
        # registers the ids their async uploads returned
        for name, ids in (("upload_post", up_refs[:20]), ("lobstr", lobstr_ids[5:]),
                          ("cleartax", activities)):
            result = track_jobs(name, ids, pipeline=pipeline)
            console.print(f"upload-status track {name} ...: {result.registered} jobs followed")
        exit_code = 0
        for run in range(1, runs + 1):
            if run > 1:
                # time passes: unfinished jobs progress, a new location gets its first imports
                sim.advance()
                if run == 2:
                    highlevel.add_imports("loc_new_store", 4)
            sim.clear_log()
            report = run_providers(pipeline=pipeline)
            print_report(report, f"Run {run}" + (": first load" if run == 1 else
                                                 ": after the simulator advanced"))
            exit_code = max(exit_code, report.exit_code)
    show_loaded(DEMO_DB)
    console.print(f"\nDuckDB file: {DEMO_DB.resolve()} (dataset {DEFAULT_DATASET})")
    return exit_code


def show_loaded(db: Path) -> None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        ds = DEFAULT_DATASET
        _print_query(con, "Jobs by provider and canonical status (latest observation)", f"""
            select provider, status, count(*) as jobs from (
                select 'highlevel' as provider, job_ref, status, observed_at,
                       row_number() over (partition by job_ref order by observed_at desc) as n
                from {ds}.highlevel_status_history
                union all select 'upload_post', job_ref, canonical_status, polled_at, 1
                from {ds}.upload_post_uploads
                union all select 'lobstr', job_ref, canonical_status, polled_at, 1
                from {ds}.lobstr_upload_tasks
                union all select 'cleartax', job_ref, canonical_status, polled_at, 1
                from {ds}.cleartax_upload_activities
            ) where n = 1 group by all order by provider, jobs desc""")
        _print_query(con, "Why posts failed (highlevel_csv_posts.error_message)", f"""
            select error_message, count(*) as posts, count(distinct csv_id) as imports
            from {ds}.highlevel_csv_posts where error_message is not null
            group by all order by posts desc""")
        _print_query(con, "Upload-Post platform failures (upload_post_uploads__results)", f"""
            select r.platform, r.message, count(*) as uploads
            from {ds}.upload_post_uploads u
            join {ds}.upload_post_uploads__results r on r._dlt_parent_id = u._dlt_id
            where not r.success group by all order by uploads desc""")
        _print_query(con, "Lobstr rows per finished upload task (lobstr_upload_tasks)", f"""
            select state, count(*) as tasks, sum(meta__valid) as valid,
                   sum(meta__invalid) as invalid, sum(meta__duplicates) as duplicates
            from {ds}.lobstr_upload_tasks where is_terminal group by all""")
        _print_query(con, "ClearTax aborted activities (cleartax_upload_activities)", f"""
            select taxable_entity_id, error_message, count(*) as activities
            from {ds}.cleartax_upload_activities where status = 'ABORTED'
            group by all order by activities desc""")
        _print_query(con, "Status changes observed per provider (*_status_history)", f"""
            select provider, previous_native_status, native_status, count(*) as jobs from (
                select * from {ds}.highlevel_status_history
                union all by name select * from {ds}.upload_post_status_history
                union all by name select * from {ds}.lobstr_status_history
                union all by name select * from {ds}.cleartax_status_history)
            group by all order by provider, jobs desc limit 20""")
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
