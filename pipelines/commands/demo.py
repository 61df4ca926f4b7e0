"""`upload-status demo`: the pipeline against the bundled simulator, into a local DuckDB file.

Every registered provider takes part with its scenario (`sources/<provider>/demo.py`, or the
generic one of a declared provider): a month replayed with a run every three days."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pendulum

from pipelines.analytics.chart import write_chart
from pipelines.analytics.report import build_report
from pipelines.commands.render import console, print_report, print_report_tables
from pipelines.commands.track import track_jobs
from pipelines.destinations.destination import DEFAULT_DATASET, duckdb_destination
from pipelines.run.environment import temporary_env
from pipelines.run.runner import RunReport, run_providers
from simulator import Simulator
from sources import providers
from sources.common.status import TERMINAL
from sources.common.tracking import observing_at

DEMO_DB = Path("upload_status_demo.duckdb")
DEMO_CHART = Path("upload_status_demo.png")
DEMO_PIPELINES_DIR = Path(".demo")
MONTH_DAYS, RUN_EVERY_DAYS = 30, 3
GENERATION_SEEDS = 1000  # seeds of the runs of one demo: a kept demo's start past them
GENERATION_FILE = DEMO_PIPELINES_DIR / "generation"


def _demo_pipeline() -> dlt.Pipeline:
    return dlt.pipeline("upload_status_demo", destination=duckdb_destination(str(DEMO_DB)),
                        dataset_name=DEFAULT_DATASET, pipelines_dir=str(DEMO_PIPELINES_DIR))


def _one_run(pipeline: dlt.Pipeline, scenarios: dict[str, Any], followed: dict[str, list[str]],
             run: int, moment: datetime, generation: int = 0) -> RunReport:
    """Jobs submitted since the last run, then the run: the first run's jobs are registered
    with `track`, later ones through configuration (which costs no load of its own). A kept
    demo's `generation` makes other jobs than the earlier demo's (their ids are seeded)."""
    with observing_at(pendulum.instance(moment)):
        for name, scenario in scenarios.items():
            refs = scenario.submit(run + GENERATION_SEEDS * generation, moment)
            if run == 1 and refs:
                track_jobs(name, refs, pipeline=pipeline)
            else:
                followed[name] += refs
        config = {k: v for name, scenario in scenarios.items()
                  for k, v in scenario.config(followed[name]).items()}
        with temporary_env(config):
            return run_providers(pipeline=pipeline)


def _next_generation(fresh: bool) -> int:
    """How many demos this database held before this one (0 when fresh), counted on disk."""
    previous = 0
    if not fresh and DEMO_DB.exists() and GENERATION_FILE.exists():
        previous = int(GENERATION_FILE.read_text().strip() or 0) + 1
    elif not fresh and DEMO_DB.exists():
        previous = 1
    DEMO_PIPELINES_DIR.mkdir(exist_ok=True)
    GENERATION_FILE.write_text(str(previous))
    return previous


def _untrack_previous(pipeline: dlt.Pipeline, scenarios: dict[str, Any]) -> None:
    """`--keep`: the jobs an earlier demo left unfinished lived in its simulator, which is
    gone; they are untracked (their history stays) instead of turning `not_found`."""
    from pipelines.commands.track import untrack_jobs
    from sources.common.polled_provider import PolledProvider

    packages = providers()
    for name in scenarios:
        if not isinstance(packages[name].provider, PolledProvider):
            continue
        state = pipeline.state.get("sources", {}).get(name, {})
        pairs = state.get("job_statuses", [])
        left = [ref for ref, code in state.get("jobs", {}).items()
                if code is None or pairs[code][1] not in TERMINAL]
        if left:
            untrack_jobs(name, left, pipeline=pipeline)
            console.print(f"{name}: {len(left)} unfinished job(s) of the earlier demo untracked "
                          "(its simulator is gone)")


def command_name() -> str:
    """How to call this command from the current folder: its name when that is on PATH (an
    activated virtualenv, an install), else its path (`make demo` runs .venv/bin's)."""
    import os
    import sys

    called = Path(sys.argv[0])
    found = shutil.which("upload-status")
    if called.name != "upload-status" or (found and Path(found).resolve() == called.resolve()):
        return "upload-status"
    return os.path.relpath(called) if called.is_absolute() else str(called)


def run_demo(fresh: bool = True, days: int = MONTH_DAYS) -> int:
    if fresh:
        DEMO_DB.unlink(missing_ok=True)
        shutil.rmtree(DEMO_PIPELINES_DIR, ignore_errors=True)
    today = datetime.now(timezone.utc).replace(hour=9, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days)
    scenarios = {name: scenario for name, package in providers().items()
                 if (scenario := package.scenario(start)) is not None}
    with Simulator(*(s.fixture for s in scenarios.values())) as sim, temporary_env(
            {k: v for s in scenarios.values() for k, v in s.env(sim.base_url).items()}):
        console.print(f"Simulator of {len(scenarios)} APIs ({', '.join(scenarios)}) listening "
                      f"on {sim.base_url}; replaying {days} days with a run every "
                      f"{RUN_EVERY_DAYS} days")
        pipeline = _demo_pipeline()
        generation = _next_generation(fresh)
        if generation:
            _untrack_previous(pipeline, scenarios)
            for scenario in scenarios.values():
                if (reseed := getattr(scenario, "reseed", None)) is not None:
                    reseed(generation)
        exit_code = 0
        followed: dict[str, list[str]] = {name: [] for name in scenarios}
        run_days = range(RUN_EVERY_DAYS, days + 1, RUN_EVERY_DAYS)
        for run, day in enumerate(run_days, start=1):
            moment = start + timedelta(days=day)
            if run > 1:
                sim.advance()  # jobs submitted earlier move on
            report = _one_run(pipeline, scenarios, followed, run, moment, generation)
            exit_code = max(exit_code, report.exit_code)
            if run in (1, len(run_days)):
                print_report(report, f"Run {run} of {len(run_days)} ({moment:%b %d})")
            else:
                console.print(f"Run {run} of {len(run_days)} ({moment:%b %d}): " + ", ".join(
                    f"{p.provider} {p.outcome}, {p.requests} requests, "
                    f"{p.counts['changed'] + p.counts['new']} changed"
                    for p in report.providers))
    rep = build_report(pipeline, since_days=days + 1, stuck_hours=72,
                       now=today + timedelta(hours=1))
    console.rule(f"upload-status report --since {days + 1} --stuck-hours 72")
    print_report_tables(rep)
    write_chart(rep, DEMO_CHART)
    console.print(f"\nChart: {DEMO_CHART.resolve()}")
    console.print(f"DuckDB file: {DEMO_DB.resolve()} (dataset {DEFAULT_DATASET}); try "
                  f"DESTINATION__DUCKDB__CREDENTIALS={DEMO_DB} {command_name()} report")
    return exit_code
