"""examples/airflow under a real Airflow (`airflow dags test`, its own cached virtualenv made by
scripts/airflow-venv.sh) against the simulator, into a real DuckDB file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from conftest import REPO

from simulator import Simulator
from sources import provider_names
from sources.highlevel.fixture import HighLevelFixture
from sources.lobstr.fixture import LobstrFixture

TASK = "a" * 32


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An Airflow home with a migrated SQLite metadata database and our DAG folder."""
    venv = subprocess.run([str(REPO / "scripts" / "airflow-venv.sh")], capture_output=True,
                          text=True, timeout=1800)
    assert venv.returncode == 0, venv.stderr[-3000:]
    home = tmp_path_factory.mktemp("airflow")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SOURCES__", "DESTINATION__", "AIRFLOW"))}
    env.update({
        "PATH": f"{venv.stdout.strip()}/bin:{env['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "examples" / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": str(REPO),
    })
    migrated = subprocess.run(["airflow", "db", "migrate"], env=env, capture_output=True,
                              text=True, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    yield env


def dags_test(env: dict[str, str], sim: Simulator, cwd: Path, date: str,
              **config: str) -> tuple[int, dict[str, str]]:
    """`airflow dags test upload_status DATE`: its exit code and every task's final state."""
    highlevel, lobstr = sim.fixtures["highlevel"], sim.fixtures["lobstr"]
    run_env = {**env, "DESTINATION_NAME": "duckdb",
               "DESTINATION__DUCKDB__CREDENTIALS": str(cwd / "warehouse.duckdb"),
               "DLT_DATA_DIR": str(cwd / "dlt"),
               "SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
               "SOURCES__HIGHLEVEL__ACCESS_TOKEN": highlevel.token,
               "SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(["loc_a"]),
               "SOURCES__LOBSTR__BASE_URL": sim.base_url,
               "SOURCES__LOBSTR__API_KEY": lobstr.token,
               "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([TASK]),
               **config}  # upload_post and cleartax: not configured
    done = subprocess.run(["airflow", "dags", "test", "upload_status", date], cwd=cwd,
                          env=run_env, capture_output=True, text=True, timeout=900)
    con = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        states = dict(con.execute(
            "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run r ON "
            "r.run_id = ti.run_id AND r.dag_id = ti.dag_id WHERE ti.dag_id = 'upload_status' "
            "AND r.logical_date LIKE ?", (f"{date}%",)).fetchall())
        (run_state,) = con.execute(
            "SELECT state FROM dag_run WHERE dag_id = 'upload_status' AND logical_date LIKE ?",
            (f"{date}%",)).fetchone()
    finally:
        con.close()
    states["dag_run"] = run_state
    print(done.stdout[-3000:], done.stderr[-3000:])
    return done.returncode, states


def skipped_but(*configured: str) -> dict[str, str]:
    """Every provider's task skipped, but those configured."""
    return {f"load_{name}": "skipped" for name in provider_names() if name not in configured}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    lobstr = LobstrFixture()
    lobstr.add(TASK, ["SUCCESS"])
    with Simulator(HighLevelFixture(locations={"loc_a": 5}, seed=3), lobstr) as started:
        yield started


def test_all_configured_providers_load_and_the_unset_ones_are_skipped(airflow_env, sim,
                                                                      tmp_path):
    code, states = dags_test(airflow_env, sim, tmp_path, "2026-11-20")
    assert states == {**skipped_but("highlevel", "lobstr"), "load_highlevel": "success",
                      "load_lobstr": "success", "dag_run": "success"}, states
    assert code == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        jobs = con.execute("SELECT provider, COUNT(*) FROM upload_status.upload_jobs "
                           "GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    assert jobs == [("highlevel", 5), ("lobstr", 1)]


def test_a_bad_token_or_a_refused_location_fails_its_task_and_the_dag_run(airflow_env, sim,
                                                                           tmp_path):
    """Lobstr's token is rejected, one HighLevel location is refused (the other loads): both
    tasks fail, so does the DAG run; the providers not configured are skipped all the same."""
    code, states = dags_test(airflow_env, sim, tmp_path, "2026-11-21",
                             SOURCES__LOBSTR__API_KEY="wrong-token-8d2f",
                             SOURCES__HIGHLEVEL__LOCATION_IDS=json.dumps(["loc_a", "loc_gone"]))
    assert states == {**skipped_but("highlevel", "lobstr"), "load_highlevel": "failed",
                      "load_lobstr": "failed", "dag_run": "failed"}, states
    assert code != 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:  # the location that answered is loaded
        assert con.execute("SELECT COUNT(*) FROM upload_status.highlevel_csv_uploads"
                           ).fetchone() == (5,)
    finally:
        con.close()
