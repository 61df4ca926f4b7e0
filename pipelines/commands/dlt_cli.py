"""`upload-status dlt ...`: dlt's own `dlt pipeline` command on this project's pipeline, which
lives in a folder of its own per destination + dataset (`local_state`) and loads a DuckDB file
dlt would not guess (`upload_status_data.duckdb`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.common.usage import UsageError
from pipelines.destinations.destination import PIPELINE_NAME, duckdb_file, make_pipeline


def dlt_command(args: Sequence[str]) -> list[str]:
    """The `dlt` executable of this environment, with `args`."""
    beside = Path(sys.executable).with_name("dlt")
    found = str(beside) if beside.exists() else shutil.which("dlt")
    if found is None:
        raise UsageError("dlt's command line is not installed in this environment")
    return [found, *args]


# dlt's own flags, which go before its command: `upload-status dlt -y drop-pending-packages`
# is `dlt -y pipeline ... drop-pending-packages`
DLT_GLOBAL_FLAGS = frozenset({"-y", "--yes", "--non-interactive", "-v", "-vv", "-vvv",
                              "--verbose", "--no-pwd", "--disable-telemetry"})


def split_global_flags(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """dlt's global flags among `args`, and the rest in order."""
    flags = [a for a in args if a in DLT_GLOBAL_FLAGS]
    return flags, [a for a in args if a not in DLT_GLOBAL_FLAGS]


def run_dlt_pipeline(args: Sequence[str], destination: str | None, dataset: str | None) -> int:
    """Run `dlt [flags] pipeline --pipelines-dir <ours> upload_status <args>` and return its
    exit code; a DuckDB destination's file is passed as dlt's credentials."""
    pipeline = make_pipeline(destination, dataset)
    env = dict(os.environ)
    if (path := duckdb_file(pipeline)) is not None:
        env["DESTINATION__DUCKDB__CREDENTIALS"] = str(Path(path).resolve())
    env.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    flags, rest = split_global_flags(args)
    command = dlt_command([*flags, "pipeline", "--pipelines-dir", pipeline.pipelines_dir,
                           PIPELINE_NAME, *rest])
    return subprocess.run(command, env=env).returncode
