"""Issue 30, item 6 on a real Postgres: the views are replaced in place, so what users build
on them (a dbt model over `upload_jobs`) survives every run, a fresh runner's included; a view
whose columns changed under a user's object is refused with that object named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dlt
from conftest import warehouse_at

from pipelines.runner import run_providers


def _fresh(pipeline: dlt.Pipeline) -> dlt.Pipeline:
    """The same pipeline on a runner without its local folder (a new CI machine)."""
    shutil.rmtree(pipeline.working_dir)
    return dlt.pipeline("upload_status", destination=pipeline.destination,
                        dataset_name=pipeline.dataset_name, pipelines_dir=pipeline.pipelines_dir)


def test_a_users_view_over_upload_jobs_survives_runs_and_a_fresh_runner(polled_sim, tmp_path,
                                                                       db_path, monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    tasks = [lobstr.add(f"{i:032x}", ["PENDING", "SUCCESS"]) for i in range(1, 4)]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
    with warehouse_at("postgres", tmp_path, db_path) as wh:
        pipeline = wh.pipeline
        assert run_providers(["lobstr"], pipeline=pipeline).exit_code == 0
        wh.query("CREATE VIEW {ds}.dbt_lobstr_jobs AS SELECT job_id, status "
                 "FROM {ds}.upload_jobs WHERE provider = 'lobstr'")
        polled_sim.advance()
        for fresh_runner in (False, True, False):  # the second on a runner without the folder
            if fresh_runner:
                pipeline = _fresh(pipeline)
            report = run_providers(["lobstr"], pipeline=pipeline)
            assert report.exit_code == 0 and report.views_error is None, report.views_error
            (Path(pipeline.working_dir) / "views.digest").unlink(missing_ok=True)
        assert sorted(wh.query("SELECT job_id, status FROM {ds}.dbt_lobstr_jobs")) == [
            (t, "succeeded") for t in tasks]


def test_a_changed_view_under_a_users_object_is_refused_naming_it(polled_sim, tmp_path,
                                                                  db_path, monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS",
                       json.dumps([lobstr.add("a" * 32, ["SUCCESS"])]))
    with warehouse_at("postgres", tmp_path, db_path) as wh:
        assert run_providers(["lobstr"], pipeline=wh.pipeline).exit_code == 0
        # as an older version's view with a column this one no longer has, read by a user
        wh.query("DROP VIEW {ds}.upload_failing_units")
        wh.query("CREATE VIEW {ds}.upload_failing_units AS SELECT 'x'::text AS provider, "
                 "1 AS retired")
        wh.query("CREATE VIEW {ds}.my_report AS SELECT retired FROM {ds}.upload_failing_units")
        (Path(wh.pipeline.working_dir) / "views.digest").unlink()

        report = run_providers(["lobstr"], pipeline=wh.pipeline)

        assert report.exit_code == 1
        assert "my_report depend(s) on it" in report.views_error, report.views_error
        assert "upload_failing_units" in report.views_error
        assert wh.query("SELECT retired FROM {ds}.my_report") == [(1,)]
