"""Never wedged: a load package that fails for a reason that will not go away is set aside.

dlt keeps a package whose load failed pending and loads it first in every later run, so one
package the destination refuses for good (a NUL character on Postgres, a job that failed all its
retries) would fail every provider of every run. Such a package is copied to `set_aside/` beside
dlt's folder (kept for inspection, with the reason) and aborted with dlt's `abort_packages`,
which also rolls the local state back to where the package started: the next run therefore
observes again every change the package held and records it then, so nothing is lost. A
transient failure (the destination unreachable) stays pending and is retried by the next run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dlt
from dlt.common.exceptions import TerminalException
from dlt.destinations.exceptions import DestinationConnectionError
from dlt.load.exceptions import LoadClientJobRetry
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.common.errors import exception_chain, redact
from pipelines.destinations.dlt_private import normalized_packages
from pipelines.run.orphans import drop_rows_of

REASON_FILE = "SET_ASIDE.json"


@dataclass(frozen=True)
class SetAside:
    load_id: str
    path: str  # where the package is kept
    reason: str


def is_permanent(exc: BaseException) -> bool:
    """Whether a failed load will fail the same way again: dlt calls the error terminal (a job
    the destination refused), or a job failed all of dlt's retries in this run (dlt calls
    that transient and would retry it in every later run: a NUL character Postgres refuses,
    DuckDB out of memory) for a reason that passes by itself (`_PASSING`)."""
    chain = list(exception_chain(exc))
    if any(isinstance(e, TerminalException) for e in chain):
        return True
    if not any(isinstance(e, LoadClientJobRetry) for e in chain):
        return False  # e.g. the destination unreachable: retried by the next run
    root = chain[-1]
    passing = isinstance(root, ConnectionError | TimeoutError | DestinationConnectionError
                         ) or any(word in f"{type(root).__name__} {root}".lower()
                                  for word in _PASSING)
    return not passing


# what a later run meets no more: the destination unreachable or its connection dropped, its
# disk full, a reader holding the DuckDB file (SQLite: another writer)
_PASSING = ("connect", "timeout", "timed out", "no space left", "disk is full",
            "disk full", "could not set lock", "conflicting lock", "database is locked",
            "server closed the connection", "terminating connection")


def set_aside_folder(pipeline: dlt.Pipeline) -> Path:
    return Path(pipeline.pipelines_dir) / "set_aside"


def set_aside(pipeline: dlt.Pipeline, exc: PipelineStepFailed,
              secrets: Iterable[str | None] = ()) -> SetAside | None:
    """Set aside the package a load failed on if the failure is permanent; None otherwise
    (nothing pending, a transient failure, no package named)."""
    load_id = exc.load_id
    if (exc.step != "load" or not load_id or not is_permanent(exc)
            or load_id not in pipeline.list_normalized_load_packages()):
        return None
    return keep_and_abort(pipeline, load_id, redact(root_message(exc), secrets))


def keep_and_abort(pipeline: dlt.Pipeline, load_id: str, reason: str) -> SetAside:
    """Copy the pending package to `set_aside/` with `reason` and abort it (the local state
    rolls back to where it started)."""
    packages = normalized_packages(pipeline)
    target = set_aside_folder(pipeline) / load_id
    shutil.copytree(packages.storage.make_full_path(packages.get_package_path(load_id)),
                    target, dirs_exist_ok=True)
    (target / REASON_FILE).write_text(json.dumps({
        "load_id": load_id, "set_aside_at": datetime.now(timezone.utc).isoformat(),
        "destination": pipeline.destination.destination_name,
        "dataset": pipeline.dataset_name, "reason": reason}, indent=2), encoding="utf-8")
    # rolls the local state back as well; dlt reports the aborted package as a failed load
    with suppress(PipelineStepFailed):
        pipeline.abort_packages(load_id=load_id)
    with suppress(Exception):  # best effort: the destination may be what refused it
        drop_rows_of(pipeline, load_id)
    return SetAside(load_id, str(target), reason)


def root_message(exc: BaseException) -> str:
    """The innermost error's first line: what the destination said."""
    root = list(exception_chain(exc))[-1]
    text = str(root).strip().splitlines()
    return f"{type(root).__name__}: {text[0] if text else ''}"[:500]
