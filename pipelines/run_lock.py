"""One writer per destination + dataset: the run lock that `run`, `track` and `highlevel-prune`
hold from their first read of the state to their last write (views included).

- DuckDB file: an exclusive `flock` on `<file>.lock` beside it (the file has one writer anyway);
- Postgres: a session advisory lock keyed by the dataset, so runs on two machines exclude each
  other; the holder is named through the lock session's `application_name`;
- any other destination: a `flock` in the local state folder, which excludes runs on this
  machine only (the destination offers no lock dlt can reach).

Every kind is released by the operating system or the server when its process dies (SIGKILL
included): a lock is never left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from dlt.common.destination import Destination

from pipelines.errors import redact
from pipelines.local_state import resolved

# pg_try_advisory_lock(int4, int4): this class id ("US") and the dataset's CRC-32 (31 bits)
_PG_CLASS_ID = 0x5553
_POLL_SECONDS = 0.5


class LockHeld(Exception):
    """Another process holds the lock; the message names it (host, PID, since when)."""


class LockUnavailable(Exception):
    """The lock could not be asked for (the destination is unreachable); no secret in it."""


def _holder_text(host: str | None, pid: Any, since: str | None) -> str:
    return f"host {host or 'unknown'}, PID {pid or 'unknown'}, since {since or 'unknown'}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class FileLock:
    """An exclusive `flock` on `path`, which holds the holder's host, PID and start time."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._file: IO[str] | None = None

    def try_acquire(self) -> str | None:
        """None when taken, else who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held while locked)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read()
            handle.close()
            try:
                held = json.loads(text)
            except ValueError:
                held = {}
            return _holder_text(held.get("host"), held.get("pid"), held.get("since"))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": _now()}))
        handle.flush()
        self._file = handle
        return None

    def release(self) -> None:
        if self._file is not None:
            self._file.truncate(0)
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


class PostgresLock:
    """`pg_try_advisory_lock` on a connection of its own, held until release."""

    def __init__(self, credentials: Any, dataset: str) -> None:
        self.credentials = credentials
        self.dataset = dataset
        self.what = (f"dataset {dataset} on postgres {credentials.host}:{credentials.port}/"
                     f"{credentials.database}")
        self.key = (_PG_CLASS_ID, zlib.crc32(dataset.encode()) & 0x7FFFFFFF)
        self._con: Any = None

    def _connect(self) -> Any:
        import psycopg2

        name = f"upload-status pid {os.getpid()} on {socket.gethostname()}"[:63]
        try:
            return psycopg2.connect(self.credentials.to_native_representation(),
                                    application_name=name, connect_timeout=30)
        except psycopg2.Error as exc:
            secrets = [getattr(self.credentials, "password", None)]
            raise LockUnavailable(
                f"cannot take the run lock on {self.what}: {redact(str(exc).strip(), secrets)}"
            ) from None

    def try_acquire(self) -> str | None:
        con = self._con or self._connect()
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key)
            if cur.fetchone()[0]:
                self._con = con
                return None
            cur.execute(
                "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.classid = %s AND l.objid = %s AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())", self.key)
            row = cur.fetchone()
        self._con = con  # asked again while waiting
        if row is None:
            return "unknown (it was just released)"
        name, address, since = row
        parts = (name or "").split(" ")
        pid = parts[2] if len(parts) > 2 and parts[1] == "pid" else None
        host = parts[4] if len(parts) > 4 else address
        return _holder_text(host, pid, since.astimezone(timezone.utc).isoformat(
            timespec="seconds") if since else None)

    def release(self) -> None:
        if self._con is not None:
            self._con.close()  # the session ends: the server drops its advisory locks
            self._con = None


def lock_for(destination: Destination, dataset: str, state_dir: Path) -> FileLock | PostgresLock:
    """The lock that excludes other writers of `dataset` at `destination`."""
    kind, _, credentials = resolved(destination)
    if kind == "duckdb":
        path = getattr(credentials, "database", None)
        if isinstance(path, str) and path and "://" not in path and not path.startswith(
                (":", "md:")):
            return FileLock(Path(path + ".lock"), f"DuckDB file {path}")
    if kind == "postgres" and getattr(credentials, "host", None):
        return PostgresLock(credentials, dataset)
    return FileLock(state_dir / "run.lock",
                    f"dataset {dataset} on {kind} (a lock on this machine only)")


@contextmanager
def holding(lock: FileLock | PostgresLock, wait: float = 0,
            on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold `lock` for the block: LockHeld at once, or after `wait` seconds of trying."""
    deadline = time.monotonic() + max(wait, 0)
    told = False
    while (holder := lock.try_acquire()) is not None:
        if time.monotonic() >= deadline:
            lock.release()
            waited = f" after waiting {wait:g} s" if wait > 0 else ""
            raise LockHeld(
                f"another upload-status process is writing {lock.what} ({holder}){waited}. "
                "It excludes a second writer so no status change is recorded twice: try again "
                "when it ends, or pass --wait SECONDS to wait for it.")
        if on_wait is not None and not told:
            on_wait(f"waiting up to {wait:g} s for {lock.what}, held by {holder}")
            told = True
        time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        lock.release()
