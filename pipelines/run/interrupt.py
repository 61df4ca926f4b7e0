"""Stopping a run on SIGINT or SIGTERM within seconds, with nothing half-written.

The first signal raises `Interrupted` in the main thread (where Python runs signal handlers):
an extract in progress fails as on Ctrl-C (dlt then commits neither its data nor its state, so
the next run reads the same jobs again) and no further provider starts. During normalize and
load dlt's own handler is in place and stops at its next safe point, leaving the package for
the next run to finish; the runner reads that as the same interruption. A second signal ends
the process at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from dlt.common.exceptions import SignalReceivedException

from pipelines.common.errors import exception_chain
from sources.common import errors

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(errors.Interrupted):
    """SIGINT or SIGTERM arrived: a KeyboardInterrupt, so dlt unwinds a step as on Ctrl-C and
    no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 SIGINT, 143 SIGTERM

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def signal_in(exc: BaseException) -> int | None:
    """The signal that ended a dlt step, if one did (ours, or dlt's own handler's)."""
    for error in exception_chain(exc):
        if isinstance(error, Interrupted):
            return error.signum
        if isinstance(error, SignalReceivedException):
            return int(error.signal_code)
    return None


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """Turn the first SIGINT/SIGTERM inside the block into `Interrupted`; a no-op off the main
    thread (an Airflow worker's thread, say), where Python delivers no signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:  # asked twice: stop now
            os._exit(128 + signum)
        received.append(signum)
        raise Interrupted(signum)

    before = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, old in before.items():
            signal.signal(s, old)
