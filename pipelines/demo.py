"""`upload-status demo`: the pipeline against the bundled simulator, into a local DuckDB file."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pendulum

from pipelines.cli import console, print_report, print_report_tables
from pipelines.environment import temporary_env
from pipelines.report import build_report, write_chart
from pipelines.runner import DEFAULT_DATASET, duckdb_destination, run_providers
from pipelines.track import track_jobs
from simulator import (
    ClearTaxFixture,
    HighLevelFixture,
    LobstrFixture,
    Simulator,
    UploadPostFixture,
)
from sources.common.tracking import observing_at

DEMO_DB = Path("upload_status_demo.duckdb")
DEMO_CHART = Path("upload_status_demo.png")
DEMO_PIPELINES_DIR = Path(".demo")
# imports per run and location: a busy store, a quieter one, and one that starts half-way
DEMO_LOCATIONS = {"loc_north_store": 12, "loc_south_store": 7, "loc_new_store": 5}
ENTITIES = ["te-mumbai-01", "te-pune-02", "te-delhi-03"]
MONTH_DAYS, RUN_EVERY_DAYS = 30, 3
DEMO_RATE_LIMIT = 1000  # HighLevel requests per location per 10 s, simulator and client
CONFIG_KEYS = {"upload_post": "SOURCES__UPLOAD_POST__REQUEST_IDS",
               "lobstr": "SOURCES__LOBSTR__UPLOAD_TASK_IDS",
               "cleartax": "SOURCES__CLEARTAX__ACTIVITIES"}


@dataclass
class Month:
    """The simulated APIs and the jobs submitted to them over a month."""

    start: datetime
    highlevel: HighLevelFixture = field(init=False)
    up: UploadPostFixture = field(init=False)
    lobstr: LobstrFixture = field(default_factory=LobstrFixture)
    cleartax: ClearTaxFixture = field(default_factory=ClearTaxFixture)

    def __post_init__(self) -> None:
        # a page cap below the requested limit, as real servers may impose; a month replayed in
        # seconds would spend most of them inside the documented 100-per-10-s limit, so the
        # simulator (and the client, below) allow more
        self.highlevel = HighLevelFixture(locations=dict.fromkeys(DEMO_LOCATIONS, 0), seed=2026,
                                          page_cap=40, now=self.start, rate_max=DEMO_RATE_LIMIT)
        self.up = UploadPostFixture(now=self.start, tick=timedelta(minutes=30))

    @property
    def fixtures(self) -> tuple[Any, ...]:
        return self.highlevel, self.up, self.lobstr, self.cleartax

    def submit(self, run: int, moment: datetime) -> dict[str, list[str]]:
        """Jobs created since the last run; returns the ids a user would `track`."""
        self.highlevel.now = moment
        for location, per_run in DEMO_LOCATIONS.items():
            if location != "loc_new_store" or moment >= self.start + timedelta(days=15):
                self.highlevel.add_imports(location, per_run, unfinished_share=0.5,
                                           spread_days=RUN_EVERY_DAYS)
        self.up.now = moment
        up_refs = self.up.generate(20, seed=run, days=RUN_EVERY_DAYS)
        # the async requests a user registers; scheduled jobs are found in the history listing
        return {"upload_post": [r for r in up_refs if r.startswith("request:")],
                "lobstr": self.lobstr.generate(15, seed=run),
                "cleartax": self.cleartax.generate(ENTITIES, 20, seed=run)}


def run_demo(fresh: bool = True) -> int:
    if fresh:
        DEMO_DB.unlink(missing_ok=True)
        shutil.rmtree(DEMO_PIPELINES_DIR, ignore_errors=True)
    today = datetime.now(timezone.utc).replace(hour=9, minute=0, second=0, microsecond=0)
    month = Month(start=today - timedelta(days=MONTH_DAYS))
    with Simulator(*month.fixtures) as sim, temporary_env({
        "SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
        "SOURCES__HIGHLEVEL__ACCESS_TOKEN": month.highlevel.token,
        "SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(list(DEMO_LOCATIONS)),
        "SOURCES__HIGHLEVEL__RATE_LIMIT_REQUESTS": str(DEMO_RATE_LIMIT),
        "SOURCES__UPLOAD_POST__BASE_URL": sim.base_url,
        "SOURCES__UPLOAD_POST__API_KEY": month.up.token,
        "SOURCES__LOBSTR__BASE_URL": sim.base_url,
        "SOURCES__LOBSTR__API_KEY": month.lobstr.token,
        "SOURCES__CLEARTAX__BASE_URL": sim.base_url,
        "SOURCES__CLEARTAX__AUTH_TOKEN": month.cleartax.token,
    }):
        console.print(f"Simulator of the four APIs listening on {sim.base_url}; replaying "
                      f"{MONTH_DAYS} days with a run every {RUN_EVERY_DAYS} days")
        pipeline = dlt.pipeline("upload_status_demo", destination=duckdb_destination(
            str(DEMO_DB)), dataset_name=DEFAULT_DATASET, pipelines_dir=str(DEMO_PIPELINES_DIR))
        exit_code = 0
        configured: dict[str, list[str]] = {name: [] for name in CONFIG_KEYS}
        days = range(RUN_EVERY_DAYS, MONTH_DAYS + 1, RUN_EVERY_DAYS)
        for run, day in enumerate(days, start=1):
            moment = month.start + timedelta(days=day)
            if run > 1:
                sim.advance()  # jobs submitted earlier move on
            with observing_at(pendulum.instance(moment)):
                for name, ids in month.submit(run, moment).items():
                    if run == 1:  # registered once with `track` ...
                        track_jobs(name, ids, pipeline=pipeline)
                    else:  # ... and later through configuration, which costs no extra load
                        configured[name] += [i.removeprefix("request:") for i in ids]
                with temporary_env({key: json.dumps(configured[name])
                           for name, key in CONFIG_KEYS.items()}):
                    report = run_providers(pipeline=pipeline)
            exit_code = max(exit_code, report.exit_code)
            if run in (1, len(days)):
                print_report(report, f"Run {run} of {len(days)} ({moment:%b %d})")
            else:
                console.print(f"Run {run} of {len(days)} ({moment:%b %d}): " + ", ".join(
                    f"{p.provider} {p.outcome}, {p.requests} requests, "
                    f"{p.counts['changed'] + p.counts['new']} changed"
                    for p in report.providers))
    rep = build_report(pipeline, since_days=MONTH_DAYS + 1, stuck_hours=72,
                       now=today + timedelta(hours=1))
    console.rule("upload-status report --since 31 --stuck-hours 72")
    print_report_tables(rep)
    write_chart(rep, DEMO_CHART)
    console.print(f"\nChart: {DEMO_CHART.resolve()}")
    console.print(f"DuckDB file: {DEMO_DB.resolve()} (dataset {DEFAULT_DATASET}); try "
                  f"DESTINATION__DUCKDB__CREDENTIALS={DEMO_DB} upload-status report")
    return exit_code
