"""Where the agency OAuth tokens live between runs: HighLevel refresh tokens are single-use, so
the one a refresh returns must outlive the process (api-notes: HighLevel OAuth).

A store holds one JSON document. `FileTokenStore` keeps it in a file (mode 0600, replaced
atomically and synced before the new access token is used); `locked()` serializes refreshes
across threads and processes, so two runs never spend the same refresh token.

A kill can fall between the new file's sync and its rename: the newest token then sits in
the complete temporary file. Every write numbers its document (`sequence`), and a read
adopts a complete temporary file numbered higher than the store's, so the next run refreshes
with the newest token instead of a spent one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from sources.common.config_checks import ConfigProblem, json_object


class TokenStore(Protocol):
    """A JSON document kept between runs, read and written under `locked()`."""

    description: str

    def locked(self) -> contextlib.AbstractContextManager[None]: ...

    def read(self) -> dict[str, Any]: ...

    def write(self, document: dict[str, Any]) -> None: ...


class FileTokenStore:
    """The document in a file only its owner can read."""

    def __init__(self, path: str | os.PathLike[str], key: str,
                 warnings: list[str] | None = None) -> None:
        self.path = Path(path).expanduser()
        self.key = key  # the configuration key that names the file, for messages
        self.description = f"token store file {self.path}"
        self.warnings = [] if warnings is None else warnings
        self._thread_lock = threading.RLock()
        self._depth = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """This process's threads, then other processes (an flock on `<file>.lock`)."""
        with self._thread_lock:
            if self._depth:  # already held by this thread
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            fd = self._open(self.path.with_name(self.path.name + ".lock"),
                            os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
            finally:
                os.close(fd)  # releases the flock

    def read(self) -> dict[str, Any]:
        """The document (under `locked()`), a newer complete temporary file adopted first."""
        self._adopt_newer_temporary()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigProblem(f"{self.key}: cannot read {self.path}: {exc.strerror}") from None
        self._tighten()
        damaged = (f"{self.key}: {self.path} is damaged ({{}}): the newest refresh token it "
                   "held is lost, and the one configured was spent long ago; have the agency "
                   "re-authorize the app, put its new refresh token in "
                   "SOURCES__HIGHLEVEL__OAUTH__REFRESH_TOKEN and delete this file")
        return json_object(text, damaged.format("not JSON"), damaged.format("not an object"))

    def _tighten(self) -> None:
        """A store readable by others (0644) is made 0600, with a warning."""
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.path, 0o600)
            self.warnings.append(f"{self.key}: {self.path} was readable by others (mode "
                                 f"{mode:o}); it holds refresh tokens: made 0600")

    def _temporaries(self) -> list[Path]:
        prefix = f".{self.path.name}."
        try:
            return [p for p in self.path.parent.iterdir() if p.name.startswith(prefix)
                    and not p.name.endswith(".lock") and p.is_file() and not p.is_symlink()]
        except OSError:
            return []

    def _adopt_newer_temporary(self) -> None:
        """Rename over the store the complete temporary file numbered highest, if above the
        store's number (a write killed before its rename); others are removed."""
        temporaries = self._temporaries()
        if not temporaries:
            return
        best, best_sequence = None, _sequence_of(self.path)
        for temporary in temporaries:
            if (number := _sequence_of(temporary)) is not None and (
                    best_sequence is None or number > best_sequence):
                best, best_sequence = temporary, number
        for temporary in temporaries:
            if temporary != best:
                with contextlib.suppress(OSError):
                    temporary.unlink()
        if best is not None:
            os.replace(best, self.path)
            _sync_folder(self.path.parent)

    def write(self, document: dict[str, Any]) -> None:
        """Replace the file atomically: a new file (0600), numbered one above the document it
        replaces, written and synced, renamed over the old one, the folder synced; a crash
        leaves the old document, the new, or the new complete beside it (adopted on read)."""
        document["sequence"] = _sequence(document.get("sequence")) + 1
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        except OSError as exc:
            raise ConfigProblem(f"{self.key}: cannot write in {folder}: {exc.strerror}") from None
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _sync_folder(folder)

    def _open(self, path: Path, flags: int) -> int:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, flags, 0o600)
        except OSError as exc:
            raise ConfigProblem(f"{self.key}: cannot open {path}: {exc.strerror}") from None


def _sequence(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sequence_of(path: Path) -> int | None:
    """The number of the complete document in `path`, None if it holds none."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return _sequence(document.get("sequence")) if isinstance(document, dict) else None


def _sync_folder(folder: Path) -> None:
    """The rename itself made durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
