"""Every line the process writes or logs, scrubbed of the run's credentials (`redaction`): the
last line of defence behind redaction where messages are made."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, TextIO

from sources.common.redaction import redact


class RedactingStream:
    """A text stream that writes through `redact` (a credential split over two writes is
    not caught here; every writer of this tool writes whole lines). A reader that went away
    (`| head`) ends the output quietly: the command goes on to its own exit code (click
    would exit 1 on the broken pipe, which reads as a failed run)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(redact(text))
        except BrokenPipeError:
            self._reader_gone()
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        """Point the stream's file at /dev/null: later writes and the flush at exit succeed."""
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self._stream, name)


def _redacting_records() -> None:
    make = logging.getLogRecordFactory()
    if getattr(make, "redacting", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = make(*args, **kwargs)
        with contextlib.suppress(Exception):  # a malformed log call keeps its own error
            made.msg, made.args = redact(made.getMessage()), ()
        return made

    record.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)


def install() -> None:
    """Scrub stdout, stderr and log records from here on (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            wrapped = RedactingStream(stream)
            setattr(sys, name, wrapped)
            for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                for handler in getattr(logger, "handlers", []):
                    if getattr(handler, "stream", None) is stream:
                        handler.stream = wrapped
    _redacting_records()
