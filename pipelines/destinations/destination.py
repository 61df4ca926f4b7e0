"""The destination a run writes to: the DuckDB file (its name, its lock, its memory), any other
dlt destination by name, the pipeline into it, and the run lock held while writing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines.common.local_state import created_alone, pipelines_dir_for, prune_loaded_packages
from pipelines.common.memory import StepBoundaries
from pipelines.common.usage import UsageError
from pipelines.destinations import duckdb_compat  # noqa: F401  (dlt's Arrow reads on DuckDB 2.0)
from pipelines.destinations.duckdb_sharing import check_reader_wait, waiting_for_readers
from pipelines.destinations.fence import fenced
from pipelines.destinations.lakehouse import refuse_appending
from pipelines.destinations.project import project_dir
from pipelines.destinations.run_lock import LockHeld, LockLost, LockPathUnusable, holding, lock_for

PIPELINE_NAME = "upload_status"
DEFAULT_DATASET = "upload_status"
# DuckDB names a file's catalog after its stem, and a catalog named like the dataset (schema)
# makes every `upload_status.<table>` reference ambiguous, so the file must be named differently.
DEFAULT_DUCKDB_FILE = "upload_status_data.duckdb"


def dataset_name(given: str | None) -> str:
    """The dataset as the destination names it (dlt's snake_case: `My Dataset` -> `my_dataset`,
    `123` -> `_123`); every command and view uses this form."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    text = (given or DEFAULT_DATASET).strip()
    if not text:
        raise UsageError("--dataset is empty: give a name, e.g. upload_status")
    return NamingConvention().normalize_identifier(text)


DUCKDB_KEY = "DESTINATION__DUCKDB__CREDENTIALS"
_DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def duckdb_path(dataset: str) -> str:
    """The DuckDB file to load into: DESTINATION__DUCKDB__CREDENTIALS or the default, made
    absolute; UsageError naming the key for a value that is no local file (MotherDuck,
    `:memory:`) or is named like the dataset."""
    configured = dlt.config.get("destination.duckdb.credentials")
    path = str(configured).strip() if configured else DEFAULT_DUCKDB_FILE
    if path.lower().startswith(("md:", "motherduck:")):
        raise UsageError(f"{DUCKDB_KEY} names a MotherDuck database: use --destination "
                         "motherduck with DESTINATION__MOTHERDUCK__CREDENTIALS instead")
    if path.startswith(":") or path.lower().startswith("duckdb:///:memory:"):
        raise UsageError(f"{DUCKDB_KEY} is an in-memory database, lost when the run ends: give "
                         "a file, e.g. upload_status_data.duckdb")
    if "://" in path:
        return path
    if Path(path).stem.lower() == dataset.lower():
        raise UsageError(
            f"DuckDB file '{path}' has the same name as the dataset '{dataset}': DuckDB then "
            f"cannot tell the catalog from the schema. Set {DUCKDB_KEY} to a "
            "file with another name, or choose another --dataset.")
    # absolute: dlt would resolve a relative path against the folder of the pipeline's first
    # run; a relative one is the project's (where `.dlt/` is, `project.find_project`)
    return str((project_dir() / Path(path).expanduser()).resolve())


def check_duckdb_file(path: str, write: bool) -> None:
    """UsageError naming the key when `path` cannot be the DuckDB file: a folder, a file that
    is no DuckDB database (an empty one included), a missing folder, a file or folder that
    cannot be written (`write`), or no file yet (reading)."""
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"{DUCKDB_KEY}: {path} is a folder; give a file in it, e.g. "
                         f"{file / DEFAULT_DUCKDB_FILE}")
    if not file.exists():
        if not write:
            raise UsageError(f"no DuckDB file {path} yet: run `upload-status run` first (or "
                             f"set {DUCKDB_KEY})")
        if not file.parent.is_dir():
            raise UsageError(f"{DUCKDB_KEY}: {path}: the folder {file.parent} does not exist: "
                             "create it or choose another file")
        if not os.access(file.parent, os.W_OK):
            raise UsageError(f"{DUCKDB_KEY}: {path}: the folder {file.parent} is not writable")
        return
    with file.open("rb") as handle:
        head = handle.read(12)
    if head[8:12] != _DUCKDB_MAGIC:
        what = "is empty (0 bytes)" if not head else "is not a DuckDB database"
        raise UsageError(f"{DUCKDB_KEY}: {path} {what}: delete it (a new one is created) or "
                         "choose another file")
    if write and not (os.access(file, os.W_OK) and os.access(file.parent, os.W_OK)):
        raise UsageError(f"{DUCKDB_KEY}: {path} (or its folder) is read-only: a run writes "
                         "it; `upload-status report` can read it as it is")


