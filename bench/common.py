"""What every benchmark shares: the latency and concurrency measured against, and a run of
the project's own pipeline into a DuckDB file in a folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.pipeline.trace import load_trace

from pipelines.common.memory import StepBoundaries
from pipelines.destinations.destination import duckdb_destination
from pipelines.run.runner import run_providers
from simulator.process import SimProcess
from sources.lobstr.fixture import LobstrFixture

LATENCY = 0.020  # seconds per status request, as the issue measured against
CONCURRENCY = 16


@dataclass
class Run:
    wall: float
    extract: float
    requests: int
    outcome: str


def pipeline_in(folder: Path, name: str = "upload_status") -> dlt.Pipeline:
    """The pipeline `upload-status run` makes (its DuckDB settings), in `folder`."""
    return dlt.pipeline(name, destination=duckdb_destination(str(folder / "bench.duckdb")),
                        dataset_name="upload_status", pipelines_dir=str(folder / "pipelines"),
                        progress=StepBoundaries())


def step_seconds(pipeline: dlt.Pipeline, step: str) -> float:
    # the run's providers as the runner saved them (the last `pipeline.run` in memory may be
    # the dataset schema's load)
    trace = load_trace(pipeline.working_dir)
    spans = [s for s in trace.steps if s.step == step] if trace else []
    return sum((s.finished_at - s.started_at).total_seconds() for s in spans)


def ours(provider: str, folder: Path, full_refresh: bool = False) -> Run:
    pipeline = pipeline_in(folder)
    started = time.perf_counter()
    report = run_providers([provider], pipeline=pipeline, full_refresh=full_refresh)
    wall = time.perf_counter() - started
    stats = report.providers[0]
    return Run(wall, step_seconds(pipeline, "extract"), stats.requests, stats.outcome)


def task_id(i: int) -> str:
    return f"{i:032x}"


def lobstr_tasks(n: int, steps: tuple[str, ...] = ("PENDING", "SUCCESS")
                 ) -> Callable[[str], list[Any]]:
    """Builds (in the simulator's process) a Lobstr fixture with `n` tasks walking `steps`."""
    def build(token: str) -> list[Any]:
        fixture = LobstrFixture(token=token)
        for i in range(n):
            fixture.add(task_id(i), list(steps))
        return [fixture]

    return build


def lobstr_env(sim: SimProcess, jobs: int, **extra: str) -> dict[str, str]:
    return {"SOURCES__LOBSTR__BASE_URL": sim.base_url, "SOURCES__LOBSTR__API_KEY": sim.token,
            "SOURCES__LOBSTR__UPLOAD_TASK_IDS": "[" + ",".join(
                f'"{task_id(i)}"' for i in range(jobs)) + "]",
            # the simulator is not Lobstr: its documented 90/min would measure the wait
            "SOURCES__LOBSTR__RATE_LIMIT_REQUESTS": "0", **extra}
