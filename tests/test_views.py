"""The BI views on DuckDB and on a real Postgres server, checked against numbers computed here
from the simulator scenario's own data (never from the views or the code's status maps)."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pendulum
import pytest
from conftest import warehouse_at

from pipelines.run.runner import run_providers
from simulator import Simulator
from sources.cleartax.fixture import ClearTaxFixture
from sources.common.tracking import observing_at
from sources.highlevel.fixture import HighLevelFixture
from sources.lobstr.fixture import LobstrFixture
from sources.upload_post.fixture import UploadPostFixture

# the canonical status table of ../shared/design.md, written out again on purpose
CONTRACT = {
    "highlevel": {"pending": "pending", "in_review": "pending", "in_progress": "running",
                  "importing": "running", "completed": "succeeded", "failed": "failed",
                  "deleted": "cancelled"},
    "upload_post": {"pending": "pending", "queued": "pending", "processing": "running",
                    "in_progress": "running", "completed": "succeeded", "failed": "failed",
                    "not_found": "not_found"},
    "lobstr": {"PENDING": "pending", "PROGRESS": "running", "SUCCESS": "succeeded",
               "FAILURE": "failed"},
    "cleartax": {"INIT": "pending", "UPLOADED": "pending", "QUEUED": "pending",
                 "PROCESSING": "running", "PROCESSED": "succeeded", "ABORTED": "failed"},
}
TERMINAL = {"succeeded", "partial", "failed", "cancelled", "not_found"}
NOT_FOUND_MESSAGE = "No upload request found with this ID"


def _utc_day(iso: str) -> date:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc).date()


class Scenario:
    """Four providers with a mix of outcomes, and what the views must say about them."""

    def __init__(self) -> None:
        self.highlevel = HighLevelFixture(locations={"loc-a": 12, "loc-b": 7}, seed=11,
                                          unfinished_share=0.4, failure_share=0.4)
        self.up = UploadPostFixture()
        self.lobstr = LobstrFixture()
        self.cleartax = ClearTaxFixture()
        up = self.up
        self.up_config = [
            up.add("request", "mixed", ["in_progress", "completed"],
                   platforms=["x", "tiktok", "linkedin"], failures={"tiktok": "Token expired"}),
            up.add("request", "clean", ["pending", "completed"], platforms=["x"]),
            up.add("job", "all-bad", ["completed"], platforms=["x", "threads"],
                   failures={"x": "Banned hashtag", "threads": "Banned hashtag"}),
            up.add("request", "stalled", ["pending", "failed"], stalled=True, in_history=False),
            up.add("request", "waiting", ["pending"], in_history=False),
            "request:ghost",  # the API has never heard of it
        ]
        up.add("request", "history-only", ["in_progress", "completed"], platforms=["youtube"])
        self.lobstr_ids = [
            self.lobstr.add("a" * 32, ["PENDING", "SUCCESS"], valid=50, invalid=2, duplicates=5),
            self.lobstr.add("b" * 32, ["PROGRESS", "FAILURE"], valid=9, invalid=9),
            self.lobstr.add("c" * 32, ["PENDING"]),
            "d" * 32,  # unknown: 404
        ]
        self.activities = [
            self.cleartax.add("te-1", "act-1", ["INIT", "PROCESSED"]),
            self.cleartax.add("te-1", "act-2", ["QUEUED", "ABORTED"], error="Invalid GSTIN"),
            self.cleartax.add("te-2", "act-3", ["UPLOADED", "PROCESSING"]),
        ]
        self.observed: dict[tuple[str, str], list[str]] = defaultdict(list)  # -> statuses seen
        self.first_day: date | None = None

    def env(self, base_url: str) -> dict[str, str]:
        requests = [r.split(":", 1)[1] for r in self.up_config if r.startswith("request:")]
        jobs = [r.split(":", 1)[1] for r in self.up_config if r.startswith("job:")]
        return {
            "SOURCES__HIGHLEVEL__ACCESS_TOKEN": self.highlevel.token,
            "SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(list(self.highlevel.imports)),
            "SOURCES__UPLOAD_POST__API_KEY": self.up.token,
            "SOURCES__UPLOAD_POST__REQUEST_IDS": json.dumps(requests),
            "SOURCES__UPLOAD_POST__JOB_IDS": json.dumps(jobs),
            "SOURCES__LOBSTR__API_KEY": self.lobstr.token,
            "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(self.lobstr_ids),
            "SOURCES__CLEARTAX__AUTH_TOKEN": self.cleartax.token,
            "SOURCES__CLEARTAX__ACTIVITIES": json.dumps(self.activities),
            **{f"SOURCES__{p}__BASE_URL": base_url
               for p in ("HIGHLEVEL", "UPLOAD_POST", "LOBSTR", "CLEARTAX")},
        }

    # --- what each job is right now, from the fixtures' own data ---------------------------
    def jobs(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(provider, job id) -> the columns of its upload_jobs row (status included)."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for location, rows in self.highlevel.imports.items():
            for row in rows:
                errors = sorted(p["errorMessage"] for p in self.highlevel.posts(row)
                                if "errorMessage" in p)
                finished = row["status"] in ("completed", "failed")
                out["highlevel", row["_id"]] = {
                    "scope_id": location, "native_status": row["status"],
                    "status": CONTRACT["highlevel"][row["status"]],
                    "items_total": row["count"], "items_failed": len(errors),
                    "items_succeeded": row["count"] - len(errors) if finished else None,
                    "error_message": errors[0] if errors else None,
                    "day": _utc_day(row["createdAt"])}
        for ref in [*self.up_config, "request:history-only"]:
            kind, job_id = ref.split(":", 1)
            job = self.up.jobs.get((kind, job_id))
            out["upload_post", job_id] = self._upload_post_row(kind, job)
        for task_id in self.lobstr_ids:
            task = self.lobstr.tasks.get(task_id)
            row = {"scope_id": None, "native_status": "HTTP 404", "status": "not_found",
                   "items_total": None, "items_succeeded": None, "items_failed": None,
                   "error_message": "Upload task not found"}  # the 404's own message
            if task is not None:
                meta = task.data["meta"] if task.status in ("SUCCESS", "FAILURE") else None
                row |= {"native_status": task.status, "error_message": None,
                        "status": CONTRACT["lobstr"][task.status],
                        "items_total": meta and meta["valid"] + meta["invalid"],
                        "items_succeeded": meta and meta["inserted"],
                        "items_failed": meta and meta["invalid"]}
            out["lobstr", task_id] = row
        for ref in self.activities:
            entity, activity = ref.split("/")
            job = self.cleartax.activities.get((entity, activity))
            out["cleartax", activity] = {
                "scope_id": entity, "native_status": job.status,
                "status": CONTRACT["cleartax"][job.status], "items_total": None,
                "items_succeeded": None, "items_failed": None,
                "error_message": job.data["error"] if job.status == "ABORTED" else None}
        for row in out.values():
            row.setdefault("day", self.first_day)
        return out

    def _upload_post_row(self, kind: str, job) -> dict[str, Any]:
        if job is None:
            return {"scope_id": None, "native_status": "not_found", "status": "not_found",
                    "items_total": None, "items_succeeded": 0, "items_failed": 0,
                    "error_message": NOT_FOUND_MESSAGE}
        results = self.up.results(job)
        ok = sum(r["success"] for r in results)
        bad = len(results) - ok
        status = CONTRACT["upload_post"][job.status]
        if job.status in ("completed", "failed") and results:
            status = "partial" if ok and bad else ("failed" if bad else status)
        reasons = [r["error_message"] for r in results if not r["success"]]
        stalled = job.data["stalled"] and job.status == "failed"
        return {"scope_id": None, "native_status": job.status, "status": status,
                "items_total": None if job.status == "pending" and kind == "request"
                else len(job.data["platforms"]),
                "items_succeeded": ok, "items_failed": bad,
                "error_message": reasons[0] if reasons else (
                    "Upload appears to have failed (no activity for over 1 hour)"
                    if stalled else None)}

    def note_run(self, observed_at: datetime) -> None:
        """Remember each job's status as a run saw it (the history must hold each once), and
        the day of the first run's observations."""
        if self.first_day is None:
            self.first_day = observed_at.astimezone(timezone.utc).date()
        for key, row in self.jobs().items():
            self.observed[key].append(row["native_status"])