def lock_holder(exc: Exception) -> str | None:
    """The PID DuckDB names when another process holds the file's lock ("unknown" when it names
    none), None when `exc` is not about the lock."""
    text = str(exc)
    if "lock" not in text.lower():
        return None
    return text.split("(PID", 1)[1].split(")", 1)[0].strip() if "(PID" in text else "unknown"


def ensure_duckdb_free(path: str) -> None:
    """UsageError when another process (a BI tool, a second run) holds the DuckDB file for
    longer than a reader's query (`waiting_for_readers`): DuckDB allows one writing process per
    file, and dlt would fail deep inside the load."""
    if not Path(path).exists():
        return
    try:
        waiting_for_readers(lambda: duckdb.connect(path)).close()
    except duckdb.IOException as exc:
        if (holder := lock_holder(exc)) is None:
            raise
        raise UsageError(
            f"DuckDB file {path} is in use by another process (PID {holder}), e.g. a BI tool "
            "or another run. DuckDB lets one process write a file at a time: close it there "
            "(or have the tool read a copy) and run again.") from None


# BI tools embed DuckDB 1.x readers (Evidence's driver among them), which refuse a file in
# DuckDB 2.0's storage format; a file made with this format stays readable by DuckDB >= 1.4
STORAGE_COMPATIBILITY = "v1.4.0"
STORAGE_KEY = "destination.duckdb.storage_compatibility_version"


def create_duckdb_file(path: str) -> None:
    """Create a new DuckDB file in the storage format DESTINATION__DUCKDB__STORAGE_
    COMPATIBILITY_VERSION names (`STORAGE_COMPATIBILITY` by default, `latest` for DuckDB's
    own); later opens keep a file's format. UsageError naming the key for a value DuckDB
    refuses."""
    if Path(path).exists():
        return
    version = str(dlt.config.get(STORAGE_KEY) or STORAGE_COMPATIBILITY).strip()
    try:
        duckdb.connect(path, config={"storage_compatibility_version": version}).close()
    except (duckdb.InvalidInputException, duckdb.NotImplementedException) as exc:
        Path(path).unlink(missing_ok=True)
        raise UsageError(
            f"DESTINATION__DUCKDB__STORAGE_COMPATIBILITY_VERSION: DuckDB cannot write format "
            f"{version!r} ({str(exc).split(', valid options')[0]}); use e.g. "
            f"{STORAGE_COMPATIBILITY} or latest") from None


# DuckDB's own default (80 % of RAM) holds a whole merge in memory; capped, it spills to disk,
# and one thread keeps one set of buffers. Its load jobs run one at a time: each one in flight
# adds its own buffers over the cap (4 at once: +100 MB at 1,000,000 imports, bench/RESULTS.md)
DUCKDB_SETTINGS: dict[str, Any] = {"memory_limit": "128MB", "threads": 1}
DUCKDB_LOAD_JOBS = 1


def duckdb_destination(path: str) -> Any:
    """DuckDB at `path` with bounded memory (`DUCKDB_SETTINGS`); settings the user gives in
    DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG (e.g. another memory_limit) win."""
    configured = dlt.config.get("destination.duckdb.credentials.global_config") or {}
    if isinstance(configured, str):
        configured = json.loads(configured)
    # not DuckDbCredentials(path): parsing a path imports sqlalchemy (0.16 s of every start)
    credentials = DuckDbCredentials()
    credentials.database = path
    credentials.global_config = {**DUCKDB_SETTINGS, **configured}
    return dlt.destinations.duckdb(credentials, max_parallel_load_jobs=DUCKDB_LOAD_JOBS)


