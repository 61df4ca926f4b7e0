"""One writer per destination + dataset: the run lock that `run`, `track` and `highlevel-prune`
hold from their first read of the state to their last write (views included).

- DuckDB file: an exclusive `flock` on `<file>.lock` beside it (the file has one writer anyway);
- Postgres: a session advisory lock keyed by the dataset, so runs on two machines exclude each
  other; the holder is named through the lock session's `application_name`;
- any other destination: a `flock` in the local state folder, which excludes runs on this
  machine only (the destination offers no lock dlt can reach).

Every kind is released by the operating system or the server when its process dies (SIGKILL
included): a lock is never left behind. A lock can still be lost while held (the Postgres
session ended by the server, the lock file deleted): `check` finds that, and
`pipelines.destinations.fence` makes every commit of the run check it, so a run that lost its
lock writes nothing more.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from dlt.common.destination import Destination

from pipelines.common.errors import redact
from pipelines.common.local_state import resolved
from sources.common.errors import ConfigurationError, DestinationError, UploadStatusError

# pg_try_advisory_lock(int4, int4): this class id ("US") and the dataset's CRC-32 (31 bits);
# the fence (`PostgresLock.fence`) uses the next class id with the same key
_PG_CLASS_ID = 0x5553
_PG_FENCE_ID = 0x5554
_POLL_SECONDS = 0.5
# a query on the lock's session this often: proxies and idle timeouts see it in use
HEARTBEAT_SECONDS = 20.0
# how long a new holder waits for the commits a lost holder had begun (`_barrier`)
_BARRIER_TIMEOUT = "60s"


class LockHeld(UploadStatusError):
    """Another process holds the lock; the message names it (host, PID, since when)."""


class LockUnavailable(DestinationError):
    """The lock could not be asked for (the destination is unreachable); no secret in it."""


class LockLost(LockUnavailable):
    """The lock ended while the run held it: the run stops and writes nothing more."""


class LockPathUnusable(ConfigurationError):
    """The lock path is no regular file this run may create or use (a symlink, a folder)."""


def _holder_text(host: str | None, pid: Any, since: str | None) -> str:
    return f"host {host or 'unknown'}, PID {pid or 'unknown'}, since {since or 'unknown'}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class FileLock:
    """An exclusive `flock` on `path`, which holds the holder's host, PID and start time.

    The file is opened without following a symlink and only if it is a regular file: a
    link planted there would have the run truncate its target."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._file: IO[str] | None = None
        self.lost: str | None = None  # why, once a commit found the lock gone

    def _open(self) -> IO[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
        except OSError as exc:
            why = {errno.ELOOP: "a symbolic link", errno.EISDIR: "a folder"}.get(
                exc.errno, exc.strerror or str(exc))
            raise LockPathUnusable(self._unusable(why)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockPathUnusable(self._unusable("not a regular file"))
        return os.fdopen(fd, "r+", encoding="utf-8")

    def _unusable(self, why: str) -> str:
        return (f"the run lock {self.path} is unusable ({why}): it must be a regular file the "
                "run creates; remove what is there (no run is using it) and run again")

    def try_acquire(self) -> str | None:
        """None when taken, else who holds it."""
        handle = self._open()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read()
            handle.close()
            try:
                held = json.loads(text)
            except ValueError:
                held = {}
            held = held if isinstance(held, dict) else {}
            return _holder_text(held.get("host"), held.get("pid"), held.get("since"))
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": _now()}))
        handle.flush()
        self._file = handle
        return None

    def check(self) -> None:
        """LockLost when the lock file was deleted or replaced: a second run could lock the new
        file while this one holds the old."""
        if self._file is None:
            raise LockLost(f"lost the run lock on {self.what}: it was released")
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except OSError:
            now = None
        held = os.fstat(self._file.fileno())
        if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            self.lost = (f"lost the run lock on {self.what}: {self.path} was deleted or "
                         "replaced while the run held it; the run stopped and wrote nothing more")
            raise LockLost(self.lost)

    def fence(self, connection: Any) -> None:
        """Before a commit: the lock file is still the one this run locked."""
        self.check()

    def release(self) -> None:
        if self._file is not None:
            with suppress(OSError):
                self._file.truncate(0)
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


class PostgresLock:
    """`pg_try_advisory_lock` on a connection of its own, held until release.

    The session is kept alive: TCP keepalives, its own `idle_session_timeout` off, and a
    heartbeat query every `HEARTBEAT_SECONDS` (a proxy's idle cut). Server settings that still
    end it (pg_terminate_backend, a failover, a restart) are found by `check` and by the fence
    every commit passes (`fence`)."""

    def __init__(self, credentials: Any, dataset: str) -> None:
        self.credentials = credentials
        self.dataset = dataset
        self.what = (f"dataset {dataset} on postgres {credentials.host}:{credentials.port}/"
                     f"{credentials.database}")
        key = zlib.crc32(dataset.encode()) & 0x7FFFFFFF
        self.key, self.fence_key = (_PG_CLASS_ID, key), (_PG_FENCE_ID, key)
        self._con: Any = None
        self._pid: int | None = None  # the lock session's backend, once held
        self._use = threading.Lock()  # the heartbeat and the run share the connection
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.lost: str | None = None  # why, once a commit found the lock gone

    def _secrets(self) -> list[str | None]:
        return [getattr(self.credentials, "password", None)]

    def _connect(self) -> Any:
        import psycopg2

        name = f"upload-status pid {os.getpid()} on {socket.gethostname()}"[:63]
        try:
            con = psycopg2.connect(self.credentials.to_native_representation(),
                                   application_name=name, connect_timeout=30, keepalives=1,
                                   keepalives_idle=30, keepalives_interval=10,
                                   keepalives_count=3)
            con.autocommit = True
            with con.cursor() as cur, suppress(psycopg2.Error):
                cur.execute("SET idle_session_timeout = 0")  # PostgreSQL 14 and later
            return con
        except psycopg2.Error as exc:
            why = redact(str(exc).strip(), self._secrets())
            raise LockUnavailable(f"cannot take the run lock on {self.what}: {why}") from None

    def try_acquire(self) -> str | None:
        con = self._con or self._connect()
        with con.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s), pg_backend_pid()", self.key)
            taken, pid = cur.fetchone()
            if taken:
                self._con, self._pid = con, pid
                self._barrier(cur)
                self._start_heartbeat()
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

    def _barrier(self, cur: Any) -> None:
        """Wait for the commits a lost holder began while it still held the lock: each takes
        the fence key shared (`fence`), so taking it exclusively once waits for them, and
        any it begins later finds the lock gone and fails."""
        import psycopg2

        cur.execute(f"SET lock_timeout = '{_BARRIER_TIMEOUT}'")
        try:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", self.fence_key)
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", self.fence_key)
            cur.execute("RESET lock_timeout")
        except psycopg2.Error:
            self.release()
            raise LockUnavailable(
                f"cannot take the run lock on {self.what}: a run that lost it still has a "
                f"commit in flight after {_BARRIER_TIMEOUT}; try again") from None

    def fence(self, connection: Any) -> None:
        """Run inside a commit's transaction on `connection`, just before it commits:
        LockLost unless this lock's session still holds the lock (see `_barrier`)."""
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", self.fence_key)
            cur.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                "classid = %s AND objid = %s AND objsubid = 2 AND pid = %s",
                (*self.key, self._pid))
            if not cur.fetchone()[0]:
                self.lost = self._lost("its session ended (terminated by the server, a "
                                       "restart or a failover)")
                raise LockLost(self.lost)

    def _lost(self, why: str) -> str:
        return (f"lost the run lock on {self.what}: {why}; the run stopped and wrote nothing "
                "more, another run may hold it now")

    def check(self) -> None:
        """LockLost unless the lock's session is alive and holds the lock."""
        import psycopg2

        if self._con is None or self._pid is None:
            raise LockLost(self._lost("it was released"))
        try:
            with self._use, self._con.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                            "granted AND classid = %s AND objid = %s AND objsubid = 2 AND "
                            "pid = pg_backend_pid()", self.key)
                held = cur.fetchone()[0]
        except psycopg2.Error as exc:
            raise LockLost(self._lost(f"its session ended ({type(exc).__name__})")) from None
        if not held:
            raise LockLost(self._lost("the server no longer holds it"))

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="run-lock-heartbeat",
                                           daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with suppress(Exception), self._use, self._con.cursor() as cur:
                cur.execute("SELECT 1")  # a dead session is found by `check` and the fence

    def release(self) -> None:
        """Unlock explicitly (a second run in this process must not meet this lock on a
        pooled or lingering session), then close the session."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(5)
            self._heartbeat = None
        if self._con is not None:
            with suppress(Exception), self._use, self._con.cursor() as cur:
                if self._pid is not None:
                    cur.execute("SELECT pg_advisory_unlock(%s, %s)", self.key)
            with suppress(Exception):
                self._con.close()
            self._con, self._pid = None, None


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