@pytest.fixture(scope="module", params=["duckdb", "postgres", "sqlite", "mariadb", "delta"])
def loaded(request, tmp_path_factory):
    """The scenario run twice, with the simulator advancing in between; loaded once per
    destination for the tests of this module, which only read it."""
    folder = tmp_path_factory.mktemp("views")
    with warehouse_at(request.param, folder, folder / "warehouse.duckdb") as warehouse:
        scenario = Scenario()
        with pytest.MonkeyPatch.context() as env, Simulator(
                scenario.highlevel, scenario.up, scenario.lobstr, scenario.cleartax) as sim:
            env.chdir(folder)
            env.setenv("DLT_DATA_DIR", str(folder / "dlt_data"))
            for key, value in scenario.env(sim.base_url).items():
                env.setenv(key, value)
            # the runs observe at fixed times: a run crossing midnight UTC cannot move a day
            start = pendulum.now("UTC")
            for run in range(2):
                if run:
                    sim.advance()
                with observing_at(start.add(minutes=run)):
                    report = run_providers(pipeline=warehouse.pipeline)
                assert report.exit_code == 0, [(p.provider, p.errors) for p in report.providers]
                assert report.views_error is None
                scenario.note_run(start.add(minutes=run))
        yield scenario, warehouse


def test_upload_jobs_has_every_job_exactly_as_the_scenario_says(loaded):
    scenario, warehouse = loaded
    expected = {(p, j, r["scope_id"], r["native_status"], r["status"], r["status"] in TERMINAL,
                 r["items_total"], r["items_succeeded"], r["items_failed"], r["error_message"])
                for (p, j), r in scenario.jobs().items()}

    rows = warehouse.query("""select provider, job_id, scope_id, native_status, status,
        is_terminal, items_total, items_succeeded, items_failed, error_message
        from {ds}.upload_jobs""")

    assert len(rows) == len(expected)
    assert set(rows) == expected
    timing = warehouse.query("""select provider, job_id, submitted_at, first_seen_at,
        last_seen_at, finished_at, is_terminal from {ds}.upload_jobs""")
    for provider, job_id, submitted, first, last, finished, terminal in timing:
        assert first is not None and last is not None and first <= last
        assert (finished is not None) == terminal, (provider, job_id)
        assert (submitted is not None) == (provider == "highlevel")


