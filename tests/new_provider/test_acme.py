"""Acme end to end: a provider that is one folder (provider.toml + fixture.py) and this file."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pipelines.track import track_jobs
from sources import providers


def test_acme_jobs_are_followed_until_they_finish(polled_sim, run_polled, pipeline, query,
                                                  monkeypatch):
    acme = polled_sim.fixtures["acme"]
    acme.add("imp-1", ["QUEUED", "WORKING", "DONE"])
    acme.add("imp-2", ["QUEUED", "ERROR"], error="row 3: bad date")
    acme.add("imp-3", ["WORKING", "DONE"])
    monkeypatch.setenv("SOURCES__ACME__IMPORT_IDS", json.dumps(["imp-1", "imp-2", "gone"]))
    assert track_jobs("acme", ["imp-3"], pipeline=pipeline).registered == 1

    for step in range(3):
        if step:
            polled_sim.advance()
        report = run_polled("acme")
        assert report.exit_code == 0, report.providers[0].errors
    requests = len(polled_sim.requests("acme"))
    assert run_polled("acme").exit_code == 0
    assert len(polled_sim.requests("acme")) == requests  # finished jobs are not polled again

    assert query("""select job_id, status, native_status, items_succeeded, items_failed,
                           error_message from {ds}.upload_jobs where provider = 'acme'
                    order by job_id""") == [
        ("gone", "not_found", "HTTP 404", None, None, None),
        ("imp-1", "succeeded", "DONE", 7, 0, None),
        ("imp-2", "failed", "ERROR", 0, 1, "row 3: bad date"),
        ("imp-3", "succeeded", "DONE", 7, 0, None)]
    assert query("""select native_status from {ds}.upload_job_status_history
                    where provider = 'acme' and job_id = 'imp-1' order by observed_at""") == [
        ("QUEUED",), ("WORKING",), ("DONE",)]
    assert query("""select job_id, reason from {ds}.upload_failures
                    where provider = 'acme'""") == [("imp-2", "row 3: bad date")]
    assert query("""select sum(succeeded), sum(failed) from {ds}.upload_success_rates
                    where provider = 'acme'""") == [(2, 1)]


def test_acme_takes_part_in_the_demo_and_the_help():
    scenario = providers()["acme"].scenario(datetime.now(timezone.utc))
    refs = scenario.submit(1, datetime.now(timezone.utc))
    assert len(refs) == 4 and all(scenario.fixture.jobs.get(r) for r in refs)
    assert json.loads(scenario.config(refs)["SOURCES__ACME__IMPORT_IDS"]) == refs
