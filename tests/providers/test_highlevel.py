"""The HighLevel pipeline over real HTTP (bundled simulator) into a real DuckDB file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import cli, read_duckdb

from pipelines.run.runner import run_providers
from simulator import Fault, Simulator
from sources.highlevel.fixture import HighLevelFixture

LISTING = r"/social-media-posting/[^/]+/csv"
POSTS = r"/social-media-posting/[^/]+/csv/[^/]+"


def listing_requests(sim, location: str | None = None):
    return [r for r in sim.requests(method="GET", path_pattern=LISTING)
            if location is None or r.path.split("/")[2] == location]


def posts_requested_for(sim) -> set[str]:
    return {r.path.rsplit("/", 1)[1] for r in sim.requests(method="GET", path_pattern=POSTS)}


def ids_in_db(query) -> set[str]:
    return {row[0] for row in query("select _id from {ds}.highlevel_csv_uploads")}


def test_page_cap_below_requested_limit_reads_every_import(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 23}, page_cap=5)
    sim = highlevel_sim(fixture, page_size=10)

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert ids_in_db(query) == {r["_id"] for r in fixture.imports["loc1"]}
    pages = listing_requests(sim)
    # the server returned 5 of the 10 asked for: skip must advance by 5, not by 10
    assert [int(r.query["skip"]) for r in pages] == [0, 5, 10, 15, 20]
    assert {r.query["limit"] for r in pages} == {"10"}


def test_exact_multiple_of_page_size_asks_one_page_past_count(highlevel_sim, run, query):
    # a full page may be followed by more whatever `count` says (a count that lies low loses
    # nothing): an exact multiple costs one empty page
    fixture = HighLevelFixture(locations={"loc1": 20})
    sim = highlevel_sim(fixture, page_size=10)

    run()

    assert len(ids_in_db(query)) == 20
    assert [int(r.query["skip"]) for r in listing_requests(sim)] == [0, 10, 20]


def test_empty_location_beside_a_full_one(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"empty": 0, "full": 3})
    sim = highlevel_sim(fixture)

    report = run()

    assert report.exit_code == 0
    assert len(listing_requests(sim, "empty")) == 1
    assert query("select location_id, count(*) from {ds}.highlevel_csv_uploads group by 1") == [
        ("full", 3)]


def test_object_valued_csvs_as_the_official_schema_types_it(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 4, "loc_empty": 0}, csvs_as_object=True)
    sim = highlevel_sim(fixture)

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert ids_in_db(query) == {r["_id"] for r in fixture.imports["loc1"]}
    # one object per page; pages as large as the first are full, so one past `count`
    assert len(listing_requests(sim, "loc1")) == 5
    assert query("select count(*) from {ds}.highlevel_csv_uploads where _id is null") == [(0,)]


def test_an_empty_object_is_no_import(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 2})
    sim = highlevel_sim(fixture)
    empty_page = {"success": True, "statusCode": 200, "message": "Fetched CSV Upload Status",
                  "results": {"csvs": {}, "count": 0}}
    sim.inject(Fault(200, LISTING, body=empty_page))

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert report.providers[0].counts["jobs seen"] == 0
    assert "highlevel_csv_uploads" not in report.providers[0].rows_loaded


def test_two_locations_every_field_kept_and_typed(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"north": 7, "south": 5})
    highlevel_sim(fixture)

    run()

    rows = query("select location_id, count(*) from {ds}.highlevel_csv_uploads group by 1 "
                 "order by 1")
    assert rows == [("north", 7), ("south", 5)]
    one = fixture.imports["north"][0]
    got = query(f"""select file_name, file, status, "count", created_by, trace_id, origin_id,
                   approver, created_at from {{ds}}.highlevel_csv_uploads
                   where _id = '{one['_id']}'""")[0]
    assert got[:8] == (one["fileName"], one["file"], one["status"], one["count"],
                       one["createdBy"], one["traceId"], one["originId"], one["approver"])
    assert got[8].isoformat().startswith(one["createdAt"][:19])
    column_types = dict(query("""select column_name, data_type from information_schema.columns
        where table_schema = 'upload_status' and table_name = 'highlevel_csv_uploads'"""))
    assert column_types["created_at"].startswith("TIMESTAMP")
    accounts = query(f"""select a.value from {{ds}}.highlevel_csv_uploads__account_ids a
        join {{ds}}.highlevel_csv_uploads u on a._dlt_parent_id = u._dlt_id
        where u._id = '{one['_id']}' order by a._dlt_list_idx""")
    assert [a[0] for a in accounts] == one["accountIds"]


def test_second_run_without_change_adds_no_rows_and_fetches_no_posts(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 12})
    sim = highlevel_sim(fixture)
    tables = ["highlevel_csv_uploads", "highlevel_csv_uploads__account_ids",
              "highlevel_csv_posts", "highlevel_status_history"]

    run()
    before = {t: query(f"select count(*) from {{ds}}.{t}")[0][0] for t in tables}
    assert posts_requested_for(sim) == {r["_id"] for r in fixture.imports["loc1"]}
    sim.clear_log()

    report = run()

    assert {t: query(f"select count(*) from {{ds}}.{t}")[0][0] for t in tables} == before
    assert posts_requested_for(sim) == set()
    assert report.providers[0].counts["new"] == 0
    assert report.providers[0].counts["changed"] == 0


def test_status_change_updates_row_records_history_and_refetches_only_its_posts(
        highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 10})
    sim = highlevel_sim(fixture)
    run()
    target = fixture.imports["loc1"][3]
    fixture.set_status(target["_id"], "failed")
    target_before = query(f"select status from {{ds}}.highlevel_csv_uploads "
                          f"where _id = '{target['_id']}'")[0][0]
    sim.clear_log()

    report = run()

    assert query(f"select status from {{ds}}.highlevel_csv_uploads "
                 f"where _id = '{target['_id']}'") == [("failed",)]
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(10,)]
    assert posts_requested_for(sim) == {target["_id"]}
    history = query(f"""select previous_native_status, native_status, status
        from {{ds}}.highlevel_status_history where job_id = '{target['_id']}'
        order by observed_at""")
    first = (None, target_before, history[0][2])
    assert history == [first, (target_before, "failed", "failed")]
    assert report.providers[0].counts["changed"] == 1


def test_posts_fetched_only_for_new_or_changed_imports(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 30}, unfinished_share=0.5)
    sim = highlevel_sim(fixture)
    run()
    before = {r["_id"]: r["status"] for r in fixture.imports["loc1"]}
    sim.advance()
    new = fixture.add_imports("loc1", 2)
    changed = {r["_id"] for r in fixture.imports["loc1"] if before.get(r["_id"]) not in (
        None, r["status"])}
    assert changed, "the scenario must change some statuses"
    sim.clear_log()

    run()

    assert posts_requested_for(sim) == changed | {r["_id"] for r in new}
    failed = [r for r in fixture.imports["loc1"] if r["status"] == "failed"]
    expected_errors = sum(1 for r in failed for p in fixture.posts(r) if "errorMessage" in p)
    assert query("""select count(*) from {ds}.highlevel_csv_posts p
        join {ds}.highlevel_csv_uploads u on u._id = p.csv_id
        where u.status = 'failed' and p.error_message is not null""") == [(expected_errors,)]


def test_import_gone_before_its_posts_are_read_does_not_stop_the_others(highlevel_sim, run,
                                                                        query):
    fixture = HighLevelFixture(locations={"loc1": 4})
    sim = highlevel_sim(fixture)
    gone = fixture.imports["loc1"][1]["_id"]
    sim.inject(Fault(422, rf"/social-media-posting/loc1/csv/{gone}", body={
        "statusCode": 422, "message": ["csv not found"], "error": "Unprocessable Entity"}))

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert report.providers[0].counts["posts unavailable (import gone)"] == 1
    expected = sum(r["count"] for r in fixture.imports["loc1"] if r["_id"] != gone)
    assert query("select count(*) from {ds}.highlevel_csv_posts") == [(expected,)]


def test_posts_are_replaced_not_duplicated_on_refetch(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 5})
    highlevel_sim(fixture)
    run()
    expected = sum(r["count"] for r in fixture.imports["loc1"])

    run(full_refresh=True)

    assert query("select count(*) from {ds}.highlevel_csv_posts") == [(expected,)]
    assert query("""select count(*) from (select csv_id, post_index from {ds}.highlevel_csv_posts
        group by all having count(*) > 1)""") == [(0,)]


def test_unauthorized_names_provider_and_key_never_the_token(highlevel_sim, run, monkeypatch):
    highlevel_sim(HighLevelFixture(locations={"loc1": 3}))
    secret = "tok-DISTINCTIVE-4f1c9e-should-never-print"
    monkeypatch.setenv("SOURCES__HIGHLEVEL__ACCESS_TOKEN", secret)

    report = run()

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "failed"
    message = " ".join(stats.errors)
    assert "highlevel" in message and "401" in message
    assert "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in message
    assert secret not in message


def test_unknown_location_gets_the_servers_422_reason(highlevel_sim, run):
    highlevel_sim(HighLevelFixture(locations={"loc1": 3}), locations=["loc1", "nope"])

    report = run()

    assert report.exit_code == 1
    assert "422" in report.providers[0].errors[0]
    assert "location nope not found" in report.providers[0].errors[0]


def test_429_with_retry_after_and_5xx_are_retried(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 15})
    sim = highlevel_sim(fixture, page_size=10)
    sim.inject(Fault(429, LISTING, times=1, retry_after="1"))
    sim.inject(Fault(503, LISTING, times=2))

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert len(ids_in_db(query)) == 15
    statuses = [r.status for r in listing_requests(sim)]
    assert statuses[:4] == [429, 503, 503, 200]
    waited = listing_requests(sim)[1].at - listing_requests(sim)[0].at
    assert waited >= 0.95  # Retry-After: 1 honoured


def test_change_detection_survives_a_wiped_pipeline_folder(highlevel_sim, run, query,
                                                             tmp_path: Path, new_pipeline):
    fixture = HighLevelFixture(locations={"loc1": 6})
    sim = highlevel_sim(fixture)
    run()
    shutil.rmtree(tmp_path / "pipelines")
    sim.clear_log()

    report = run_providers(["highlevel"], pipeline=new_pipeline())

    assert report.providers[0].counts["new"] == 0  # state came back from the destination
    assert posts_requested_for(sim) == set()
    assert query("select count(*) from {ds}.highlevel_status_history") == [(6,)]


@pytest.mark.parametrize("missing", ["SOURCES__HIGHLEVEL__ACCESS_TOKEN",
                                     "SOURCES__HIGHLEVEL__LOCATION_IDS"])
def test_missing_configuration_is_a_usage_error_naming_the_key(highlevel_sim, run, monkeypatch,
                                                               missing):
    highlevel_sim(HighLevelFixture(locations={"loc1": 1}))
    monkeypatch.delenv(missing)

    report = run()

    assert report.exit_code == 2
    assert missing in report.providers[0].errors[0]


def test_location_ids_not_in_list_form_is_a_usage_error(highlevel_sim, run, monkeypatch):
    highlevel_sim(HighLevelFixture(locations={"loc1": 1}))
    monkeypatch.setenv("SOURCES__HIGHLEVEL__LOCATION_IDS", "loc1,loc2")

    report = run()

    assert report.exit_code == 2
    assert "SOURCES__HIGHLEVEL__LOCATION_IDS" in report.providers[0].errors[0]
    assert '["a", "b"]' in report.providers[0].errors[0]


def listing_count(sim) -> int:
    return len(listing_requests(sim))


def test_listing_is_read_incrementally_yet_catches_changes_and_new_imports(highlevel_sim, run,
                                                                          query, monkeypatch):
    monkeypatch.setenv("SOURCES__HIGHLEVEL__RATE_LIMIT_REQUESTS", "0")  # 300 posts fetches
    fixture = HighLevelFixture(locations={"loc1": 240, "loc2": 60}, unfinished_share=0.0,
                               rate_max=10_000)
    for location in ("loc1", "loc2"):  # the recent imports are the ones still running
        fixture.add_imports(location, 4, unfinished_share=1.0)
    sim = highlevel_sim(fixture, page_size=50)
    run()
    assert listing_count(sim) == 5 + 2  # everything, the first time (244 and 64 imports)

    sim.clear_log()
    report = run()  # nothing changed
    assert listing_count(sim) == 2  # one page per location
    assert sim.requests(path_pattern=POSTS) == []
    assert report.providers[0].counts["changed"] == 0

    sim.clear_log()
    sim.advance()
    new = fixture.add_imports("loc1", 3)
    report = run()
    assert listing_count(sim) == 2
    assert report.providers[0].counts["new"] == 3
    assert report.providers[0].counts["changed"] == 8  # every running import moved on
    assert len(ids_in_db(query)) == 311 and {r["_id"] for r in new} <= ids_in_db(query)

    sim.clear_log()
    run(full_refresh=True)
    assert listing_count(sim) == 5 + 2


def test_an_old_unfinished_import_is_still_watched(highlevel_sim, run, monkeypatch):
    monkeypatch.setenv("SOURCES__HIGHLEVEL__RATE_LIMIT_REQUESTS", "0")  # 200 posts fetches
    fixture = HighLevelFixture(locations={"loc1": 200}, unfinished_share=0.0, rate_max=10_000)
    old = fixture.imports["loc1"][120]  # newest first: on the third page of 50
    old["status"] = "pending"
    sim = highlevel_sim(fixture, page_size=50)
    run()
    sim.clear_log()

    run()
    assert listing_count(sim) == 3  # down to the page holding it, not further

    fixture.set_status(old["_id"], "completed")
    sim.clear_log()
    report = run()
    assert report.providers[0].counts["changed"] == 1
    sim.clear_log()
    run()
    assert listing_count(sim) == 1  # finished: nothing below the newest page to watch


def test_accounts_of_a_reloaded_import_replace_its_old_ones(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 5}, unfinished_share=1.0)
    highlevel_sim(fixture)
    run()
    changed, other = fixture.imports["loc1"][0], fixture.imports["loc1"][1]
    changed["accountIds"] = ["acc_new"]
    changed["status"] = "completed"

    run()

    def accounts(csv_id: str) -> list[str]:
        return [a[0] for a in query(f"""select a.value
            from {{ds}}.highlevel_csv_uploads__account_ids a
            join {{ds}}.highlevel_csv_uploads u on a._dlt_parent_id = u._dlt_id
            where u._id = '{csv_id}' order by a._dlt_list_idx""")]

    assert accounts(changed["_id"]) == ["acc_new"]
    assert accounts(other["_id"]) == other["accountIds"]
    total = sum(len(r["accountIds"]) for r in fixture.imports["loc1"])
    assert query("select count(*) from {ds}.highlevel_csv_uploads__account_ids") == [(total,)]
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(5,)]


def test_a_listing_that_shifts_while_paged_loads_each_import_once(highlevel_sim, warehouse):
    """New imports arriving while a run pages shift imports onto the next page: those named
    twice get one row, and both of their status changes are kept. The shift broke the
    listing's order: the next run reads it all again, which brings the row up to date (though
    it was finished at the first sighting, and is older than the listing overlap)."""
    fixture = HighLevelFixture(locations={"loc1": 25}, unfinished_share=0.0)
    sim = highlevel_sim(fixture, page_size=10)
    moved = fixture.imports["loc1"][9]  # last of page 1, first of page 2 once 3 more arrive
    moved["status"] = "completed"

    def imports_arrive_then_list(req):
        """Page 2 is asked for: 3 imports arrive and the moved one fails, then it is listed
        (in the server, before it answers: no race with the client)."""
        fixture.set_status(moved["_id"], "failed")
        fixture.add_imports("loc1", 3, unfinished_share=0.0)
        return fixture._list(req, "loc1")

    sim.inject(Fault(None, LISTING))  # page 1 as it is
    sim.inject(Fault(None, LISTING, answer=imports_arrive_then_list))
    q = warehouse.query

    def run():
        return run_providers(["highlevel"], pipeline=warehouse.pipeline)

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert report.providers[0].counts["imports listed twice"] == 3
    assert q("select count(*), count(distinct _id) from {ds}.highlevel_csv_uploads") == [
        (25, 25)]
    first = fixture.imports["loc1"][3:]  # the 25 there when the run began
    accounts = sum(len(r["accountIds"]) for r in first)
    assert q("select count(*), count(distinct _dlt_id) from "
             "{ds}.highlevel_csv_uploads__account_ids") == [(accounts, accounts)]
    status = f"select status from {{ds}}.highlevel_csv_uploads where _id = '{moved['_id']}'"
    assert q(status) == [("completed",)]  # its first sighting
    assert q(f"""select previous_native_status, native_status from
        {{ds}}.highlevel_status_history where job_id = '{moved['_id']}'
        order by previous_native_status nulls first""") == [
        (None, "completed"), ("completed", "failed")]

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert warehouse.pipeline.schemas["highlevel"].tables["highlevel_csv_uploads"][
        "write_disposition"] == "merge"
    assert q(status) == [("failed",)]
    assert report.providers[0].counts["listing pages"] == 3  # all of them
    assert q("select count(*), count(distinct _id) from {ds}.highlevel_csv_uploads") == [
        (28, 28)]
    accounts = sum(len(r["accountIds"]) for r in fixture.imports["loc1"])
    assert q("select count(*), count(distinct _dlt_id) from "
             "{ds}.highlevel_csv_uploads__account_ids") == [(accounts, accounts)]


def test_a_dataset_another_pipeline_filled_is_merged_into(highlevel_sim, tmp_path, db_path,
                                                          query):
    """A pipeline of another name (its own, empty state) loading into the same dataset merges
    into what the first one loaded."""
    import dlt

    fixture = HighLevelFixture(locations={"loc1": 12})
    highlevel_sim(fixture)

    def pipeline(name: str) -> dlt.Pipeline:
        return dlt.pipeline(name, destination=dlt.destinations.duckdb(str(db_path)),
                            dataset_name="upload_status", pipelines_dir=str(tmp_path / name))

    first = pipeline("upload_status")
    run_providers(["highlevel"], pipeline=first)
    assert first.schemas["highlevel"].tables["highlevel_csv_uploads"]["write_disposition"] == (
        "merge")
    other = pipeline("another_name")
    report = run_providers(["highlevel"], pipeline=other)

    assert report.exit_code == 0, report.providers[0].errors
    assert other.schemas["highlevel"].tables["highlevel_csv_uploads"]["write_disposition"] == (
        "merge")
    assert query("select count(*), count(distinct _id) from {ds}.highlevel_csv_uploads") == [
        (12, 12)]
    total = sum(len(r["accountIds"]) for r in fixture.imports["loc1"])
    assert query("select count(*) from {ds}.highlevel_csv_uploads__account_ids") == [(total,)]


# --- a token per location (sub-account Private Integration Tokens) ----------------------------

def test_each_location_is_read_with_its_own_token_and_a_refused_one_fails_alone(
        tmp_path, monkeypatch):
    """LOCATION_TOKENS alone: its keys are the locations; each request carries the token of the
    location it names (the simulator refuses another location's, as the API does); a location
    whose token is refused fails alone, naming the key; no token is shown or stored."""
    tokens = {"loc_a": "pit-A-7c1e5d93", "loc_b": "pit-B-2f8a6b10", "loc_c": "pit-C-9d4e0a57"}
    fixture = HighLevelFixture(locations={"loc_a": 4, "loc_b": 3, "loc_c": 2}, token="unused",
                               location_tokens={**tokens, "loc_c": "pit-C-rotated-51aa"})
    with Simulator(fixture) as sim:
        env = {"SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
               "SOURCES__HIGHLEVEL__LOCATION_TOKENS": json.dumps(tokens),
               "RUNTIME__LOG_LEVEL": "DEBUG", "COLUMNS": "200"}
        done = cli("run", "--source", "highlevel", cwd=tmp_path, env=env)
        sent = {(r.path.split("/")[2], r.headers["authorization"]) for r in sim.requests()}

    assert done.returncode == 1, done.stderr
    assert "partly failed" in done.stdout
    assert ("location loc_c: the API refused its token (HTTP 401: "
            in done.stderr) and "SOURCES__HIGHLEVEL__LOCATION_TOKENS[loc_c]" in done.stderr
    assert sent == {(loc, f"Bearer {token}") for loc, token in tokens.items()}
    assert read_duckdb(tmp_path / "upload_status_data.duckdb", """select location_id, count(*)
        from {ds}.highlevel_csv_uploads group by 1 order by 1""") == [("loc_a", 4), ("loc_b", 3)]
    for token in tokens.values():
        assert token not in done.stdout + done.stderr
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path


def test_location_tokens_and_the_shared_token_together(highlevel_sim, run, query, monkeypatch):
    """LOCATION_IDS names the locations; those without a token of their own use ACCESS_TOKEN."""
    fixture = HighLevelFixture(locations={"loc_a": 2, "loc_b": 5},
                               location_tokens={"loc_a": "pit-A-only"})
    highlevel_sim(fixture)  # ACCESS_TOKEN: the fixture's agency-wide token; both locations
    monkeypatch.setenv("SOURCES__HIGHLEVEL__LOCATION_TOKENS", '{"loc_a": "pit-A-only"}')

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert query("""select location_id, count(*) from {ds}.highlevel_csv_uploads
        group by 1 order by 1""") == [("loc_a", 2), ("loc_b", 5)]


@pytest.mark.parametrize(("env", "named"), [
    ({"SOURCES__HIGHLEVEL__LOCATION_TOKENS": '{"loc_a": "t"}',
      "SOURCES__HIGHLEVEL__LOCATION_IDS": '["loc_a", "loc_b"]'},
     "no token for location(s) loc_b: add them to SOURCES__HIGHLEVEL__LOCATION_TOKENS or set "
     "SOURCES__HIGHLEVEL__ACCESS_TOKEN"),
    ({"SOURCES__HIGHLEVEL__LOCATION_TOKENS": '["loc_a"]'},
     "SOURCES__HIGHLEVEL__LOCATION_TOKENS must map location ids to tokens"),
    ({"SOURCES__HIGHLEVEL__LOCATION_TOKENS": '{"loc_a": " pasted\\n"}'},
     "SOURCES__HIGHLEVEL__LOCATION_TOKENS[loc_a] has surrounding whitespace"),
    ({}, "missing configuration SOURCES__HIGHLEVEL__ACCESS_TOKEN or "
         "SOURCES__HIGHLEVEL__LOCATION_TOKENS"),
])
def test_location_token_mistakes_exit_2_naming_the_key(tmp_path, env, named):
    done = cli("run", "--source", "highlevel", cwd=tmp_path,
               env={"SOURCES__HIGHLEVEL__BASE_URL": "http://127.0.0.1:9", **env},
               inherit={k: v for k, v in os.environ.items()
                        if not k.startswith("SOURCES__HIGHLEVEL__")})
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr.replace("\n", "")
    assert "Traceback" not in done.stderr


def test_location_tokens_as_a_toml_table_in_secrets_toml(tmp_path):
    fixture = HighLevelFixture(locations={"loc_a": 3, "loc_b": 1}, token="unused",
                               location_tokens={"loc_a": "pit-A-toml-1", "loc_b": "pit-B-toml-2"})
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        '[sources.highlevel.location_tokens]\nloc_a = "pit-A-toml-1"\nloc_b = "pit-B-toml-2"\n')
    with Simulator(fixture) as sim:
        done = cli("run", "--source", "highlevel", cwd=tmp_path,
                   env={"SOURCES__HIGHLEVEL__BASE_URL": sim.base_url},
                   inherit={k: v for k, v in os.environ.items()
                            if not k.startswith("SOURCES__HIGHLEVEL__")})

    assert done.returncode == 0, done.stderr
    assert read_duckdb(tmp_path / "upload_status_data.duckdb", """select location_id, count(*)
        from {ds}.highlevel_csv_uploads group by 1 order by 1""") == [("loc_a", 3), ("loc_b", 1)]


def test_prune_reads_with_the_location_s_own_token(tmp_path):
    fixture = HighLevelFixture(locations={"loc_a": 6}, token="unused", failure_share=0.5,
                               unfinished_share=0.0, location_tokens={"loc_a": "pit-A-prune-3"})
    failed = sum(r["status"] == "failed" for r in fixture.imports["loc_a"])
    inherit = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__HIGHLEVEL__")}
    with Simulator(fixture) as sim:
        env = {"SOURCES__HIGHLEVEL__BASE_URL": sim.base_url, "COLUMNS": "200",
               "SOURCES__HIGHLEVEL__LOCATION_TOKENS": '{"loc_a": "pit-A-prune-3"}'}
        listed = cli("highlevel-prune", "--location", "loc_a", "--status", "failed",
                     cwd=tmp_path, env=env, inherit=inherit)
        other = cli("highlevel-prune", "--location", "loc_b", "--status", "failed",
                    cwd=tmp_path, env=env, inherit=inherit)
        sent = {r.headers["authorization"] for r in sim.requests()}

    assert listed.returncode == 0, listed.stderr
    assert f"dry run: {failed} would be deleted" in listed.stdout and failed > 0
    assert sent == {"Bearer pit-A-prune-3"}
    assert other.returncode == 2
    assert ("no token for location(s) loc_b: add them to SOURCES__HIGHLEVEL__LOCATION_TOKENS "
            "or set SOURCES__HIGHLEVEL__ACCESS_TOKEN") in " ".join(other.stderr.split())
    assert "pit-A-prune-3" not in listed.stdout + listed.stderr + other.stderr