def test_upload_success_rates_count_every_outcome_per_provider_and_day(loaded):
    scenario, warehouse = loaded
    groups: dict[tuple[str, date], Counter[str]] = defaultdict(Counter)
    for (provider, _), row in scenario.jobs().items():
        groups[provider, row["day"]][row["status"]] += 1
    expected = {}
    for key, c in groups.items():
        decided = c["succeeded"] + c["partial"] + c["failed"]
        in_flight = sum(n for s, n in c.items() if s not in TERMINAL)
        expected[key] = (sum(c.values()), c["succeeded"], c["partial"], c["failed"],
                         c["cancelled"], in_flight,
                         c["succeeded"] / decided if decided else None)

    rows = warehouse.query("""select provider, day, jobs, succeeded, partial, failed, cancelled,
        in_flight, success_rate from {ds}.upload_success_rates""")

    got = {(p, d): (j, s, pa, f, c, i, r) for p, d, j, s, pa, f, c, i, r in rows}
    assert got.keys() == expected.keys()
    for key, numbers in expected.items():
        assert got[key][:6] == numbers[:6], key
        assert got[key][6] == (None if numbers[6] is None else pytest.approx(numbers[6])), key
    assert {p for p, _ in got} == {"highlevel", "upload_post", "lobstr", "cleartax"}


def test_status_history_and_platform_results_views(loaded):
    scenario, warehouse = loaded
    history = Counter(warehouse.query(
        "select provider, job_id from {ds}.upload_job_status_history"))
    expected_history = {key: sum(1 for i, status in enumerate(seen)
                                 if i == 0 or status != seen[i - 1])
                        for key, seen in scenario.observed.items()}
    assert dict(history) == expected_history

    results = set(warehouse.query("""select job_id, platform, status, success, message
        from {ds}.upload_platform_results"""))
    expected_results = set()
    for ref in [*scenario.up_config, "request:history-only"]:
        kind, job_id = ref.split(":", 1)
        job = scenario.up.jobs.get((kind, job_id))
        for r in scenario.up.results(job) if job else []:
            expected_results.add((job_id, r["platform"],
                                  "completed" if r["success"] else "failed", r["success"],
                                  r.get("error_message") or r["message"]))
    assert results == expected_results


