"""What dlt's own tools read after a run (`pipeline.dataset()`, `dlt pipeline ... schema /
trace / show`): one schema holding every provider's tables and the views, made the pipeline's
default, and one trace of the whole run (each provider loads in a `pipeline.run` of its own, so
dlt would keep the first provider's schema as the default and the last one's trace)."""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import dlt
from dlt.common.schema import Schema
from dlt.common.schema.typing import TTableSchema
from dlt.common.schema.utils import new_table
from dlt.extract.resource import DltResource
from dlt.pipeline.trace import PipelineTrace, save_trace

from sources.common.redaction import redact

SCHEMA_NAME = "upload_status"


def dataset_schema(pipeline: dlt.Pipeline, views: Sequence[str]) -> Schema:
    """Every provider's tables, and the views as tables dlt never writes (their columns as the
    destination reports them)."""
    schema = Schema(SCHEMA_NAME)
    for name in pipeline.schema_names:
        if name != SCHEMA_NAME:
            for table in pipeline.schemas[name].data_tables():
                schema.update_table(deepcopy(table))
    with pipeline.destination_client() as client:
        for view in views:
            try:
                ((_, columns),) = client.get_storage_tables([view])
            except ValueError:
                continue  # a type dlt cannot map (SQLite's views have untyped columns)
            if columns:
                schema.update_table(new_table(view, write_disposition="skip",
                                              columns=list(columns.values())))
    return schema


def publish_schema(pipeline: dlt.Pipeline, views: Sequence[str]) -> None:
    """Make the dataset's schema the pipeline's default and store it, with the state naming it,
    in the destination: a load of a source without resources (its package holds the schema
    and the state only, so no table is created). Only when either changed."""
    schema = dataset_schema(pipeline, views)
    stored = pipeline.schemas.get(SCHEMA_NAME)
    if (stored is not None and _tables(stored) == _tables(schema)
            and pipeline.default_schema_name == SCHEMA_NAME):
        return
    pipeline.schemas.save_schema(schema)  # a source without resources would not save it
    with pipeline.managed_state():
        pipeline.default_schema_name = SCHEMA_NAME

    @dlt.source(schema=schema)
    def dataset_tables() -> list[DltResource]:
        return []

    pipeline.run(dataset_tables())


def _tables(schema: Schema) -> list[TTableSchema]:
    """What a dataset schema holds of its own (dlt adds its tables and hints when it loads)."""
    return sorted(schema.data_tables(), key=lambda table: table["name"])


def save_run_trace(pipeline: dlt.Pipeline, traces: Sequence[PipelineTrace]) -> None:
    """The providers' `pipeline.run` traces as one, the steps in the order they ran (dlt kept
    only the last run's: another provider's, or the dataset schema's load)."""
    if not traces:
        return
    first, last = traces[0], traces[-1]
    merged = first._replace(steps=[step for trace in traces for step in trace.steps],
                            finished_at=last.finished_at)
    save_trace(pipeline.working_dir, scrubbed(merged))


def scrubbed(value: Any, depth: int = 0) -> Any:
    """`value` with every known credential redacted in its strings (tuples, named tuples,
    lists and dicts rebuilt): an exception message in a trace can quote a token received from
    an OAuth answer (requests names a header value it refuses)."""
    if isinstance(value, str):
        return redact(value)
    if depth > 40:
        return value
    if isinstance(value, dict):
        return {scrubbed(k, depth + 1): scrubbed(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        items = [scrubbed(v, depth + 1) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value
