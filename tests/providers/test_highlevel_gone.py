"""Issue 30, item 5 over real HTTP into real DuckDB: imports deleted at HighLevel become
`cancelled` after the next complete read of their location (the daily full pass, or a full
refresh), exactly those, and never from a partial read."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from simulator import Fault
from sources.common.tracking import observing_at
from sources.highlevel.fixture import HighLevelFixture

T0 = pendulum.datetime(2026, 12, 1, 8, tz="UTC")


def _cancelled(query) -> set[str]:
    return {j for (j,) in query("select job_id from {ds}.upload_job_status_history "
                                "where provider = 'highlevel' and status = 'cancelled'")}


def test_deleted_imports_are_cancelled_by_the_next_full_pass_and_no_other(highlevel_sim, run,
                                                                        query, monkeypatch):
    monkeypatch.setenv("SOURCES__HIGHLEVEL__FETCH_POSTS", "false")
    fixture = HighLevelFixture(locations={"loc1": 250, "loc2": 20}, unfinished_share=1.0)
    highlevel_sim(fixture)
    with observing_at(T0):
        assert run().exit_code == 0
    rows = fixture.imports["loc1"]
    deleted = {rows.pop(i)["_id"] for i in (200, 100, 3)}

    with observing_at(T0 + timedelta(hours=1)):  # a run reading only the newest pages
        assert run().exit_code == 0
    assert _cancelled(query) == set()

    with observing_at(T0 + timedelta(hours=25)):  # the day's full pass
        report = run()
    assert report.exit_code == 0, report.providers[0].errors
    assert report.providers[0].counts["imports gone from the listing (cancelled)"] == 3
    assert _cancelled(query) == deleted
    assert {j for (j,) in query("select job_id from {ds}.upload_jobs "
                                "where status = 'cancelled'")} == deleted
    assert query("select outcome, count(*) from {ds}.highlevel_csv_deletions group by 1") == [
        ("gone from the listing", 3)]

    with observing_at(T0 + timedelta(hours=50)):
        assert run(full_refresh=True).exit_code == 0
    assert _cancelled(query) == deleted
    assert query("select count(*) from {ds}.upload_job_status_history "
                 "where status = 'cancelled'") == [(3,)]


def test_a_partial_read_never_cancels(highlevel_sim, run, query, monkeypatch):
    monkeypatch.setenv("SOURCES__HIGHLEVEL__FETCH_POSTS", "false")
    fixture = HighLevelFixture(locations={"loc1": 250}, unfinished_share=1.0)
    sim = highlevel_sim(fixture, page_size=100)
    with observing_at(T0):
        assert run().exit_code == 0
    fixture.imports["loc1"].pop(10)
    sim.inject(Fault(200, r"/social-media-posting/loc1/csv", times=100, body=b"<html>",
                     content_type="text/html"))

    with observing_at(T0 + timedelta(hours=25)):
        report = run(full_refresh=True)

    assert report.exit_code == 1
    assert _cancelled(query) == set()
