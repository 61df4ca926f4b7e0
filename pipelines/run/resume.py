"""Resuming a killed load without loading any job twice, on every SQL destination.

dlt writes down that a load job is done (its "pending transition") only after the destination
committed the job's rows; a process killed between the two leaves a job that dlt runs again on
resume, copying its rows a second time (Postgres then refuses every later run on the unique
`_dlt_id`; DuckDB keeps both copies). dlt has no check for this, so before resuming we ask the
destination: a job's rows are committed in one transaction, so if the first row of its file
(by `_dlt_id` and the package's load id) is in its target table, all of them are, and the job is
marked completed instead of run again. One indexed lookup per interrupted job.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.common.destination.client import JobClientBase, WithStagingDataset
from dlt.common.storages.load_package import ParsedLoadJobFileName
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.destinations.dlt_private import job_client, normalized_packages
from pipelines.run.interrupt import Interrupted, signal_in
from pipelines.run.orphans import newest_finished_load
from pipelines.run.run_report import RunReport
from pipelines.run.set_aside import SetAside, keep_and_abort, root_message, set_aside

_HEAD_BYTES = 16 * 1024 * 1024  # enough for any first row; beyond it the job simply runs again


def settle_committed_jobs(pipeline: dlt.Pipeline) -> int:
    """Mark completed every interrupted job of the pending packages whose rows the destination
    already holds; returns how many."""
    packages = normalized_packages(pipeline)
    settled = 0
    for load_id in pipeline.list_normalized_load_packages():
        unsure = [path for path in packages.list_started_jobs(load_id)
                  if packages.load_pending_transition(load_id, os.path.basename(path)) is None]
        if not unsure:
            continue
        schema = packages.load_schema(load_id)
        # the package's own schema: the pipeline's may have moved on since it was normalized
        client = job_client(pipeline, schema)
        if not isinstance(client, SqlJobClientBase):
            continue  # files, vector stores: dlt's own resume
        with client:
            for path in unsure:
                name = os.path.basename(path)
                job = ParsedLoadJobFileName.parse(name)
                row_key = first_row_key(packages.storage.make_full_path(path), job.file_format)
                if row_key is not None and _holds(client, job.table_name, load_id, row_key):
                    packages.save_pending_transition(load_id, name, "completed")
                    settled += 1
    return settled


def _holds(client: SqlJobClientBase, table: str, load_id: str, row_key: str) -> bool:
    """Whether the job's target table (its staging copy for merged tables) holds the row.

    Nested tables carry no load id, but their row keys are derived from the parent's: they are
    checked where only this package's rows can be, in staging (merged) or in a table a first
    load appends to."""
    with _target_dataset(client, table):
        sql = client.sql_client
        name = sql.make_qualified_table_name(table)
        # bound, never spliced: dlt's sqlalchemy destination has no literal escaper
        where, values = "_dlt_id = %s", [row_key]
        if "_dlt_load_id" in client.schema.get_table_columns(table):
            where += " AND _dlt_load_id = %s"
            values.append(load_id)
        try:
            rows = sql.execute_sql(f"SELECT 1 FROM {name} WHERE {where}", *values)
        except DatabaseUndefinedRelation:
            return False
    return bool(rows)


@contextmanager
def _target_dataset(client: JobClientBase, table: str) -> Iterator[None]:
    if isinstance(client, WithStagingDataset) and client.should_load_data_to_staging_dataset(
            table):
        with client.with_staging_dataset():
            yield
    else:
        yield


def first_row_key(path: str, file_format: str) -> str | None:
    """The `_dlt_id` of the first row of a load job file, None if it has none or cannot tell."""
    try:
        if file_format == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            if "_dlt_id" not in parquet.schema_arrow.names or parquet.metadata.num_rows == 0:
                return None
            ids = parquet.read_row_group(0, columns=["_dlt_id"]).column(0)
            return str(ids[0].as_py()) if len(ids) else None
        head = _read_head(path)
        if file_format == "insert_values":
            return insert_values_first_key(head)
        if file_format in ("jsonl", "typed-jsonl"):  # typed-jsonl: a list of rows a line
            first = head.split("\n", 1)[0]
            row = json.loads(first) if first.strip() else None
            row = (row or [None])[0] if isinstance(row, list) else row
            return str(row["_dlt_id"]) if isinstance(row, dict) else None
        if file_format == "csv":
            row = next(csv.DictReader(io.StringIO(head)), None)
            return row.get("_dlt_id") if row else None
    except (OSError, ValueError, KeyError, StopIteration, IndexError):
        return None
    return None  # .sql and .reference jobs: running them again changes nothing


def _read_head(path: str) -> str:
    with open(path, "rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        stream: Any = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
        return stream.read(_HEAD_BYTES).decode("utf-8", errors="replace")


def insert_values_first_key(text: str) -> str | None:
    """`_dlt_id` of the first row of dlt's insert_values file: `INSERT INTO {}("a",...)`,
    `VALUES`, then `(v1,v2,...)` with values as SQL literals (E'...' escapes backslashes)."""
    header, sep, body = text.partition(")\nVALUES\n(")
    if not sep or "(" not in header:
        return None
    columns = [c.strip().strip('"') for c in header[header.index("(") + 1:].split(",")]
    if "_dlt_id" not in columns:
        return None
    values = _split_row(body)
    index = columns.index("_dlt_id")
    if values is None or index >= len(values):
        return None
    value = values[index]
    if value.startswith(("E'", "e'")):
        value = value[1:]
    if len(value) < 2 or value[0] != "'" or value[-1] != "'":
        return None
    return value[1:-1].replace("''", "'").replace("\\'", "'").replace("\\\\", "\\")


def _split_row(body: str) -> list[str] | None:
    """The literals of one row up to its closing parenthesis, None if it does not close."""
    values, start, i, quoted, extended = [], 0, 0, False, False
    while i < len(body):
        char = body[i]
        if quoted:
            if extended and char == "\\":
                i += 2
                continue
            if char == "'":
                if body[i + 1:i + 2] == "'":
                    i += 2
                    continue
                quoted = False
        elif char == "'":
            quoted, extended = True, body[i - 1:i] in ("E", "e")
        elif char in ",)":
            values.append(body[start:i].strip())
            start = i + 1
            if char == ")":
                return values
        i += 1
    return None


def finish_interrupted(pipeline: dlt.Pipeline, report: RunReport) -> None:
    """Load what an interrupted run (killed, out of power) extracted but did not finish loading.

    Its state was committed with its data, so this run's extract starts from it; dlt's `run`
    would load such packages and then skip the new extract, so they are finished here first.
    Jobs whose rows the destination already holds are not loaded again (`resume`); a package
    the destination refuses for good is set aside (`set_aside`) and the others still load.
    """
    report.notes.extend(f"a pending load package ({a.load_id}) was {a.reason}; kept in "
                        f"{a.path}" for a in set_aside_superseded(pipeline))
    while pipeline.has_pending_data:
        try:
            pipeline.normalize()  # the file format was chosen when the package was extracted
            report.jobs_settled += settle_committed_jobs(pipeline)
            info = pipeline.load()
            report.resumed += len(info.loads_ids)
            return
        except PipelineStepFailed as exc:
            if (signum := signal_in(exc)) is not None:
                raise Interrupted(signum) from None
            aside = set_aside(pipeline, exc)
            if aside is None or aside.load_id in {a.load_id for a in report.set_aside}:
                # transient (retried by the next run), or a package dlt would not let go
                report.resume_error = ("loading the packages of an interrupted run failed: "
                                       f"{root_message(exc)}")
                return
            report.set_aside.append(aside)


def set_aside_superseded(pipeline: dlt.Pipeline) -> list[SetAside]:
    """Set aside the pending packages another writer overtook: the destination holds a load
    finished after them (another machine ran while this one was down, or this run lost its
    lock). Loading them now would record their changes a second time; their rows already
    committed are removed (`orphans`) and the next run observes those jobs again."""
    pending = pipeline.list_normalized_load_packages()
    newest = newest_finished_load(pipeline) if pending else None
    if newest is None:
        return []
    reason = (f"overtaken by a run of another process that finished loading {newest} after "
              "it was made (loading it would record its changes twice): its jobs are read again")
    aside = []
    for load_id in pending:
        # aborting one package rolls the state back past the ones after it: dlt drops those
        if float(load_id) < float(newest) and \
                load_id in pipeline.list_normalized_load_packages():
            aside.append(keep_and_abort(pipeline, load_id, reason))
    return aside
