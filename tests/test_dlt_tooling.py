"""dlt's own tools on the project's pipeline, as a user reaches for them after real runs:
`pipeline.dataset()` (tables and views, Arrow and pandas), `dlt pipeline ... info / trace /
schema` through `upload-status dlt`, plain `dlt.attach` from the project folder, a wiped local
folder, and Postgres."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, cli, read_duckdb

from pipelines.run.runner import run_providers
from sources.highlevel.fixture import HighLevelFixture

DB = "upload_status_data.duckdb"

# a user's script: plain dlt, the pipeline folder named by `upload-status dlt info`, the
# DuckDB file named (dlt refuses DuckDB credentials in config.toml and would open a new
# `upload_status.duckdb`)
ATTACHED = """
import json, sys
import dlt
pipeline = dlt.attach("upload_status", pipelines_dir=sys.argv[1],
                      destination=dlt.destinations.duckdb("upload_status_data.duckdb"))
dataset = pipeline.dataset()
jobs = dataset.upload_jobs
print(json.dumps({
    "default_schema": pipeline.default_schema_name,
    "jobs_arrow": jobs.arrow().num_rows,
    "jobs_df": len(jobs.df()),
    "providers": sorted(set(jobs.arrow().column("provider").to_pylist())),
    "rates_columns": dataset.upload_success_rates.arrow().column_names,
    "imports": dataset.highlevel_csv_uploads.arrow().num_rows,
    "tasks": dataset.lobstr_upload_tasks.df().shape[0],
    "sql": dataset("SELECT COUNT(*) AS n FROM upload_jobs").fetchall()[0][0],
}))
"""


def _setup(polled_sim, highlevel_sim, tmp_path: Path) -> dict[str, str]:
    highlevel_sim(HighLevelFixture(locations={"loc1": 6}))
    lobstr = polled_sim.fixtures["lobstr"]
    ids = [lobstr.add("a" * 32, ["SUCCESS"]), lobstr.add("b" * 32, ["FAILURE"])]
    (tmp_path / ".dlt").mkdir()  # the project folder a user runs in
    shutil.copy(REPO / ".dlt/config.toml", tmp_path / ".dlt/config.toml")
    return {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(ids)}


def _pipelines_dir(info: str) -> str:
    return info.split("Found pipeline upload_status in ", 1)[1].split("\n", 1)[0].strip()


def test_dlt_tools_see_every_provider_and_the_views(polled_sim, highlevel_sim, tmp_path: Path):
    env = _setup(polled_sim, highlevel_sim, tmp_path)
    for _ in range(2):  # a first run, then one with nothing new
        done = cli("run", "--source", "highlevel", "--source", "lobstr", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr

    info = cli("dlt", "info", cwd=tmp_path)
    trace = cli("dlt", "trace", cwd=tmp_path)
    schema = cli("dlt", "schema", "--format", "yaml", cwd=tmp_path)

    for done in (info, trace, schema):
        assert done.returncode == 0, done.stdout + done.stderr
    assert "default_schema_name: upload_status" in info.stdout
    # the whole last run (extract, normalize, load, run of each provider), not its last one's
    assert "COMPLETED in" in trace.stdout and "with 8 steps" in trace.stdout
    for table in ("upload_jobs:", "upload_success_rates:", "highlevel_csv_uploads:",
                  "lobstr_upload_tasks:"):
        assert f"\n  {table}" in schema.stdout, table
    expected = read_duckdb(tmp_path / DB, "select count(*) from {ds}.upload_jobs")[0][0]
    assert expected == 8  # 6 imports and 2 tasks

    attached = subprocess.run([sys.executable, "-c", ATTACHED, _pipelines_dir(info.stdout)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert attached.returncode == 0, attached.stderr
    got = json.loads(attached.stdout)
    assert got == {"default_schema": "upload_status", "jobs_arrow": expected,
                   "jobs_df": expected, "providers": ["highlevel", "lobstr"],
                   "rates_columns": got["rates_columns"], "imports": 6, "tasks": 2,
                   "sql": expected}
    assert got["rates_columns"][:3] == ["provider", "day", "jobs"]
    assert not (tmp_path / "upload_status.duckdb").exists()  # dlt found our file

    # a lost local folder: the next run restores it, with the dataset schema
    shutil.rmtree(_pipelines_dir(info.stdout))
    assert cli("run", "--source", "lobstr", cwd=tmp_path, env=env).returncode == 0
    again = subprocess.run([sys.executable, "-c", ATTACHED, _pipelines_dir(info.stdout)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["jobs_arrow"] == expected


def test_dataset_on_postgres_reads_tables_and_views(warehouse, polled_sim, monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS",
                       json.dumps([lobstr.add("c" * 32, ["SUCCESS"])]))

    report = run_providers(["lobstr"], pipeline=warehouse.pipeline)

    assert report.exit_code == 0, report.providers[0].errors
    dataset = warehouse.pipeline.dataset()
    jobs = dataset.upload_jobs.arrow()
    assert jobs.column("job_id").to_pylist() == ["c" * 32]
    assert dataset.lobstr_upload_tasks.df().shape[0] == 1
    assert warehouse.pipeline.default_schema_name == "upload_status"
    second = run_providers(["lobstr"], pipeline=warehouse.pipeline)  # nothing new: no repair
    assert second.exit_code == 0 and second.notes == []
