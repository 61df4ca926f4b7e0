"""Fixed costs of the command (issue 20, goal 8): `--help`, a run with nothing to do and a
report, each in a fresh process as cron starts it, against Python importing requests and
DuckDB and opening the file (what any loader in Python pays)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import lobstr_env, lobstr_tasks
from simulator.process import SimProcess

ATTEMPTS = 5


def command() -> list[str]:
    """The installed `upload-status`, else the module."""
    script = Path(sys.executable).with_name("upload-status")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipelines"]


def best_seconds(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """The fastest of `ATTEMPTS` runs of `argv` in a process of its own (exit 0 required)."""
    times = []
    for _ in range(ATTEMPTS):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{argv}: exit {done.returncode}: {done.stderr[-2000:]}")
    return min(times)


def bench_startup(work: Path, goals: list[str]) -> None:
    folder = work / "startup"
    folder.mkdir()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SOURCES__", "DESTINATION__"))}
    with SimProcess(lobstr_tasks(1, ("SUCCESS",))) as sim:
        env = {**base, **lobstr_env(sim, 1), "DLT_DATA_DIR": str(folder / "dlt")}
        run = [*command(), "run", "--source", "lobstr"]
        first = subprocess.run(run, cwd=folder, env=env, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr
        no_op = best_seconds(run, folder, env)
        report = best_seconds([*command(), "report"], folder, env)
        helped = best_seconds([*command(), "--help"], folder, env)
    floor = best_seconds([sys.executable, "-c", "import requests, duckdb; "
                          "duckdb.connect('upload_status_data.duckdb').close()"], folder, env)
    python = best_seconds([sys.executable, "-c", "pass"], folder, env)
    goals.append(f"| 8 | `upload-status run` with nothing to do (one finished job), fresh "
                 f"process, best of {ATTEMPTS} | {no_op:.2f} s | Python importing requests + "
                 f"duckdb and opening the file {floor:.2f} s | {no_op / floor:.1f}x "
                 f"(goal: within 1.2 s) |")
    goals.append(f"| 8 | `upload-status --help`, best of {ATTEMPTS} | {helped:.2f} s | "
                 f"`python -c pass` {python:.2f} s | goal: within 0.5 s |")
    goals.append(f"| 8 | `upload-status report` over that file, best of {ATTEMPTS} | "
                 f"{report:.2f} s | the same floor {floor:.2f} s | {report / floor:.1f}x |")
