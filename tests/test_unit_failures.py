"""Issue 30 over real HTTP into real DuckDB: one bad job fails alone (named, a reject row, read
again next run, backing off once it keeps failing), an outage fails the provider without
blaming any job, and a budget shorter than the work reaches every job in turn."""

from __future__ import annotations

import json
from datetime import timedelta

import pendulum
import pytest

from pipelines.commands.track import track_jobs, untrack_jobs
from simulator.hostile import poison
from sources.common.failing_units import FREE_RETRIES
from sources.common.poller import OUTAGE_STREAK
from sources.common.tracking import observing_at

T0 = pendulum.datetime(2026, 12, 1, 8, tz="UTC")


def _jobs(sim, provider: str, n: int) -> tuple[list[str], dict]:
    """`n` finished jobs of `provider` configured to follow; the poison fault's match for the
    last one."""
    fixture = sim.fixtures[provider]
    if provider == "lobstr":
        refs = [fixture.add(f"{i:032x}", ["SUCCESS"]) for i in range(1, n + 1)]
        sim.monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(refs))
        return refs, {"path": f"/v1/tasks/upload/{refs[-1]}"}
    if provider == "cleartax":
        refs = [fixture.add("TE1", f"act-{i}", ["PROCESSED"]) for i in range(1, n + 1)]
        sim.monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", json.dumps(refs))
        return refs, {"path": f"/api/v0.2/taxable_entities/TE1/upload_activity/act-{n}/status"}
    refs = [fixture.add("request", f"r{i}", ["completed"], in_history=False)
            for i in range(1, n + 1)]
    sim.monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS",
                           json.dumps([r.split(":", 1)[1] for r in refs]))
    return refs, {"path": "/api/uploadposts/status", "query": {"request_id": f"r{n}"}}


@pytest.fixture
def sim(polled_sim, monkeypatch):
    polled_sim.monkeypatch = monkeypatch
    return polled_sim


@pytest.mark.parametrize("provider", ["lobstr", "cleartax", "upload_post"])
def test_one_job_answering_500_for_good_fails_alone_and_is_named(sim, run_polled, query,
                                                                 provider):
    refs, where = _jobs(sim, provider, 5)
    sim.inject(poison(**where, body={"statusCode": 500, "message": "Internal server error"}))
    table = {"lobstr": "lobstr_upload_tasks", "cleartax": "cleartax_upload_activities",
             "upload_post": "upload_post_uploads"}[provider]

    report = run_polled(provider)

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert any(f"{provider} job {refs[-1]}: HTTP 500" in e for e in stats.errors), stats.errors
    assert {r for (r,) in query(f"select job_ref from {{ds}}.{table}")} == set(refs[:-1])
    assert query(f"select job_ref, http_status from {{ds}}.{provider}_rejects") == [
        (refs[-1], 500)]
    assert query("select provider, unit_kind, unit_id, consecutive_failures, reason "
                 "from {ds}.upload_failing_units") == [
        (provider, "job", refs[-1], 1, 'HTTP 500: {"statusCode": 500, "message": '
                                         '"Internal server error"}')]
    sim.clear_log()

    again = run_polled(provider)  # the healthy ones finished; the poisoned one is asked again

    assert again.exit_code == 1
    assert len(sim.requests(provider)) >= 1
    assert query("select consecutive_failures from {ds}.upload_failing_units") == [(2,)]
    assert len(query(f"select * from {{ds}}.{provider}_status_history")) == len(refs) - 1


def test_an_outage_fails_the_provider_and_blames_no_job(sim, run_polled, query):
    refs, _ = _jobs(sim, "lobstr", 60)
    sim.monkeypatch.setenv("SOURCES__LOBSTR__CONCURRENCY", "4")
    outage = poison(r"/v1/tasks/upload/.*", status=503)
    sim.inject(outage)

    report = run_polled("lobstr")

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "failed"
    assert any("lobstr: HTTP 503" in e and "no job answered" in e for e in stats.errors)
    # polling stopped after OUTAGE_STREAK jobs in a row got nothing (each retried by dlt):
    # besides them, only requests already in flight then were sent
    asked = {r.path for r in sim.requests("lobstr")}
    assert OUTAGE_STREAK <= len(asked) <= OUTAGE_STREAK + 2 * 4
    assert stats.counts["waiting for the next run"] == len(refs)
    assert query("select count(*) from {ds}.upload_failing_units") == [(0,)]
    outage.times = 0

    assert run_polled("lobstr").exit_code == 0
    assert query("select count(*) from {ds}.lobstr_upload_tasks") == [(len(refs),)]


def test_an_outage_in_the_middle_keeps_what_answered(sim, run_polled, query, monkeypatch):
    refs, _ = _jobs(sim, "lobstr", 12)
    monkeypatch.setenv("SOURCES__LOBSTR__CONCURRENCY", "1")
    for ref in refs[4:]:
        sim.inject(poison(f"/v1/tasks/upload/{ref}", status=502))

    report = run_polled("lobstr")

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "partly failed"
    assert any("the API stopped answering after 4 jobs answered" in e for e in stats.errors)
    assert {r for (r,) in query("select id from {ds}.lobstr_upload_tasks")} == set(refs[:4])
    assert query("select count(*) from {ds}.upload_failing_units") == [(0,)]


