"""Every commit of a run passes its run lock's fence: a run that lost its lock writes nothing.

dlt commits each load job (and each merge) in a transaction through its SQL client's
`commit_transaction`, and offers no hook there, so the client class of the run's destination
gets one: just before committing, the transaction asks the lock (`run_lock`) whether this run
still holds it, on Postgres inside the transaction itself so a second holder waits for it or
finds it refused. Runs are found by their dataset (and its staging dataset).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import dlt
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.destinations.sql_client import SqlClientBase

from pipelines.destinations.dlt_private import wrap_method
from pipelines.destinations.run_lock import LockLost
from sources.common.unfenced import is_unfenced


class Fenced(Protocol):
    lost: str | None

    def fence(self, connection: Any) -> None: ...

    def check(self) -> None: ...


_FENCES: dict[str, Fenced] = {}  # dataset -> the lock of the run writing it in this process
_GUARD = threading.Lock()


class FenceRefused(DestinationTerminalException):
    """A commit refused because the run lost its lock: terminal, so dlt does not retry it."""


def _fenced_commit(original: Any) -> Any:
    def commit_transaction(self: SqlClientBase[Any]) -> None:
        lock = None if is_unfenced() else _FENCES.get(self.dataset_name)
        if lock is not None:
            try:
                lock.fence(self.native_connection)
            except LockLost as exc:
                raise FenceRefused(str(exc)) from None
        original(self)

    return commit_transaction


@contextmanager
def fenced(pipeline: dlt.Pipeline, lock: Fenced) -> Iterator[None]:
    """Every commit into the pipeline's dataset (and staging) checks `lock` during the block."""
    cls = _client_class_cheap(pipeline)
    names = [pipeline.dataset_name, f"{pipeline.dataset_name}_staging"]
    with _GUARD:
        if cls is not None:
            wrap_method(cls, "commit_transaction", _fenced_commit)
        for name in names:
            _FENCES[name] = lock
    try:
        yield
    finally:
        with _GUARD:
            for name in names:
                if _FENCES.get(name) is lock:
                    del _FENCES[name]


def _client_class_cheap(pipeline: dlt.Pipeline) -> type | None:
    """The SQL client class of the pipeline's destination, without connecting."""
    try:
        client = pipeline.destination_client()
    except Exception:
        return None
    sql = getattr(client, "sql_client", None)
    return type(sql) if isinstance(sql, SqlClientBase) else None


def still_held(pipeline: dlt.Pipeline) -> None:
    """LockLost when the run writing `pipeline`'s dataset lost its lock (a commit found it
    gone, or it is gone now); nothing when no run of this process holds one."""
    lock = _FENCES.get(pipeline.dataset_name)
    if lock is None:
        return
    if lock.lost is not None:
        raise LockLost(lock.lost)
    lock.check()


def lost_reason(pipeline: dlt.Pipeline) -> str | None:
    """Why the run writing `pipeline`'s dataset lost its lock, if a commit found that."""
    lock = _FENCES.get(pipeline.dataset_name)
    return None if lock is None else lock.lost
