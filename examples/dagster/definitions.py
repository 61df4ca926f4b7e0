"""Dagster definitions for upload-status: one asset per provider, each a run of that provider
(`upload-status run --source NAME`), and a schedule.

- Dagster's default executor runs each asset in a process of its own, side by side. Each
  holds the run lock of the destination + dataset while it writes (waiting up to LOCK_WAIT),
  so they take turns instead of sharing dlt's working folder at once, which is what makes
  dagster-dlt need the in-process executor. Each starts from the state the destination holds.
- A provider without its credential: its asset materializes with outcome `skipped` and a
  warning saying why; one that fails (or partly fails) fails its asset only.
- Loading the definitions resolves nothing (no dlt, no configuration): the providers are the
  folders under `sources/`.

`dagster dev -f examples/dagster/definitions.py` (or `-m` with the checkout on PYTHONPATH);
DESTINATION_NAME picks the destination (default duckdb: the file in the working folder),
UPLOAD_STATUS_DATASET the dataset; credentials as SOURCES__.../DESTINATION__... environment
variables or `.dlt/` files of the working folder.
"""

# no `from __future__ import annotations`: Dagster reads the context parameter's annotation
import os
from typing import Any

import dagster as dg

from sources import provider_names

LOCK_WAIT_SECONDS = 30 * 60  # another writer of the dataset first: an asset or a manual run


def load_provider(context: dg.AssetExecutionContext, provider: str) -> dg.Output[dict[str, Any]]:
    """One provider's run; dagster.Failure when it did not load whole."""
    import dlt

    from pipelines.common.usage import UsageError
    from pipelines.run.runner import run_providers

    destination = str(dlt.config.get("destination_name") or "duckdb")
    try:
        report = run_providers([provider], destination=destination,
                               dataset=os.environ.get("UPLOAD_STATUS_DATASET"),
                               wait=LOCK_WAIT_SECONDS, skip_unconfigured=True)
    except UsageError as exc:  # a configuration mistake, or the lock not free in time
        raise dg.Failure(str(exc)) from None
    stats = report.providers[0]
    summary = {"outcome": stats.outcome, "requests": stats.requests,
               "rows_loaded": sum(stats.rows_loaded.values())}
    context.log.info(f"{provider}: {summary}")
    problems = [*stats.errors, *(a.reason for a in report.set_aside), *filter(None, [
        report.resume_error, report.views_error])]
    if stats.outcome != "skipped" and report.exit_code != 0:
        raise dg.Failure(f"{provider} {stats.outcome}: " + "; ".join(problems))
    if stats.outcome == "skipped":
        context.log.warning("; ".join(stats.errors))
    return dg.Output(summary, metadata={k: dg.MetadataValue.text(str(v))
                                        for k, v in summary.items()})


def provider_asset(provider: str) -> dg.AssetsDefinition:
    @dg.asset(name=f"upload_status_{provider}", group_name="upload_status",
              description=f"{provider} job statuses loaded by upload-status")
    def load(context: dg.AssetExecutionContext) -> dg.Output[dict[str, Any]]:
        return load_provider(context, provider)

    return load


ASSETS = [provider_asset(name) for name in provider_names()]
every_half_hour = dg.ScheduleDefinition(
    name="upload_status_every_30_minutes", cron_schedule="*/30 * * * *",
    target=dg.AssetSelection.groups("upload_status"))

defs = dg.Definitions(assets=ASSETS, schedules=[every_half_hour])
