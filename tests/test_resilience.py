"""Issue 5's acceptance over real HTTP: retries and rate limits, provider isolation, bad input,
id injection and HighLevel prune (crash safety: test_crash_safety.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path

from conftest import cli

from simulator import Fault, Simulator
from sources import providers
from sources.highlevel.fixture import HighLevelFixture

TASK = "0" * 31 + "{}"


def max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if s <= t < s + window) for s in times)


def test_rate_limit_per_location_is_kept_and_never_answered_429(highlevel_sim, run, query,
                                                                 monkeypatch):
    fixture = HighLevelFixture(locations={"loc1": 12, "loc2": 12}, unfinished_share=1.0,
                               rate_max=5, rate_window=1.0)
    sim = highlevel_sim(fixture, page_size=10)
    monkeypatch.setenv("SOURCES__HIGHLEVEL__RATE_LIMIT_REQUESTS", "5")
    monkeypatch.setenv("SOURCES__HIGHLEVEL__RATE_LIMIT_PERIOD", "1")

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(24,)]
    for location in ("loc1", "loc2"):
        hits = [r for r in sim.requests() if r.path.split("/")[2] == location]
        assert len(hits) == 14  # 2 listing pages + the posts of 12 new imports
        assert {r.status for r in hits} == {200}
        # as the server counts arrivals: 5 in any window of 1 s, per location (a request
        # starts `period` after the answer of the one 5 places before: no slack needed)
        assert max_in_window([r.at for r in hits], 1.0) <= 5


def test_server_rate_headers_alone_keep_the_client_under_the_limit(highlevel_sim, run,
                                                                   monkeypatch):
    fixture = HighLevelFixture(locations={"loc1": 8}, unfinished_share=1.0, rate_max=4,
                               rate_window=1.0)
    sim = highlevel_sim(fixture, page_size=10)
    monkeypatch.setenv("SOURCES__HIGHLEVEL__RATE_LIMIT_REQUESTS", "0")  # no client-side limit

    assert run().exit_code == 0
    assert {r.status for r in sim.requests()} == {200}  # X-RateLimit-Remaining: 0 obeyed
    assert len(sim.requests()) == 9


def test_polled_provider_429_with_an_http_date_then_5xx_then_success(polled_sim, run_polled,
                                                                    query, monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    lobstr.add(TASK.format(1), ["SUCCESS"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps([TASK.format(1)]))
    retry_at = int(time.time()) + 4  # whole seconds, as an HTTP date has them
    polled_sim.inject(Fault(429, r"/v1/tasks/upload/.*", retry_after=formatdate(
        retry_at, usegmt=True)))
    polled_sim.inject(Fault(502, r"/v1/tasks/upload/.*", times=2))

    report = run_polled("lobstr")

    assert report.exit_code == 0, report.providers[0].errors
    hits = polled_sim.requests("lobstr")
    assert [r.status for r in hits] == [429, 502, 502, 200]
    assert retry_at <= hits[1].at  # not retried before the date (the server's clock)
    assert query("select state from {ds}.lobstr_upload_tasks") == [("SUCCESS",)]


def test_one_provider_down_and_one_failing_do_not_stop_the_third(polled_sim, tmp_path: Path,
                                                                 monkeypatch):
    lobstr, cleartax = polled_sim.fixtures["lobstr"], polled_sim.fixtures["cleartax"]
    lobstr.add(TASK.format(2), ["SUCCESS"])
    activity = cleartax.add("te1", "act1", ["PROCESSED"])
    polled_sim.inject(Fault(500, r"/api/v0.2/.*", times=100))
    env = {"SOURCES__UPLOAD_POST__BASE_URL": "http://127.0.0.1:9",  # nothing listens there
           "SOURCES__UPLOAD_POST__REQUEST_IDS": '["r1"]',
           "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([TASK.format(2)]),
           "SOURCES__CLEARTAX__ACTIVITIES": json.dumps([activity]),
           "RUNTIME__REQUEST_MAX_ATTEMPTS": "2", "COLUMNS": "160"}

    result = cli("run", cwd=tmp_path, env=env)

    assert result.returncode == 1, result.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in result.stdout.splitlines() if line.count("│") > 3}
    assert rows["upload_post"] == "failed" and rows["cleartax"] == "failed"
    assert rows["lobstr"] == "loaded"
    assert "upload_post: cannot reach the API" in result.stderr
    assert "SOURCES__UPLOAD_POST__BASE_URL" in result.stderr
    assert "cleartax: HTTP 500" in result.stderr


def test_bad_records_and_unreadable_pages_are_kept_and_counted(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 5, "loc2": 6}, unfinished_share=1.0)
    rows = fixture.imports["loc2"]
    missing_id = rows[0].pop("_id") and rows[0]
    rows[1]["count"] = "twelve"
    rows[2]["createdAt"] = "not a date"
    rows[3]["status"] = "paused_by_admin"
    sim = highlevel_sim(fixture, page_size=10)
    html = b"<html><body>502 Bad Gateway</body></html>"
    sim.inject(Fault(200, r"/social-media-posting/loc1/csv", times=50, body=html,
                     content_type="text/html"))

    report = run()

    stats = report.providers[0]
    # the unreadable page and the import without an id failed alone (issue 30)
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert stats.counts["rejected: unreadable body"] == 1
    assert stats.counts["rejected: import without a usable _id"] == 1
    assert stats.counts["fields kept verbatim (wrong type)"] == 2
    assert stats.counts["bad input"] == 4
    # loc1 was retried (dlt's attempts) and then kept verbatim; loc2's good imports all loaded
    assert len([r for r in sim.requests() if "/loc1/" in r.path]) >= 2
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(5,)]
    rejects = dict(query("select reason, raw from {ds}.highlevel_rejects"))
    assert rejects["unreadable body"] == html.decode()
    assert json.loads(rejects["import without a usable _id"]) == missing_id
    assert query("select count__v_text from {ds}.highlevel_csv_uploads "
                 "where count__v_text is not null") == [("twelve",)]
    assert query("select created_at__v_text from {ds}.highlevel_csv_uploads "
                 "where created_at__v_text is not null") == [("not a date",)]
    assert query("select native_status, status from {ds}.upload_jobs where native_status = "
                 "'paused_by_admin'") == [("paused_by_admin", "unknown")]


def test_a_malformed_status_answer_never_drops_the_other_jobs(polled_sim, run_polled, query,
                                                            monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    tasks = [lobstr.add(TASK.format(i), ["SUCCESS"]) for i in range(3, 7)]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
    truncated = Fault(200, f"/v1/tasks/upload/{tasks[1]}", times=50, body=b'{"state": "SUCC')
    polled_sim.inject(truncated)
    polled_sim.inject(Fault(200, f"/v1/tasks/upload/{tasks[2]}", times=1,
                            body={"state": "SUCCESS", "meta": {"valid": "lots"}}))

    report = run_polled("lobstr")

    stats = report.providers[0]
    # the unreadable job fails alone, named: the run partly failed (issue 30)
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert any(f"lobstr job {tasks[1]}: HTTP 200 with" in e for e in stats.errors)
    assert stats.counts["poll errors"] == 1 and stats.counts["bad input"] == 2
    loaded = dict(query("select id, state from {ds}.lobstr_upload_tasks"))
    assert set(loaded) == {tasks[0], tasks[2], tasks[3]}
    assert query("select job_ref, raw from {ds}.lobstr_rejects") == [
        (tasks[1], '{"state": "SUCC')]
    assert query("select meta__valid__v_text from {ds}.lobstr_upload_tasks "
                 "where meta__valid__v_text is not null") == [("lots",)]
    polled_sim.clear_log()
    truncated.times = 0
    run_polled("lobstr")  # the unreadable one was not finished: asked again, now it answers
    assert [r.path for r in polled_sim.requests("lobstr")] == [f"/v1/tasks/upload/{tasks[1]}"]


def test_ids_with_path_and_query_characters_stay_one_path_segment(highlevel_sim, polled_sim,
                                                                  run_polled, query,
                                                                  monkeypatch, pipeline):
    weird = "we/ird?x=1#frag%2F and ..%"
    fixture = HighLevelFixture(locations={weird: 3, "plain": 2})
    sim = highlevel_sim(fixture)
    lobstr = polled_sim.fixtures["lobstr"]
    lobstr.add(weird, ["SUCCESS"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps([weird]))

    report = run_polled("highlevel", "lobstr")

    assert report.exit_code == 0, [p.errors for p in report.providers]
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(5,)]
    assert query("select location_id from {ds}.highlevel_csv_uploads group by 1 order by 1"
                 ) == [("plain",), (weird,)]
    assert query("select id from {ds}.lobstr_upload_tasks") == [(weird,)]
    listing = [r for r in sim.requests() if r.path.endswith("/csv")]
    assert {r.path for r in listing} == {"/social-media-posting/plain/csv",
                                         "/social-media-posting/we%2Fird%3Fx%3D1%23frag%252F%20"
                                         "and%20..%25/csv"}
    assert all(set(r.query) <= {"skip", "limit"} for r in listing)


def test_invalid_ids_are_rejected_by_name_and_the_valid_ones_still_load(polled_sim, tmp_path):
    lobstr = polled_sim.fixtures["lobstr"]
    lobstr.add(TASK.format(7), ["SUCCESS"])
    ids = [TASK.format(7), "..", "two\nlines", " padded"]

    result = cli("run", "--source", "lobstr", cwd=tmp_path,
                 env={"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(ids)})

    assert result.returncode == 2
    for bad in ("'..'", "'two\\nlines'", "' padded'"):
        assert bad in result.stderr
    assert [r.path for r in polled_sim.requests("lobstr")] == [
        f"/v1/tasks/upload/{TASK.format(7)}"]


def test_prune_lists_without_yes_and_deletes_exactly_the_matching_set(highlevel_sim, tmp_path):
    now = datetime.now(timezone.utc)
    fixture = HighLevelFixture(locations={"loc1": 40}, unfinished_share=0.3, now=now)
    sim = highlevel_sim(fixture)
    assert cli("run", cwd=tmp_path).returncode == 0
    cutoff = now - timedelta(days=10)
    expected = {r["_id"] for r in fixture.imports["loc1"] if r["status"] == "failed" and
                datetime.fromisoformat(r["createdAt"].replace("Z", "+00:00")) < cutoff}
    assert expected and len(expected) < 40
    args = ("highlevel-prune", "--location", "loc1", "--status", "failed", "--older-than", "10")

    dry = cli(*args, cwd=tmp_path, env={"COLUMNS": "200"})

    assert dry.returncode == 0, dry.stderr
    assert sim.requests(method="DELETE") == []
    assert {i for i in expected if i in dry.stdout} == expected
    assert f"{len(expected)} would be deleted, nothing was deleted" in dry.stdout

    gone_first, busy = sorted(expected)[:2]  # deleted elsewhere meanwhile: the API answers
    sim.inject(Fault(422, rf"/social-media-posting/loc1/csv/{gone_first}", method="DELETE",
                     body={"statusCode": 422, "message": [f"csv {gone_first} not found"]}))
    # a 422 that is not "not found": the import still exists, nothing is recorded of it
    sim.inject(Fault(422, rf"/social-media-posting/loc1/csv/{busy}", method="DELETE",
                     body={"statusCode": 422, "message": ["Csv is being processed"]}))
    done = cli(*args, "--yes", cwd=tmp_path, env={"COLUMNS": "200"})

    assert done.returncode == 1, done.stderr
    deleted = {r.path.rsplit("/", 1)[1] for r in sim.requests(method="DELETE")}
    assert deleted == expected
    assert "already gone (HTTP 422)" in done.stdout
    assert "Csv is being processed" in " ".join(done.stdout.split())
    expected.discard(busy)
    for output in (dry.stdout, dry.stderr, done.stdout, done.stderr):
        assert fixture.token not in output
    assert f"{len(expected)} deleted or already gone, 1 failed" in done.stdout
    assert cli("run", cwd=tmp_path).returncode == 0
    db = tmp_path / "upload_status_data.duckdb"
    from conftest import read_duckdb
    cancelled = read_duckdb(db, "select job_id from {ds}.upload_jobs where status = 'cancelled'")
    assert {r[0] for r in cancelled} == expected
    history = read_duckdb(db, "select job_id from {ds}.upload_job_status_history "
                              "where status = 'cancelled'")
    assert sorted(r[0] for r in history) == sorted(expected)  # once each


def test_prune_needs_a_filter_and_a_valid_location(highlevel_sim, tmp_path):
    highlevel_sim()
    no_filter = cli("highlevel-prune", "--location", "loc_demo_1", "--yes", cwd=tmp_path)
    assert no_filter.returncode == 2 and "at least one filter" in no_filter.stderr
    bad = cli("highlevel-prune", "--location", "..", "--status", "failed", cwd=tmp_path)
    assert bad.returncode == 2 and "relative path segment" in bad.stderr


def test_a_duckdb_file_held_by_another_process_is_a_clear_usage_error(highlevel_sim, tmp_path):
    highlevel_sim()
    assert cli("run", cwd=tmp_path).returncode == 0
    holder = subprocess.Popen(  # a BI tool keeping the file open for writing
        [sys.executable, "-c", "import duckdb, time; c = duckdb.connect("
         "'upload_status_data.duckdb'); print('open', flush=True); time.sleep(60)"],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        for command in (("run",), ("report",)):  # a run waits 1 s for a reader to go
            result = cli(*command, cwd=tmp_path, env={
                "COLUMNS": "400", "DESTINATION__DUCKDB__READER_WAIT_SECONDS": "1"})
            assert result.returncode == 2, result.stderr
            assert "by another process" in result.stderr  # in use / being written
            assert f"PID {holder.pid}" in result.stderr
            assert "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_every_command_keeps_every_token_out_of_output_and_files(tmp_path: Path):
    """Distinctive tokens for every provider (the registry's, each with its demo scenario's
    jobs); every command, failing ones included, with dlt's debug logging; then stdout, stderr
    and every file under the folder are searched."""
    start = datetime.now(timezone.utc)
    scenarios = {name: package.scenario(start) for name, package in providers().items()}
    tokens = {name: f"tok-{name}-DISTINCTIVE-7f3a9c-{i}"
              for i, name in enumerate(scenarios)}
    wrong = "tok-WRONG-DISTINCTIVE-5d1e22"
    refs = {}
    for name, scenario in scenarios.items():
        scenario.fixture.token = tokens[name]
        refs[name] = scenario.submit(1, start)
    scenarios["lobstr"].fixture.add(TASK.format(9), ["PENDING", "SUCCESS"])
    location = json.loads(scenarios["highlevel"].env("")["SOURCES__HIGHLEVEL__LOCATION_IDS"])[0]
    with Simulator(*(s.fixture for s in scenarios.values())) as sim:
        env = {"RUNTIME__LOG_LEVEL": "DEBUG", "COLUMNS": "200"}
        for name, scenario in scenarios.items():
            env |= scenario.env(sim.base_url) | scenario.config(refs[name])
        results = [
            cli("run", cwd=tmp_path, env=env),
            cli("track", "lobstr", TASK.format(9), cwd=tmp_path, env=env),
            cli("run", cwd=tmp_path, env={**env, "SOURCES__LOBSTR__API_KEY": wrong,
                                          "SOURCES__HIGHLEVEL__ACCESS_TOKEN": wrong}),
            cli("report", "--format", "json", "--chart", "chart.png", cwd=tmp_path, env=env),
            cli("report", cwd=tmp_path, env=env),
            cli("highlevel-prune", "--location", location, "--status", "completed",
                "--status", "failed", cwd=tmp_path, env=env),
            cli("highlevel-prune", "--location", location, "--status", "failed", "--yes",
                cwd=tmp_path, env=env),
            cli("highlevel-prune", "--location", location, "--status", "failed", "--yes",
                cwd=tmp_path, env={**env, "SOURCES__HIGHLEVEL__ACCESS_TOKEN": wrong}),
        ]
    assert [r.returncode for r in results] == [0, 0, 1, 0, 0, 0, 0, 2]
    assert "SOURCES__LOBSTR__API_KEY" in results[2].stderr
    assert "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in results[2].stderr
    secrets = [*tokens.values(), wrong]
    for result in results:
        for secret in secrets:
            assert secret not in result.stdout + result.stderr, result.args
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in files) and any(p.suffix == ".png" for p in files)
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, path