def test_no_finished_job_gives_a_null_success_rate(warehouse, polled_sim, monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    ids = [lobstr.add(f"{i:032x}", ["PENDING", "PROGRESS"]) for i in range(3)]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(ids))

    report = run_providers(["lobstr"], pipeline=warehouse.pipeline)

    assert report.exit_code == 0 and report.views_error is None
    assert warehouse.query("""select jobs, succeeded, partial, failed, in_flight, success_rate
        from {ds}.upload_success_rates""") == [(3, 0, 0, 0, 3, None)]
    # the other providers never ran: their parts of the views are empty, not errors
    assert warehouse.query("select count(*) from {ds}.upload_platform_results") == [(0,)]
    assert warehouse.query("select count(distinct provider) from {ds}.upload_jobs") == [(1,)]


def test_report_reads_the_same_numbers_from_each_destination(loaded):
    from pipelines.analytics.report import build_report

    scenario, warehouse = loaded
    jobs = scenario.jobs()
    expected = defaultdict(Counter)
    for (provider, _), row in jobs.items():
        expected[provider][row["status"]] += 1

    rep = build_report(warehouse.pipeline, since_days=60, stuck_hours=0)

    totals = {t["provider"]: t for t in rep.totals}
    for provider, counts in expected.items():
        decided = counts["succeeded"] + counts["partial"] + counts["failed"]
        assert totals[provider]["jobs"] == sum(counts.values())
        assert totals[provider]["success_rate"] == pytest.approx(counts["succeeded"] / decided)
    statuses = {(r["provider"], r["status"]): r["jobs"] for r in rep.statuses}
    assert statuses == {(p, s): n for p, c in expected.items() for s, n in c.items()}
    reasons = {(r["provider"], r["reason"]): r["occurrences"] for r in rep.failure_reasons}
    assert reasons[("cleartax", "Invalid GSTIN")] == 1
    assert reasons[("upload_post", "Banned hashtag")] == 2  # two platforms of one job
    assert reasons[("upload_post", "Token expired")] == 1
    assert reasons[("upload_post", NOT_FOUND_MESSAGE)] == 1
    unfinished = {(p, j) for (p, j), r in jobs.items() if r["status"] not in TERMINAL}
    assert {(r["provider"], r["job_id"]) for r in rep.stuck} == unfinished


def test_the_guide_sql_runs_on_each_destination(loaded):
    _, warehouse = loaded
    if warehouse.name not in ("duckdb", "postgres", "delta"):  # Delta is read by DuckDB
        pytest.skip("the guide's SQL is written for DuckDB and Postgres (percentiles, "
                    "EXTRACT(EPOCH ...)); the views and report are what other databases get")
    guide = (Path(__file__).parents[1] / "docs" / "bi-guide.md").read_text()
    queries = [q.strip().rstrip(";") for q in re.findall(r"```sql\n(.*?)```", guide, re.S)
               if q.lstrip().upper().startswith("SELECT")]

    results = [warehouse.query(q.replace("upload_status.", "{ds}.")) for q in queries]

    assert len(queries) == 5
    success_by_day, reasons, completion, _stuck, platforms = results
    assert success_by_day and reasons and completion and platforms
    assert all(p50 <= p90 for *_, p50, p90 in completion)


def test_delta_tables_hold_each_row_once_as_parquet(loaded):
    """Two runs into Delta tables (merged by upsert): no row twice in any table, and only
    parquet data files (dlt's default jsonl would be appended beside them)."""
    _, warehouse = loaded
    if warehouse.name != "delta":
        pytest.skip("Delta tables only")
    from pipelines.destinations.lakehouse import lake_connection

    lake = Path(warehouse.pipeline.destination.config_params["bucket_url"])
    with lake_connection(warehouse.pipeline) as con:
        tables = [name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "'upload_status' AND table_type = 'VIEW' AND table_name NOT LIKE 'upload_%'"
        ).fetchall()]
        assert len(tables) >= 10
        for table in tables:
            total, distinct = con.execute(
                f"SELECT COUNT(*), COUNT(DISTINCT _dlt_id) FROM upload_status.{table}").fetchone()
            assert total == distinct, table
    data_files = [f for f in lake.rglob("*") if f.is_file() and "_delta_log" not in f.parts
                  and not f.parent.name.startswith("_dlt") and f.name != "init"]
    assert data_files and all(f.suffix == ".parquet" for f in data_files), {
        f.suffix for f in data_files}
