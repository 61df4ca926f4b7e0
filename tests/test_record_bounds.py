"""Issue 30, item 3 over real HTTP into real DuckDB: bounds apply to the record, not the page;
values a destination cannot store are kept in a documented form, never a provider failure."""

from __future__ import annotations

import json

import pytest

from pipelines.run.runner import run_providers
from simulator import Fault
from simulator.hostile import gzip_bombed, nested
from sources.highlevel.fixture import HighLevelFixture


def test_an_import_over_a_bound_is_rejected_alone_and_its_page_loads(highlevel_sim, run,
                                                                     query):
    fixture = HighLevelFixture(locations={"loc1": 250}, unfinished_share=0.0)
    rows = fixture.imports["loc1"]
    deep, wide = rows[5], rows[7]
    deep["meta"] = nested(300)
    wide.update({f"k{i}": i for i in range(5000)})
    highlevel_sim(fixture, page_size=100)

    report = run()

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(248,)]
    rejected = dict(query("""select regexp_extract(raw, '"_id": "([^"]+)"', 1), reason """
                          "from {ds}.highlevel_rejects"))
    assert rejected.keys() == {deep["_id"], wide["_id"]}
    assert "max_json_depth" in rejected[deep["_id"]]
    assert "max_columns" in rejected[wide["_id"]]
    lines = " ".join(stats.errors)
    assert f"import {deep['_id']} listed by /social-media-posting/loc1/csv" in lines
    assert stats.counts.get("listing pages not read", 0) == 0
    failing = "select unit_id, consecutive_failures from {ds}.upload_failing_units order by 1"
    assert query(failing) == sorted([(deep["_id"], 1), (wide["_id"], 1)])

    again = run()  # the mark stayed: read again, rejected again

    assert again.exit_code == 1
    assert query(failing) == sorted([(deep["_id"], 2), (wide["_id"], 2)])
    del deep["meta"]  # fixed at the source: the next read takes it

    assert run().exit_code == 1
    assert query(failing) == [(wide["_id"], 3)]
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(249,)]


def test_blank_keys_huge_numbers_and_nul_are_stored_in_their_documented_form(
        highlevel_sim, run, query, monkeypatch):
    monkeypatch.setenv("SOURCES__HIGHLEVEL__FETCH_POSTS", "false")  # the simulator makes
    # `count` posts of an import
    fixture = HighLevelFixture(locations={"loc1": 6}, unfinished_share=0.0)
    rows = fixture.imports["loc1"]
    rows[0][""] = "empty"
    rows[1]["  "] = "blank"
    rows[2]["count"] = 10 ** 20  # typed `number` in HighLevel's spec
    rows[3]["fileName"] = "a\u0000b.csv"
    rows[4]["count"] = 2 ** 63  # fits uint64 (orjson reads it), not int64
    highlevel_sim(fixture)

    report = run()

    stats = report.providers[0]
    assert report.exit_code == 0, stats.errors
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(6,)]
    got = {r[0]: r[1:] for r in query(
        "select _id, _empty_key, _blank_key, count_as_text, file_name "
        "from {ds}.highlevel_csv_uploads")}
    assert got[rows[0]["_id"]][0] == "empty"
    assert got[rows[1]["_id"]][1] == "blank"
    assert got[rows[2]["_id"]][2] == str(10 ** 20)
    assert got[rows[4]["_id"]][2] == str(2 ** 63)
    assert got[rows[3]["_id"]][3] == "a\u2400b.csv"
    assert stats.counts["empty keys renamed"] == 2
    assert stats.counts["integers beyond int64 kept as text"] == 2


def test_a_nul_in_a_status_is_loaded_and_the_history_recorded(polled_sim, warehouse,
                                                              monkeypatch):
    """On Postgres too, which refuses a NUL in text: the healthy jobs' history is recorded in
    the same run, and nothing is set aside."""
    lobstr = polled_sim.fixtures["lobstr"]
    tasks = [lobstr.add(f"{i:032x}", ["SUCCESS"]) for i in range(1, 4)]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
    polled_sim.inject(Fault(200, f"/v1/tasks/upload/{tasks[0]}", body={
        "id": tasks[0], "object": "task_upload", "state": "PROG\u0000RESS", "meta": None}))

    report = run_providers(["lobstr"], pipeline=warehouse.pipeline)

    assert report.exit_code == 0 and not report.set_aside, report.providers[0].errors
    assert dict(warehouse.query("select job_ref, native_status from {ds}.lobstr_status_history"
                                )) == {tasks[0]: "PROG\u2400RESS", tasks[1]: "SUCCESS",
                                       tasks[2]: "SUCCESS"}


@pytest.mark.parametrize("hostile", ["large", "gzip bomb"])
def test_an_upload_post_schedule_answer_over_the_body_bound_is_a_reject_row(
        polled_sim, run_polled, query, monkeypatch, hostile):
    up = polled_sim.fixtures["upload_post"]
    up.add("request", "r1", ["completed"])
    if hostile == "large":
        monkeypatch.setenv("SOURCES__UPLOAD_POST__MAX_BODY_BYTES", "4096")
        polled_sim.inject(Fault(200, "/api/uploadposts/schedule", times=10,
                                body={"pad": "x" * 10_000}))
    else:
        polled_sim.inject(gzip_bombed("/api/uploadposts/schedule", times=10))

    report = run_polled("upload_post")

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert query("select count(*) from {ds}.upload_post_uploads") == [(1,)]
    assert query("select endpoint from {ds}.upload_post_rejects") == [
        ("/api/uploadposts/schedule",)]


@pytest.mark.parametrize("status", [404, 500])
def test_an_upload_post_schedule_listing_refused_fails_alone_and_is_named(
        polled_sim, run_polled, query, status):
    up = polled_sim.fixtures["upload_post"]
    up.add("request", "r1", ["completed"])
    polled_sim.inject(Fault(status, "/api/uploadposts/schedule", times=100))

    report = run_polled("upload_post")

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert any(f"listing /api/uploadposts/schedule: HTTP {status}" in e for e in stats.errors)
    assert query("select count(*) from {ds}.upload_post_uploads") == [(1,)]
