"""Issue 30, item 6 on a real Postgres: the views are replaced in place, so what users build
on them (a dbt model over `upload_jobs`) survives every run, a fresh runner's included; a view
whose columns changed under a user's object is refused with that object named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dlt
from conftest import warehouse_at

from pipelines.run.runner import run_providers


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


def test_a_changed_view_read_by_our_own_views_is_made_anew_with_them(polled_sim, tmp_path,
                                                                     db_path, monkeypatch):
    """As views made by a release that typed missing text columns TEXT (dlt's are VARCHAR):
    Postgres cannot replace them in place, and the views of ours reading them are dropped
    and made anew with them."""
    from pipelines.analytics.views import view_statements
    from pipelines.destinations.dialects import sql_dialect

    lobstr = polled_sim.fixtures["lobstr"]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS",
                       json.dumps([lobstr.add("a" * 32, ["SUCCESS"])]))
    history = "upload_job_status_history"
    with warehouse_at("postgres", tmp_path, db_path) as wh:
        assert run_providers(["lobstr"], pipeline=wh.pipeline).exit_code == 0
        with wh.pipeline.destination_client() as client:
            statements = view_statements(wh.pipeline, client, sql_dialect(wh.pipeline))
        names = [n for n, _ in statements]
        columns = wh.query(f"SELECT column_name FROM information_schema.columns WHERE "
                           f"table_schema = '{{ds}}' AND table_name = '{history}' "
                           "ORDER BY ordinal_position")
        body = dict(statements)[history].split(" AS ", 1)[1]
        retyped = ", ".join(f"q.{c}::text AS {c}" if c != "observed_at" else f"q.{c}"
                            for (c,) in columns)
        wh.query(f"DROP VIEW {{ds}}.{history} CASCADE")
        wh.query(f"CREATE VIEW {{ds}}.{history} AS SELECT {retyped} FROM ({body}) AS q")
        for name, statement in statements[names.index(history) + 1:]:
            wh.query(f"DROP VIEW IF EXISTS {{ds}}.{name} CASCADE")
            wh.query(statement)
        assert wh.query(f"SELECT data_type FROM information_schema.columns WHERE table_schema"
                        f" = '{{ds}}' AND table_name = '{history}' AND column_name = 'job_id'"
                        ) == [("text",)]
        (Path(wh.pipeline.working_dir) / "views.digest").unlink()

        report = run_providers(["lobstr"], pipeline=wh.pipeline)

        assert report.exit_code == 0 and report.views_error is None, report.views_error
        assert wh.query(f"SELECT data_type FROM information_schema.columns WHERE table_schema"
                        f" = '{{ds}}' AND table_name = '{history}' AND column_name = 'job_id'"
                        ) == [("character varying",)]
        assert wh.query("SELECT job_id, status FROM {ds}.upload_jobs") == [("a" * 32,
                                                                            "succeeded")]