def test_a_poison_job_backs_off_and_untrack_ends_it(sim, run_polled, query, pipeline):
    refs, where = _jobs(sim, "lobstr", 3)
    sim.monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps([]))
    assert track_jobs("lobstr", refs, pipeline=pipeline).registered == 3
    sim.inject(poison(**where))
    poisoned = refs[-1]

    def run_at(moment):
        sim.clear_log()
        with observing_at(moment):
            report = run_polled("lobstr")
        return report, {r.path.rsplit("/", 1)[1] for r in sim.requests("lobstr")}

    for n in range(FREE_RETRIES):  # tried on every run until it failed FREE_RETRIES in a row
        report, asked = run_at(T0 + timedelta(minutes=n))
        assert poisoned in asked and report.exit_code == 1
    assert query("select consecutive_failures, next_try_at from {ds}.upload_failing_units") \
        == [(FREE_RETRIES, T0 + timedelta(minutes=FREE_RETRIES - 1, hours=1))]

    report, asked = run_at(T0 + timedelta(minutes=30))  # inside its interval: not asked
    assert not asked and report.exit_code == 0
    assert report.providers[0].counts["failing, retried later"] == 1

    report, asked = run_at(T0 + timedelta(hours=2))  # the interval passed: asked, fails again
    assert asked == {poisoned} and report.exit_code == 1
    assert query("select consecutive_failures from {ds}.upload_failing_units") == [(4,)]

    with observing_at(T0 + timedelta(hours=3)):
        outcomes = untrack_jobs("lobstr", [poisoned], pipeline=pipeline)
    assert outcomes.get("untracked") == [poisoned]
    assert query("select resolution, consecutive_failures from {ds}.lobstr_failing_units") == [
        ("untracked", 4)]
    report, asked = run_at(T0 + timedelta(days=2))
    assert not asked and report.exit_code == 0


def test_a_job_that_answers_again_leaves_the_failing_units(sim, run_polled, query):
    refs, where = _jobs(sim, "cleartax", 3)
    fault = poison(**where)
    sim.inject(fault)
    assert run_polled("cleartax").exit_code == 1
    fault.times = 0

    assert run_polled("cleartax").exit_code == 0

    assert query("select count(*) from {ds}.upload_failing_units") == [(0,)]
    assert query("select unit_id, resolution from {ds}.cleartax_failing_units") == [
        (refs[-1], "answered")]


def test_ten_times_the_budget_of_jobs_are_all_polled_within_ten_runs(
        sim, run_polled, query, pipeline, monkeypatch):
    lobstr = sim.fixtures["lobstr"]
    jobs, budget = 2_000, 200
    refs = [lobstr.add(f"{i:032x}", ["PENDING"]) for i in range(jobs)]  # never finish
    assert track_jobs("lobstr", refs, pipeline=pipeline).registered == len(refs)
    monkeypatch.setenv("SOURCES__LOBSTR__MAX_POLLS_PER_RUN", str(budget))
    monkeypatch.setenv("SOURCES__LOBSTR__RATE_LIMIT_REQUESTS", "0")
    polled: list[set[str]] = []
    for _ in range(10):
        sim.clear_log()
        report = run_polled("lobstr")
        stats = report.providers[0]
        assert report.exit_code == 0, stats.errors
        assert stats.counts["waiting for the next run"] == jobs - budget
        assert stats.rows_loaded.get("lobstr_upload_tasks") == budget  # no run loads nothing
        polled.append({r.path.rsplit("/", 1)[1] for r in sim.requests("lobstr")})
    assert all(len(p) == budget for p in polled)
    assert set().union(*polled) == set(refs)
    assert query("select count(*) from {ds}.lobstr_status_history") == [(jobs,)]
    sim.clear_log()
    run_polled("lobstr")  # and the eleventh starts the round again, oldest poll first
    assert {r.path.rsplit("/", 1)[1] for r in sim.requests("lobstr")} == polled[0]


def test_a_partly_failed_run_refreshes_the_views_and_their_counts_are_bigint(sim, run_polled,
                                                                            query):
    cleartax = sim.fixtures["cleartax"]
    aborted = cleartax.add("TE2", "act-x", ["ABORTED"], error="Invalid GSTIN of the recipient")
    refs, where = _jobs(sim, "cleartax", 3)
    sim.monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", json.dumps([*refs, aborted]))
    sim.inject(poison(**where))

    report = run_polled("cleartax")

    assert report.exit_code == 1 and report.providers[0].outcome == "partly failed"
    assert "upload_jobs" in report.views and report.views_error is None
    assert query("select error_message from {ds}.upload_jobs where status = 'failed'") == [
        ("Invalid GSTIN of the recipient",)]
    assert query("select reason from {ds}.upload_failures") == [
        ("Invalid GSTIN of the recipient",)]
    assert query("select distinct typeof(jobs), typeof(succeeded), typeof(in_flight) "
                 "from {ds}.upload_success_rates") == [("BIGINT", "BIGINT", "BIGINT")]
