"""Issue 30, item 7 over real HTTP into real DuckDB: untracked jobs are neither stuck nor in
flight and the views show it without a run; a location configured twice is read once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from pipelines.analytics.report import build_report
from pipelines.commands.track import untrack_jobs
from simulator import Fault
from sources.highlevel.fixture import HighLevelFixture


def test_an_untracked_job_is_neither_stuck_nor_in_flight_at_once(polled_sim, run_polled,
                                                                 query, pipeline,
                                                                 monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    tasks = [lobstr.add(f"{i:032x}", ["PENDING"]) for i in range(1, 3)]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
    assert run_polled("lobstr").exit_code == 0
    assert query("select sum(in_flight) from {ds}.upload_success_rates") == [(2,)]

    assert untrack_jobs("lobstr", [tasks[0]], pipeline=pipeline)["untracked"] == [tasks[0]]

    # no run in between: untrack refreshed the views
    assert query("select job_id from {ds}.upload_jobs where untracked_at is not null") == [
        (tasks[0],)]
    assert query("select sum(in_flight) from {ds}.upload_success_rates") == [(1,)]
    stuck = build_report(pipeline, stuck_hours=0).stuck
    assert [row["job_id"] for row in stuck] == [tasks[1]]


def test_a_location_configured_twice_is_read_once(highlevel_sim, run, query, monkeypatch):
    sim = highlevel_sim(HighLevelFixture(locations={"loc_a": 150}), page_size=100)
    monkeypatch.setenv("SOURCES__HIGHLEVEL__LOCATION_IDS", json.dumps(["loc_a", "loc_a"]))

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    listing = [r for r in sim.requests() if r.path == "/social-media-posting/loc_a/csv"]
    assert sorted(r.query.get("skip", "0") for r in listing) == ["0", "100"]
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(150,)]


def test_lobstr_counts_are_read_from_flat_dotted_keys_too(polled_sim, run_polled, query,
                                                          monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    flat, nested = lobstr.add("a" * 32, ["SUCCESS"]), lobstr.add("b" * 32, ["SUCCESS"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps([flat, nested]))
    # the field list of Lobstr's docs writes the counts as `meta.valid`, ...
    polled_sim.inject(Fault(200, f"/v1/tasks/upload/{flat}", body={
        "id": flat, "object": "task_upload", "state": "SUCCESS", "meta.valid": 12,
        "meta.invalid": 1, "meta.inserted": 10, "meta.duplicates": 1}))

    assert run_polled("lobstr").exit_code == 0

    assert dict(query("select id, meta__valid from {ds}.lobstr_upload_tasks")) == {
        flat: 12, nested: 8}
    assert query("select items_total from {ds}.upload_jobs where job_id = 'aaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaa'") == [(13,)]  # valid + invalid


def test_upload_post_platform_statuses_reach_the_failures_as_the_contract_says(
        polled_sim, run_polled, query, monkeypatch):
    up = polled_sim.fixtures["upload_post"]
    for request in ("r-done", "r-run"):
        up.add("request", request, ["completed"], in_history=False)
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", '["r-done", "r-run"]')
    monkeypatch.setenv("SOURCES__UPLOAD_POST__DISCOVER_SCHEDULED", "false")
    polled_sim.inject(Fault(200, "/api/uploadposts/status", query={"request_id": "r-done"},
                            body={"request_id": "r-done", "status": "completed", "results": [
                                {"platform": "x", "status": "completed"},
                                {"platform": "tiktok", "status": "failed",
                                 "error_message": "Video too long"}]}))
    polled_sim.inject(Fault(200, "/api/uploadposts/status", query={"request_id": "r-run"},
                            body={"request_id": "r-run", "status": "in_progress", "results": [
                                {"platform": "x", "status": "retryable", "success": False,
                                 "message": "rate limited, retrying"}]}))

    assert run_polled("upload_post").exit_code == 0

    assert query("select job_id, status from {ds}.upload_jobs order by 1") == [
        ("r-done", "partial"), ("r-run", "running")]
    assert query("select job_id, item, reason from {ds}.upload_failures") == [
        ("r-done", "tiktok", "Video too long")]
    assert query("select job_id, platform, status from {ds}.upload_platform_results "
                 "order by 1, 2") == [("r-done", "tiktok", "failed"), ("r-done", "x", "completed"),
                                      ("r-run", "x", "running")]


def test_a_scheduled_post_answering_404_before_its_time_stays_pending(polled_sim, run_polled,
                                                                      query, monkeypatch):
    up = polled_sim.fixtures["upload_post"]
    later = datetime.now(timezone.utc) + timedelta(days=2)
    up.add("job", "sched-1", ["pending", "completed"], in_history=False, scheduled_date=later)
    monkeypatch.setenv("SOURCES__UPLOAD_POST__DISCOVER_FROM_HISTORY", "false")
    not_yet = Fault(404, "/api/uploadposts/status", query={"job_id": "sched-1"}, times=2,
                    body={"job_id": "sched-1", "status": "not_found",
                          "message": "No upload request found with this ID"})
    polled_sim.inject(not_yet)

    for _ in range(2):  # found in the schedule listing, then followed from the state
        assert run_polled("upload_post").exit_code == 0
    assert query("select status, scheduled_at is not null from {ds}.upload_jobs") == [
        ("pending", True)]
    polled_sim.advance()

    assert run_polled("upload_post").exit_code == 0
    assert query("select status from {ds}.upload_job_status_history order by observed_at") \
        == [("pending",), ("succeeded",)]


def test_not_found_messages_reach_error_message(polled_sim, run_polled, query, monkeypatch):
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(["c" * 32]))
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", '["TE9/missing"]')

    assert run_polled("lobstr", "cleartax").exit_code == 0

    assert query("select provider, status, error_message from {ds}.upload_jobs "
                 "order by 1") == [
        ("cleartax", "not_found", "No activity found for id missing"),
        ("lobstr", "not_found", "Upload task not found")]


def test_lower_case_moments_and_fractional_counts_reach_the_typed_columns(highlevel_sim, run,
                                                                         query, monkeypatch):
    monkeypatch.setenv("SOURCES__HIGHLEVEL__FETCH_POSTS", "false")
    fixture = HighLevelFixture(locations={"loc_a": 3}, unfinished_share=0.0)
    rows = fixture.imports["loc_a"]
    rows[0]["createdAt"] = rows[0]["createdAt"].replace("T", "t").replace("Z", "z")
    rows[1]["count"] = 12.5
    highlevel_sim(fixture)

    assert run().exit_code == 0

    assert query("select count(*) from {ds}.highlevel_csv_uploads where created_at is null"
                 ) == [(0,)]
    assert query(f"select items_total from {{ds}}.upload_jobs where job_id = '{rows[1]['_id']}'"
                 ) in ([(12,)], [(13,)])


def test_posts_are_read_under_the_location_that_listed_the_import(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc_a": 3}, unfinished_share=0.0)
    moved = fixture.imports["loc_a"][0]
    moved["locationId"] = "some_other_location"  # the record names another location
    sim = highlevel_sim(fixture)

    assert run().exit_code == 0

    posts = [r.path for r in sim.requests() if r.path.endswith(f"/csv/{moved['_id']}")]
    assert posts and all(p.startswith("/social-media-posting/loc_a/") for p in posts)
    assert query(f"select count(*) > 0 from {{ds}}.highlevel_csv_posts "
                 f"where csv_id = '{moved['_id']}'") == [(True,)]
    assert query(f"select location_id from {{ds}}.highlevel_csv_uploads "
                 f"where _id = '{moved['_id']}'") == [("some_other_location",)]
