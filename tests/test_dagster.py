"""examples/dagster under a real Dagster (its own cached virtualenv, scripts/dagster-venv.sh):
`dagster asset materialize` with Dagster's default executor (each asset in a subprocess of its
own, side by side) against the simulator, into a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, cached_venv

from sources.cleartax.fixture import ClearTaxFixture
from sources.lobstr.fixture import LobstrFixture

DEFINITIONS = REPO / "examples/dagster/definitions.py"


@pytest.fixture(scope="module")
def dagster() -> Path:
    return cached_venv("dagster-venv.sh") / "bin" / "dagster"


def materialize(dagster: Path, cwd: Path, settings: dict[str, str]
                ) -> subprocess.CompletedProcess[str]:
    (cwd / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update(PYTHONPATH=str(REPO), DAGSTER_HOME=str(cwd / "home"), DLT_DATA_DIR=str(cwd / "dlt"),
               RUNTIME__DLTHUB_TELEMETRY="false", **settings)
    return subprocess.run([str(dagster), "asset", "materialize", "-f", str(DEFINITIONS),
                           "--select", "*"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_every_provider_asset_under_the_default_executor(dagster, polled_sim, tmp_path: Path):
    lobstr: LobstrFixture = polled_sim.fixtures["lobstr"]
    cleartax: ClearTaxFixture = polled_sim.fixtures["cleartax"]
    settings = {
        "SOURCES__LOBSTR__BASE_URL": polled_sim.base_url, "SOURCES__LOBSTR__API_KEY": lobstr.token,
        "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(
            [lobstr.add("a" * 32, ["SUCCESS"]), lobstr.add("b" * 32, ["FAILURE"])]),
        "SOURCES__CLEARTAX__BASE_URL": polled_sim.base_url,
        "SOURCES__CLEARTAX__AUTH_TOKEN": cleartax.token,
        "SOURCES__CLEARTAX__ACTIVITIES": json.dumps([cleartax.add("te-1", "act-1", ["PROCESSED"])]),
    }

    done = materialize(dagster, tmp_path, settings)

    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Multiprocess executor" in log and log.count("in subprocess") >= 4
    assert "upload_post not configured" in log and "highlevel not configured" in log
    con = duckdb.connect(str(tmp_path / "upload_status_data.duckdb"), read_only=True)
    try:
        assert sorted(con.execute("SELECT provider, status FROM upload_status.upload_jobs"
                                  ).fetchall()) == [("cleartax", "succeeded"),
                                                    ("lobstr", "failed"), ("lobstr", "succeeded")]
    finally:
        con.close()

    # a rejected credential (a new job to poll) fails that asset and the run; the others load
    secret = "tok-DAGSTER-9f3e-never-shown"
    failed = materialize(dagster, tmp_path, {
        **settings, "SOURCES__LOBSTR__API_KEY": secret,
        "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([lobstr.add("c" * 32, ["PENDING"])]),
        "SOURCES__CLEARTAX__ACTIVITIES": json.dumps(
            [cleartax.add("te-1", "act-2", ["PROCESSED"])])})
    log = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "Materialization failed" in log
    assert secret not in log
    con = duckdb.connect(str(tmp_path / "upload_status_data.duckdb"), read_only=True)
    try:
        jobs = set(con.execute("SELECT provider, job_id FROM upload_status.upload_jobs").fetchall())
    finally:
        con.close()
    assert ("cleartax", "act-2") in jobs and ("lobstr", "c" * 32) not in jobs