STAGING_SUFFIX = "_staging"  # dlt's staging dataset for merges: the dataset's name + this


def check_dataset_length(destination: Destination, dataset: str) -> None:
    """UsageError naming --dataset when the dataset (or its staging dataset) is longer than
    the destination's identifiers may be (Postgres: 63): the views failed on it every run."""
    try:
        limit = destination.capabilities().max_identifier_length
    except Exception:  # a destination that cannot say: dlt's own errors follow
        return
    if limit and len(dataset) + len(STAGING_SUFFIX) > limit:
        raise UsageError(
            f"--dataset {dataset[:40]}... is {len(dataset)} characters; "
            f"{destination.destination_name} allows {limit - len(STAGING_SUFFIX)} (its "
            f"identifiers are at most {limit}, and the staging dataset adds "
            f"'{STAGING_SUFFIX}'): choose a shorter name")


def make_pipeline(destination: str | None = None, dataset: str | None = None,
                  pipeline_name: str = PIPELINE_NAME, pipelines_dir: str | None = None
                  ) -> dlt.Pipeline:
    """The pipeline into `dataset` at `destination`, its local folder one of its own
    (`local_state.pipelines_dir_for`) unless `pipelines_dir` is given."""
    dataset = dataset_name(dataset)
    dest: Destination = (duckdb_destination(duckdb_path(dataset)) if destination in (None, "duckdb")
                         else Destination.from_reference(destination))
    check_dataset_length(dest, dataset)
    folder = pipelines_dir or pipelines_dir_for(dest, dataset)
    with created_alone(folder, pipeline_name):
        return dlt.pipeline(pipeline_name=pipeline_name, destination=dest, dataset_name=dataset,
                            pipelines_dir=folder, progress=StepBoundaries())


def duckdb_file(pipeline: dlt.Pipeline) -> str | None:
    """The DuckDB file `pipeline` loads into, None for other destinations or no plain file."""
    if pipeline.destination.destination_name != "duckdb":
        return None
    path = pipeline.destination.config_params.get("credentials")
    path = getattr(path, "database", path)
    plain = isinstance(path, str) and "://" not in path and not path.startswith(":")
    return path if plain else None


@contextmanager
def writing(pipeline: dlt.Pipeline, wait: float = 0,
            on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run lock of the pipeline's destination + dataset (`run_lock`) for the block:
    UsageError naming the holder when another process has it (after `wait` seconds). After
    the block, load packages completed before it are deleted from the local folder
    (`prune_loaded_packages`): it stays the size of one run's."""
    refuse_appending(pipeline)
    if (path := duckdb_file(pipeline)) is not None:
        check_duckdb_file(path, write=True)  # before the lock file is made beside it
        check_reader_wait()
    lock = lock_for(pipeline.destination, pipeline.dataset_name, Path(pipeline.pipelines_dir))
    try:
        with holding(lock, wait, on_wait), fenced(pipeline, lock):
            if path is not None:
                create_duckdb_file(path)  # under the lock: one process creates it
                ensure_duckdb_free(path)  # a BI tool may hold the file without our lock
            earlier = set(pipeline.list_completed_load_packages())
            try:
                yield
            except Exception:
                if lock.lost is not None:  # whatever failed, the cause is the lost lock
                    raise LockLost(lock.lost) from None
                raise
            prune_loaded_packages(pipeline, keep=set(
                pipeline.list_completed_load_packages()) - earlier)
    except (LockHeld, LockPathUnusable) as exc:
        raise UsageError(str(exc)) from None


def loader_file_format(pipeline: dlt.Pipeline) -> str | None:
    # DuckDB loads parquet far faster than insert_values; Delta tables are parquet; others
    # keep their own default
    return "parquet" if pipeline.destination.destination_name in ("duckdb", "filesystem") \
        else None
