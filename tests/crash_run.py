"""Test helper: `upload-status ARGS...` that kills itself with SIGKILL at a chosen point.

CRASH_AT=load-job:N kills when the N-th load job of the run has committed its rows in the
destination, before dlt writes down that it did (its pending transition): the worst moment for
duplicates, since dlt runs that job again on resume. CRASH_AT=package kills before a fully
loaded package is marked as loaded. CRASH_AT=refresh:send|synced|renamed kills at a step of an
agency OAuth refresh: before its request is sent, when the store's new file is written and
synced but not yet renamed over the old one, right after the rename.
Killing mid-extract needs no helper: the test kills the process while the simulator holds a
request.
"""

from __future__ import annotations

import os
import signal
import sys

from dlt.common.storages.load_package import PackageStorage

from pipelines.commands.cli import app


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str) -> None:
    if point.startswith("load-job:"):
        target, calls = int(point.split(":")[1]), 0
        save = PackageStorage.save_pending_transition

        def counted(self: PackageStorage, load_id: str, file_name: str, state: str,
                    failed_message: str | None = None) -> None:
            nonlocal calls
            calls += 1
            if calls == target:
                _die()
            save(self, load_id, file_name, state, failed_message)

        PackageStorage.save_pending_transition = counted  # type: ignore[method-assign]
    elif point == "package":
        def killed(self: PackageStorage, load_id: str, load_state: str) -> str:
            _die()
            raise AssertionError("unreachable")

        PackageStorage.complete_loading_package = killed  # type: ignore[method-assign]
    elif point.startswith("refresh:"):
        _arm_refresh(point.split(":", 1)[1])
    else:
        raise SystemExit(f"unknown CRASH_AT {point!r}")


def _arm_refresh(step: str) -> None:
    from sources.highlevel import token_store
    from sources.highlevel.oauth import AgencyTokens

    if step == "send":
        send = AgencyTokens._send

        def killed_before(self: AgencyTokens, method: str, path: str, **kwargs: object) -> dict:
            if path == "oauth/token":
                _die()
            return send(self, method, path, **kwargs)  # type: ignore[arg-type]

        AgencyTokens._send = killed_before  # type: ignore[method-assign]
        return
    replace = os.replace

    class _Os:  # the store module's `os`, its rename watched
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def replace(source: str, target: str) -> None:
            if step == "synced":
                _die()
            replace(source, target)
            if step == "renamed":
                _die()

    token_store.os = _Os()  # type: ignore[attr-defined]


if __name__ == "__main__":
    _arm(os.environ["CRASH_AT"])
    app(sys.argv[1:])
