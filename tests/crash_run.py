"""Test helper: `upload-status ARGS...` that kills itself with SIGKILL at a chosen point.

CRASH_AT=load-job:N kills just before the loader records the N-th finished job of a package
(the job's rows are in the destination, dlt's bookkeeping does not know it yet: the worst moment
for duplicates); CRASH_AT=package kills before a fully loaded package is marked as loaded.
Killing mid-extract needs no helper: the test kills the process while the simulator holds a
request.
"""

from __future__ import annotations

import os
import signal
import sys

from dlt.common.storages.load_package import PackageStorage

from pipelines.cli import app


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str) -> None:
    if point.startswith("load-job:"):
        target, calls = int(point.split(":")[1]), 0
        complete_job = PackageStorage.complete_job

        def counted(self: PackageStorage, load_id: str, file_name: str) -> str:
            nonlocal calls
            calls += 1
            if calls == target:
                _die()
            return complete_job(self, load_id, file_name)

        PackageStorage.complete_job = counted  # type: ignore[method-assign]
    elif point == "package":
        def killed(self: PackageStorage, load_id: str, load_state: str) -> str:
            _die()
            raise AssertionError("unreachable")

        PackageStorage.complete_loading_package = killed  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown CRASH_AT {point!r}")


if __name__ == "__main__":
    _arm(os.environ["CRASH_AT"])
    app(sys.argv[1:])
