"""Finished jobs kept compact (issue 20, goal 11): a run over 100,000 tracked Lobstr jobs of
which 99,000 finished, against a run over the same 1,000 unfinished ones tracked alone; each
in a fresh process as cron starts it (wall time and peak memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.common import ours, pipeline_in, task_id
from pipelines.commands.track import track_jobs
from pipelines.run.environment import temporary_env
from simulator.process import SimProcess
from sources.lobstr.fixture import LobstrFixture

TRACKED, UNFINISHED = 100_000, 1_000


def tasks(finished: int, unfinished: int) -> Callable[[str], list[LobstrFixture]]:
    """`unfinished` tasks that stay PENDING, then `finished` ones that succeed."""
    def build(token: str) -> list[LobstrFixture]:
        fixture = LobstrFixture(token=token)
        for i in range(unfinished):
            fixture.add(task_id(i), ["PENDING"])
        for i in range(unfinished, unfinished + finished):
            fixture.add(task_id(i), ["SUCCESS"])
        return [fixture]

    return build


def _state_bytes(folder: Path) -> int:
    state = next((folder / "pipelines").rglob("state.json"), None)
    return state.stat().st_size if state else 0


def tracked_run(work: Path, name: str, finished: int) -> tuple[float, float, int]:
    """Track UNFINISHED + `finished` jobs, load them once, then time a run in a fresh process:
    (seconds, peak RSS in MB, bytes of the local state)."""
    folder = work / name
    with SimProcess(tasks(finished, UNFINISHED)) as sim:
        env = {"SOURCES__LOBSTR__BASE_URL": sim.base_url, "SOURCES__LOBSTR__API_KEY": sim.token,
               "SOURCES__LOBSTR__RATE_LIMIT_REQUESTS": "0"}
        with temporary_env(env):
            ids = [task_id(i) for i in range(UNFINISHED + finished)]
            track_jobs("lobstr", ids, pipeline=pipeline_in(folder))
            first = ours("lobstr", folder)
            assert first.outcome == "loaded", first
        script = (
            "import json, time\n"
            "from bench.common import ours\n"
            "from pathlib import Path\n"
            "started = time.perf_counter()\n"
            f"run = ours('lobstr', Path({str(folder)!r}))\n"
            "from bench.run import peak_rss_mb\n"
            "print(json.dumps([time.perf_counter() - started, run.requests, peak_rss_mb()]))\n")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={**os.environ, **env}, check=True)
    seconds, requests, rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert requests == UNFINISHED, requests
    return seconds, rss, _state_bytes(folder)


def bench_tracked(work: Path, goals: list[str]) -> None:
    many = tracked_run(work, "tracked_100k", TRACKED - UNFINISHED)
    few = tracked_run(work, "tracked_1k", 0)
    goals.append(
        f"| 11 | run over {TRACKED:,} tracked Lobstr jobs, {TRACKED - UNFINISHED:,} finished "
        f"({UNFINISHED:,} polled, fresh process) | {many[0]:.2f} s, {many[1]:.0f} MB peak, "
        f"state {many[2] / 1e6:.2f} MB | the {UNFINISHED:,} unfinished tracked alone: "
        f"{few[0]:.2f} s, {few[1]:.0f} MB, state {few[2] / 1e6:.2f} MB | "
        f"{many[0] / few[0]:.2f}x the time, {many[1] / few[1]:.2f}x the memory |")
