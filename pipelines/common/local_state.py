"""Where dlt's local pipeline folder lives: one per destination + dataset.

dlt keys its local folder by pipeline name only, so every destination and dataset would share
one state: jobs tracked into one DuckDB file polled (and their state written) into another.
The folder is only a cache of the state dlt stores in the destination with every load: a new
or deleted folder is restored from there on the next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlt.common.destination import Destination
from dlt.common.pipeline import get_dlt_pipelines_dir


def resolved(destination: Destination) -> tuple[str, Any, Any]:
    """The destination's kind (`duckdb`, `postgres`, ...), its configuration and credentials,
    as dlt resolves them from config and secrets."""
    config = destination.configuration(destination.spec(), accept_partial=True)
    return destination.destination_type.rsplit(".", 1)[-1], config, config.credentials


def destination_identity(destination: Destination) -> str:
    """What tells one destination from another of its kind, without any secret: the DuckDB
    file, a server's host, port and database, else dlt's fingerprint of the configuration."""
    kind, config, credentials = resolved(destination)
    if kind == "duckdb" and isinstance(getattr(credentials, "database", None), str):
        return f"duckdb|{credentials.database}"
    host = getattr(credentials, "host", None)
    if host:
        return f"{kind}|{host}:{getattr(credentials, 'port', '')}/" \
               f"{getattr(credentials, 'database', '')}"
    return f"{kind}|{config.fingerprint()}"


def pipelines_dir_for(destination: Destination, dataset: str) -> str:
    """dlt's pipelines folder for `dataset` at `destination`: readable, and unique by a digest
    of the destination's identity (two DuckDB files of one name in two folders differ)."""
    identity = destination_identity(destination)
    digest = hashlib.sha256(f"{identity}|{dataset}".encode()).hexdigest()[:10]
    kind = identity.split("|", 1)[0]
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kind}-{dataset}")[:60]
    return str(Path(get_dlt_pipelines_dir()) / "upload_status_by_destination" / f"{slug}-{digest}")


@contextmanager
def created_alone(pipelines_dir: str, pipeline_name: str) -> Iterator[None]:
    """Hold the block while a pipeline is made in `pipelines_dir`. dlt makes a pipeline's
    folder anew, wiping it, when it finds no state there, so two first runs starting at once
    (Dagster's processes, two schedulers) wiped or failed each other; the second now waits
    until the first has written its state, and attaches to it."""
    folder = Path(pipelines_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f".{pipeline_name}.create.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # held for the making only: well under a second
        yield


def prune_loaded_packages(pipeline: Any, keep: set[str]) -> int:
    """Delete the pipeline's completed load packages (their job files and their copy of the
    state) except `keep` and any with a failed job, so the local folder does not grow with
    every run: dlt keeps each one for good, and nothing of ours reads them again (the state
    lives in the destination). Returns how many were deleted."""
    import shutil

    loaded = Path(pipeline.working_dir) / "load" / "loaded"
    deleted = 0
    for load_id in pipeline.list_completed_load_packages():
        if load_id in keep or pipeline.list_failed_jobs_in_package(load_id):
            continue
        shutil.rmtree(loaded / load_id, ignore_errors=True)
        deleted += 1
    return deleted
