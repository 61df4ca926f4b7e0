"""Airflow DAG for upload-status: one task per provider, each `upload-status run --source NAME`.

- Nothing is resolved when Airflow parses this file: it imports Airflow and lists the provider
  folders (`sources.provider_names`, no dlt). Each task imports the project, reads its
  configuration (SOURCES__..., DESTINATION__... environment variables,
  `.dlt/` files, or dlt's `dlt_secrets_toml` Airflow variable) and loads its provider.
- The tasks run in parallel as far as the executor lets them, and each holds the run lock of
  the destination + dataset while it writes (`--wait` up to the task's timeout): they take turns
  instead of overwriting each other's state, and a manual run or an overlapping DAG run waits
  the same way. Each starts from the state the destination holds, so a task on another worker
  sees what the previous one recorded.
- A provider without its credential: its task is skipped and says why; no other task notices.
- A provider that fails, or partly fails (a HighLevel location the API refuses): its task fails
  with the error line, which fails the DAG run; the other providers still load.
- Each task creates the views anew after its load.

Copy to the `dags/` folder with this project's packages (`sources`, `pipelines`) importable by
the workers. DESTINATION_NAME picks the destination (default postgres: a DuckDB file inside a
worker is not kept), UPLOAD_STATUS_DATASET the dataset.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task

from sources import provider_names

PROVIDERS = provider_names()  # one task per provider folder
TASK_TIMEOUT = timedelta(hours=1)
LOCK_WAIT = timedelta(minutes=30)  # another writer of the dataset first: a task or a manual run


def load_provider(provider: str) -> dict[str, Any]:
    """`upload-status run --source <provider>` as an Airflow task: skipped when the provider is
    not configured, failed when it did not load whole."""
    import os

    import dlt
    from airflow.exceptions import AirflowFailException, AirflowSkipException

    from pipelines.common.usage import UsageError
    from pipelines.run.runner import run_providers

    destination = dlt.config.get("destination_name") or "postgres"
    try:
        report = run_providers([provider], destination=str(destination),
                               dataset=os.environ.get("UPLOAD_STATUS_DATASET"),
                               wait=LOCK_WAIT.total_seconds(), skip_unconfigured=True)
    except UsageError as exc:  # a configuration mistake, or the lock not free in time
        raise AirflowFailException(str(exc)) from None
    stats = report.providers[0]
    summary = {"outcome": stats.outcome, "requests": stats.requests, **stats.counts,
               "rows_loaded": stats.rows_loaded}
    print(f"{provider}: {summary}")
    if stats.outcome == "skipped":
        raise AirflowSkipException("; ".join(stats.errors))
    problems = [*stats.errors, *(a.reason for a in report.set_aside), *filter(None, [
        report.resume_error, report.views_error])]
    if report.exit_code != 0:
        raise AirflowFailException(f"{provider} {stats.outcome}: " + "; ".join(problems))
    return summary


@dag(
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "airflow", "retries": 0, "execution_timeout": TASK_TIMEOUT},
)
def upload_status() -> None:
    for provider in PROVIDERS:
        task(task_id=f"load_{provider}")(load_provider)(provider)


upload_status()
