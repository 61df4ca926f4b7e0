"""Where the agency OAuth tokens live between runs: HighLevel refresh tokens are single-use, so
the one a refresh returns must outlive the process (api-notes: HighLevel OAuth).

A store holds one JSON document. `FileTokenStore` keeps it in a file (mode 0600, replaced
atomically and synced before the new access token is used); `locked()` serializes refreshes
across threads and processes, so two runs never spend the same refresh token.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
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

    def __init__(self, path: str | os.PathLike[str], key: str) -> None:
        self.path = Path(path).expanduser()
        self.key = key  # the configuration key that names the file, for messages
        self.description = f"token store file {self.path}"
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
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigProblem(f"{self.key}: cannot read {self.path}: {exc.strerror}") from None
        return json_object(text, f"{self.key}: {self.path} is not a token store (not JSON); "
                           "move it away and run again",
                           f"{self.key}: {self.path} is not a token store")

    def write(self, document: dict[str, Any]) -> None:
        """Replace the file atomically: a new file (0600) written and synced, renamed over the
        old one, the folder synced; a crash leaves the old document or the new, never half."""
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
