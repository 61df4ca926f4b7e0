"""The pipeline as a plain dlt script, for schedulers that take scripts (`dlt deploy`).

`python upload_status_pipeline.py` loads every provider that has its credential configured,
each in its own `pipeline.run` so one failing provider leaves the others loaded, then creates the
views; the exit code is 1 if any provider failed. The destination is DESTINATION_NAME from the
environment or config (default duckdb). `upload-status run` does the same with a summary table.
"""

from __future__ import annotations

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException

from pipelines.runner import make_pipeline
from pipelines.views import create_views
from sources import provider_modules


def main() -> int:
    destination = dlt.config.get("destination_name") or "duckdb"
    if destination == "duckdb":  # the DuckDB file must not be named like the dataset
        pipeline = make_pipeline("duckdb", "upload_status")
    else:
        pipeline = dlt.pipeline(pipeline_name="upload_status", destination=destination,
                                dataset_name="upload_status")
    failed = []
    for name, module in provider_modules().items():
        try:
            source = module.SOURCE()
        except ConfigFieldMissingException:
            print(f"{name}: not configured, skipped")
            continue
        try:
            print(pipeline.run(source))
        except Exception as exc:  # the next provider still runs
            failed.append(name)
            print(f"{name}: failed: {type(exc).__name__}")
            if pipeline.has_pending_data:
                pipeline.abort_packages()
    create_views(pipeline)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
