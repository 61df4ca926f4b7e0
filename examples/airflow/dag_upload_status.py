"""Airflow DAG for upload-status: one task per provider (a failing provider fails only its own
task), then a task that creates the views. Built on dlt's Airflow helper, as the DAG that
`dlt deploy upload_status_pipeline.py airflow-composer` starts from.

Copy to the `dags/` folder next to this project's packages (`sources`, `pipelines`) and set the
credentials as Airflow variables or environment variables (SOURCES__..., DESTINATION__...).
"""

from datetime import timedelta

import dlt
from airflow.decorators import dag, task
from dlt.common import pendulum
from dlt.helpers.airflow_helper import PipelineTasksGroup

DESTINATION = "postgres"  # a warehouse: a DuckDB file inside a worker is not kept

default_task_args = {
    "owner": "airflow",
    "depends_on_past": False,
    "email_on_failure": False,
    "retries": 0,
    "execution_timeout": timedelta(hours=1),
}


@dag(
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,  # runs must not overlap: they share the pipeline state
    default_args=default_task_args,
)
def upload_status():
    from sources.cleartax import cleartax_source
    from sources.highlevel import highlevel_source
    from sources.lobstr import lobstr_source
    from sources.upload_post import upload_post_source

    tasks = PipelineTasksGroup("upload_status", use_data_folder=False, wipe_local_data=True)
    pipeline = dlt.pipeline(pipeline_name="upload_status", dataset_name="upload_status",
                            destination=DESTINATION)
    # remove the providers you do not use
    runs = [
        tasks.add_run(pipeline, source(), decompose="none", trigger_rule="all_done", retries=0)
        for source in (highlevel_source, upload_post_source, lobstr_source, cleartax_source)
    ]

    @task(trigger_rule="all_done")
    def create_views() -> list[str]:
        from pipelines.views import create_views as create

        return create(dlt.pipeline(pipeline_name="upload_status", dataset_name="upload_status",
                                   destination=DESTINATION))

    views = create_views()
    for run in runs:
        run[-1] >> views


upload_status()
