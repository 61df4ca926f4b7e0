"""A run killed with SIGKILL, then run again, ends with the tables of a run never killed.

Every scenario starts from the same first run (a copy of its DuckDB file and pipeline folder),
moves an identically seeded simulator one step on, and compares every table of the dataset,
row for row, with a reference that ran the second run without interruption. Columns that hold
the wall-clock time of a run (and the keys derived from it) are left out of the comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import REPO, cli

from pipelines.runner import remove_reloaded_rows, run_providers
from simulator import Fault, HighLevelFixture, LobstrFixture, Simulator

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
TASKS = [f"{i:032x}" for i in range(1, 7)]
# when a run happened, and keys made from it (dlt's row ids too): different in every run
VOLATILE = {"_dlt_load_id", "_dlt_id", "observed_at", "last_seen_at", "polled_at",
            "registered_at", "change_key", "rejected_at", "reject_key", "inserted_at"}


def scenario() -> Simulator:
    """Two locations of HighLevel imports and six Lobstr tasks, the same every time."""
    lobstr = LobstrFixture()
    for i, task in enumerate(TASKS):
        steps = [["PENDING", "PROGRESS", "SUCCESS"], ["PROGRESS", "FAILURE"], ["SUCCESS"]][i % 3]
        lobstr.add(task, steps, valid=10 + i, invalid=i % 2)
    highlevel = HighLevelFixture(locations={"loc_a": 24, "loc_b": 9}, seed=11, now=NOW,
                                 unfinished_share=0.5)
    return Simulator(highlevel, lobstr).start()


def env_for(sim: Simulator, workdir: Path) -> dict[str, str]:
    highlevel, lobstr = sim.fixtures["highlevel"], sim.fixtures["lobstr"]
    return {
        "DLT_DATA_DIR": str(workdir / "dlt"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "warehouse.duckdb"),
        "SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
        "SOURCES__HIGHLEVEL__ACCESS_TOKEN": highlevel.token,
        "SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(["loc_a", "loc_b"]),
        "SOURCES__HIGHLEVEL__PAGE_SIZE": "10",
        "SOURCES__LOBSTR__BASE_URL": sim.base_url,
        "SOURCES__LOBSTR__API_KEY": lobstr.token,
        "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(TASKS),
    }


def run(sim: Simulator, workdir: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("env", env_for(sim, workdir))
    return cli("run", cwd=workdir, **kwargs)


def tables(workdir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the dataset, volatile columns left out, rows sorted."""
    con = duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "'upload_status' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_dlt%'"
        ).fetchall()]
        out = {}
        for name in sorted(names):
            columns = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'upload_status' AND table_name = '{name}' ORDER BY column_name").fetchall()
                if r[0] not in VOLATILE and not r[0].startswith(("_dlt_parent", "_dlt_root"))]
            select = ", ".join(f'"{c}"' for c in columns)
            rows = con.execute(f'SELECT {select} FROM upload_status."{name}"').fetchall()
            out[name] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def first_and_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """The folder after a clean first run, and the tables after a clean second run."""
    first = tmp_path_factory.mktemp("first")
    with scenario() as sim:
        assert run(sim, first).returncode == 0
        reference = tmp_path_factory.mktemp("reference")
        shutil.copytree(first, reference, dirs_exist_ok=True)
        sim.advance()
        second = run(sim, reference)
        assert second.returncode == 0
        print(second.stdout)
    yield first, tables(reference)


def second_run_dir(first: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "crashed"
    shutil.copytree(first, workdir)
    return workdir


def assert_same_as_reference(workdir: Path, reference: dict) -> None:
    got = tables(workdir)
    assert sorted(got) == sorted(reference)
    for name, rows in reference.items():
        assert got[name] == rows, name
    history = got["highlevel_status_history"] + got["lobstr_status_history"]
    assert len(history) == len(set(history))  # no observation twice


@pytest.mark.parametrize("point", ["load-job:1", "load-job:4", "load-job:9", "package"])
def test_killed_mid_load_then_rerun_equals_a_clean_run(first_and_reference, tmp_path, point):
    first, reference = first_and_reference
    workdir = second_run_dir(first, tmp_path)
    with scenario() as sim:
        sim.advance()
        killed = run(sim, workdir, env={**env_for(sim, workdir), "CRASH_AT": point},
                     script="crash_run.py")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        rerun = run(sim, workdir)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same_as_reference(workdir, reference)


@pytest.mark.parametrize("held", [
    r"/social-media-posting/loc_a/csv/[0-9a-f]+",  # HighLevel extracting posts
    rf"/v1/tasks/upload/{TASKS[3]}",  # Lobstr polling, after HighLevel's load finished
])
def test_killed_mid_extract_then_rerun_equals_a_clean_run(first_and_reference, tmp_path, held):
    first, reference = first_and_reference
    workdir = second_run_dir(first, tmp_path)
    with scenario() as sim:
        sim.advance()
        hold = Fault(None, held, delay=60)
        sim.inject(hold)
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run"], cwd=workdir,
            env={**os.environ, **env_for(sim, workdir), "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert hold.arrived.wait(120), "the run never reached the held request"
            process.send_signal(signal.SIGKILL)
            assert process.wait(30) == -signal.SIGKILL
        finally:
            process.kill()
        hold.times = 0
        hold.delay = 0
        rerun = run(sim, workdir)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same_as_reference(workdir, reference)


def test_rows_loaded_twice_are_removed(pipeline, query, highlevel_sim):
    highlevel_sim(HighLevelFixture(locations={"loc1": 6}, unfinished_share=0.0,
                                   failure_share=1.0))
    run_providers(["highlevel"], pipeline=pipeline)
    before = {t: query(f"SELECT COUNT(*) FROM {{ds}}.{t}")[0][0]
              for t in ("highlevel_csv_posts", "highlevel_csv_uploads")}
    with pipeline.sql_client() as client:  # what a job run twice leaves behind
        for table in before:
            name = client.make_qualified_table_name(table)
            client.execute_sql(f"INSERT INTO {name} SELECT * FROM {name}")

    removed = remove_reloaded_rows(pipeline)

    assert removed == sum(before.values())
    for table, n in before.items():
        assert query(f"SELECT COUNT(*), COUNT(DISTINCT _dlt_id) FROM {{ds}}.{table}"
                               ) == [(n, n)]
