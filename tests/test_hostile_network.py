"""A deliberately misbehaving API (`simulator.hostile`) on 127.0.0.1, distinctive credentials,
the real command line, and everything a run leaves behind scanned for them: redirects elsewhere,
base URLs and credentials that must not be used, echoed tokens, answers over every bound,
listings that lie or never end, and the providers' documented rate limits."""

from __future__ import annotations

import gzip
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import trustme

from simulator import Simulator, hostile
from simulator.ratelimit import WindowLimit
from sources.cleartax.fixture import ClearTaxFixture
from sources.common.redaction import variants
from sources.highlevel.fixture import HighLevelFixture
from sources.lobstr.fixture import LobstrFixture
from sources.upload_post.fixture import UploadPostFixture

REPO = Path(__file__).parents[1]

TOKENS = {"highlevel": "hl-TOKEN-5d1c9e77a2", "upload_post": "up-TOKEN-0b8f3e21c4",
          "lobstr": "lb-TOKEN-9a7d6c5b4e", "cleartax": "ct-TOKEN-3e2f1a0b9d"}
SECRET_KEYS = {"highlevel": "ACCESS_TOKEN", "upload_post": "API_KEY", "lobstr": "API_KEY",
               "cleartax": "AUTH_TOKEN"}
PATHS = {"highlevel": r"/social-media-posting/.*", "upload_post": r"/api/uploadposts/.*",
         "lobstr": r"/v1/tasks/upload/.*", "cleartax": r"/api/v0\.2/.*"}
TASKS = [f"{i:032x}" for i in range(1, 10)]
DB = "upload_status_data.duckdb"


@dataclass
class Api:
    """The four providers on one simulator, with a few jobs each."""

    sim: Simulator
    highlevel: HighLevelFixture
    upload_post: UploadPostFixture
    lobstr: LobstrFixture
    cleartax: ClearTaxFixture

    def env(self, base_url: str | None = None) -> dict[str, str]:
        base = base_url or self.sim.base_url
        env = {"SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(list(self.highlevel.imports)),
               "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(TASKS),
               "SOURCES__CLEARTAX__ACTIVITIES": json.dumps(["TE1/act-1", "TE1/act-2"]),
               "SOURCES__UPLOAD_POST__REQUEST_IDS": json.dumps(["req-1"]),
               "RUNTIME__REQUEST_MAX_ATTEMPTS": "2"}
        for name, token in TOKENS.items():
            env[f"SOURCES__{name.upper()}__BASE_URL"] = base
            env[f"SOURCES__{name.upper()}__{SECRET_KEYS[name]}"] = token
        return env


def make_api(tls: Any = None) -> Api:
    fixtures = dict(highlevel=HighLevelFixture(locations={"loc1": 6}, token=TOKENS["highlevel"]),
                    upload_post=UploadPostFixture(token=TOKENS["upload_post"]),
                    lobstr=LobstrFixture(token=TOKENS["lobstr"]),
                    cleartax=ClearTaxFixture(token=TOKENS["cleartax"]))
    for task in TASKS:
        fixtures["lobstr"].add(task, ["SUCCESS"])
    for activity in ("act-1", "act-2"):
        fixtures["cleartax"].add("TE1", activity, ["PROCESSED"])
    fixtures["upload_post"].add("request", "req-1", ["completed"])
    sim = Simulator(*fixtures.values(), tls=tls).start()
    return Api(sim, **fixtures)


@pytest.fixture
def api() -> Iterator[Api]:
    made = make_api()
    yield made
    made.sim.stop()


@pytest.fixture
def elsewhere() -> Iterator[Simulator]:
    """Another origin (another port): it must never receive anything."""
    sim = Simulator().start()
    yield sim
    sim.stop()


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`upload-status run` in a process of its own (its peak RSS in `.peak_mb`)."""
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
               "open(sys.argv[1], 'w').write(str(resource.getrusage("
               "resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)")
    rss = tmp_path / "peak_kb"
    done = subprocess.run(
        [sys.executable, "-c", wrapper, str(rss), sys.executable, "-m", "pipelines", "run",
         *args], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True, text=True, timeout=600)
    done.peak_mb = int(rss.read_text()) / 1024  # type: ignore[attr-defined]
    return done


def _texts_of(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    yield data
    if data[:2] == b"\x1f\x8b":
        yield gzip.decompress(data)
    if data[:4] == b"PAR1":
        yield str(pq.read_table(path).to_pylist()).encode()


def leaks(tmp_path: Path, done: subprocess.CompletedProcess[str] | None = None,
          secrets: tuple[str, ...] = tuple(TOKENS.values())) -> list[str]:
    """Where any form of a secret is found: the output, any file the run left (load packages,
    trace, state, decompressed and parquet read too), any value of any table."""
    forms = {f for s in secrets for f in variants(s)}
    found = []
    if done is not None:
        found += [f"output: {f}" for f in forms if f in done.stdout + done.stderr]
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".duckdb" and path.name != "peak_kb":
            for text in _texts_of(path):
                found += [f"{path}: {f}" for f in forms if f.encode() in text]
    if (tmp_path / DB).exists():
        con = duckdb.connect(str(tmp_path / DB), read_only=True)
        try:
            for schema, table in con.execute(
                    "select table_schema, table_name from information_schema.tables").fetchall():
                rows = str(con.execute(f'select * from "{schema}"."{table}"').fetchall())
                found += [f"table {table}: {f}" for f in forms if f in rows]
        finally:
            con.close()
    return found


def db_rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(tmp_path / DB), read_only=True)
    try:
        return con.execute(sql.replace("{ds}", "upload_status")).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_origin_gets_no_credential(api, elsewhere, tmp_path, status):
    for path in PATHS.values():
        api.sim.inject(hostile.redirect(path, elsewhere.base_url + "/collect", status, times=50))

    done = run_cli(tmp_path, api.env())

    assert done.returncode == 1, done.stderr
    assert elsewhere.requests() == []  # not even a request without its credential
    for name in PATHS:
        assert (f"{name}: the API redirected to {elsewhere.base_url}, another origin"
                in done.stderr), done.stderr
        assert f"SOURCES__{name.upper()}__BASE_URL" in done.stderr
    assert not (tmp_path / DB).exists() or db_rows(tmp_path, """select count(*) from
        information_schema.tables where table_name = 'lobstr_upload_tasks'""") == [(0,)]
    assert leaks(tmp_path, done) == []


def test_https_origin_never_downgrades_loops_end_and_same_origin_hops_are_followed(
        tmp_path, elsewhere):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    api = make_api(tls=context)
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        https = api.sim.base_url
        assert https.startswith("https://")
        downgrade = https.replace("https://", "http://")  # same host and port, plain http
        api.sim.inject(hostile.redirect(PATHS["lobstr"], elsewhere.base_url + "/x", 307, 50))
        api.sim.inject(hostile.redirect(PATHS["highlevel"], downgrade + "/x", 301, 50))
        api.sim.inject(hostile.redirect(PATHS["upload_post"], https + "/api/uploadposts/loop",
                                        302, 50))
        api.sim.inject(hostile.redirect(  # one hop on the same origin: followed
            PATHS["cleartax"], https + "/api/v0.2/taxable_entities/TE1/upload_activity/act-1/"
            "status", 302, times=1))

        done = run_cli(tmp_path, {**api.env(), "REQUESTS_CA_BUNDLE": str(tmp_path / "ca.pem")})
    finally:
        api.sim.stop()

    assert done.returncode == 1, done.stderr
    assert elsewhere.requests() == []
    assert f"lobstr: the API redirected to {elsewhere.base_url}" in done.stderr
    assert f"highlevel: the API redirected to {downgrade}, another origin" in done.stderr
    assert "upload_post: the API redirected more than 3 times" in done.stderr
    assert db_rows(tmp_path, "select count(*) from {ds}.cleartax_upload_activities") == [(2,)]
    assert "StopIteration" not in done.stderr
    assert leaks(tmp_path, done) == []


def test_base_urls_must_be_https_origins_without_userinfo_or_path(api, tmp_path):
    port = api.sim.base_url.rsplit(":", 1)[1]
    env = {**api.env(),
           "SOURCES__HIGHLEVEL__BASE_URL": "http://services.leadconnectorhq.com",
           "SOURCES__LOBSTR__BASE_URL": f"https://user:pw-SECRET-77aa@127.0.0.1:{port}",
           "SOURCES__CLEARTAX__BASE_URL": f"http://127.0.0.1:{port}/api",
           "SOURCES__UPLOAD_POST__BASE_URL": f"http://127.0.0.1:{port}/?key=1"}

    done = run_cli(tmp_path, env)

    assert done.returncode == 2, done.stderr
    assert api.sim.requests() == []
    for name in PATHS:
        assert f"SOURCES__{name.upper()}__BASE_URL must" in done.stderr, done.stderr
    assert "https:// for services.leadconnectorhq.com" in done.stderr
    assert leaks(tmp_path, done, (*TOKENS.values(), "pw-SECRET-77aa", "user:pw")) == []


def test_credentials_with_whitespace_or_controls_are_refused_unsent(api, tmp_path):
    env = {**api.env(), "SOURCES__LOBSTR__API_KEY": TOKENS["lobstr"] + "\n",
           "SOURCES__CLEARTAX__AUTH_TOKEN": " " + TOKENS["cleartax"],
           "SOURCES__UPLOAD_POST__API_KEY": TOKENS["upload_post"][:6] + "\x07" +
           TOKENS["upload_post"][6:]}

    done = run_cli(tmp_path, env)

    assert done.returncode == 2
    assert "SOURCES__LOBSTR__API_KEY has surrounding whitespace" in done.stderr
    assert "SOURCES__CLEARTAX__AUTH_TOKEN has surrounding whitespace" in done.stderr
    assert "SOURCES__UPLOAD_POST__API_KEY holds control characters" in done.stderr
    assert {r.provider for r in api.sim.requests()} == {"highlevel"}
    assert "Invalid header value" not in done.stderr
    assert leaks(tmp_path, done, (*TOKENS.values(), TOKENS["upload_post"][6:])) == []


def test_echoed_credentials_are_found_nowhere(api, tmp_path):
    task = PATHS["lobstr"][:-2]
    api.sim.inject(hostile.echo_credential(task + TASKS[0], 200,
                                           {"id": TASKS[0], "state": "SUCCESS", "meta": None}))
    api.sim.inject(hostile.echo_credential(task + TASKS[1], 400, {"error": "bad"}))
    api.sim.inject(hostile.echo_credential(task + TASKS[2], 422, {"error": "bad"}))
    api.sim.inject(hostile.echo_credential(PATHS["cleartax"], 500, {"errors": "down"}, times=9))
    api.sim.inject(hostile.echo_credential(PATHS["highlevel"], 422, {"statusCode": 422}))
    api.sim.inject(hostile.echo_credential(r"/api/uploadposts/status", 200,
                                           {"status": "completed", "results": []}))

    done = run_cli(tmp_path, api.env())

    assert done.returncode == 1, done.stderr  # ClearTax's 500 and the refused location
    assert "cleartax: HTTP 500" in done.stderr
    assert "token *** is not valid" in done.stderr + done.stdout
    echoed = db_rows(tmp_path, "select echo from {ds}.lobstr_upload_tasks where echo is not null")
    assert echoed == [("***",)]  # masked before it was loaded
    rejects = db_rows(tmp_path, "select raw from {ds}.lobstr_rejects")
    assert len(rejects) == 2 and all("***" in raw for (raw,) in rejects)
    assert leaks(tmp_path, done) == []


def test_answers_over_a_bound_are_rejected_and_everything_else_loads(api, tmp_path):
    task = PATHS["lobstr"][:-2]
    ok = {"state": "SUCCESS", "meta": {"valid": 1, "invalid": 0, "inserted": 1, "duplicates": 0}}
    api.sim.inject(hostile.gzip_bombed(task + TASKS[0]))
    api.sim.inject(hostile.huge_body(task + TASKS[1], megabytes=500))
    api.sim.inject(hostile.endless_body(task + TASKS[2]))
    api.sim.inject(hostile.trickle(task + TASKS[3], {**ok, "id": TASKS[3]}))
    api.sim.inject(hostile.deep_json(task + TASKS[4], ok, depth=300))
    api.sim.inject(hostile.wide_json(task + TASKS[5], ok, keys=5000))
    api.sim.inject(hostile.long_status(task + TASKS[6], "state", ok))
    api.sim.inject(hostile.slow_headers(task + TASKS[7], {**ok, "id": TASKS[7]}))
    api.sim.inject(hostile.deep_json(PATHS["highlevel"], {"results": {"csvs": [], "count": 0}}))
    env = {**api.env(), "SOURCES__REQUEST_DEADLINE_SECONDS": "4"}

    first = run_cli(tmp_path, env)

    print(f"peak RSS of the hostile run: {first.peak_mb:.0f} MB")
    assert first.peak_mb < 500, first.peak_mb
    reasons = dict(db_rows(tmp_path, "select job_ref, reason from {ds}.lobstr_rejects"))
    assert set(reasons) == set(TASKS[:8]), first.stderr
    assert "larger than 33554432 bytes" in reasons[TASKS[0]]
    assert "larger than" in reasons[TASKS[1]] and "larger than" in reasons[TASKS[2]]
    assert "not complete after 4 s" in reasons[TASKS[3]]
    assert "deeper than 32 levels" in reasons[TASKS[4]]
    assert "5002 fields" in reasons[TASKS[5]]
    assert "status of" in reasons[TASKS[6]]
    assert "no complete answer headers within" in reasons[TASKS[7]]
    assert db_rows(tmp_path, "select job_ref from {ds}.lobstr_upload_tasks") == [(TASKS[8],)]
    assert db_rows(tmp_path, "select reason from {ds}.highlevel_rejects") == [
        ("answer nested deeper than 32 levels (max_json_depth)",)]
    loaded = db_rows(tmp_path, "select provider, count(*) from {ds}.upload_jobs group by 1")
    assert dict(loaded) == {"lobstr": 1, "cleartax": 2, "upload_post": 1}, first.stderr
    assert "lobstr" in first.stdout and "poll errors 8" in first.stdout

    second = run_cli(tmp_path, env)  # the API behaves again: the rejected ones load now

    assert second.returncode == 0, second.stderr
    assert db_rows(tmp_path, "select count(*) from {ds}.lobstr_upload_tasks") == [(9,)]
    assert db_rows(tmp_path, "select count(*) from {ds}.highlevel_csv_uploads") == [(6,)]
    assert leaks(tmp_path, second) == []


@pytest.mark.parametrize("reported", [100, 0, -1])
def test_a_count_that_lies_low_loses_no_import(highlevel_sim, run, query, reported,
                                               monkeypatch):
    fixture = HighLevelFixture(locations={"loc1": 250}, reported_count=reported)
    highlevel_sim(fixture)
    # 250 imports' posts would be 250 requests: 25 s of the documented 100 per 10 s
    monkeypatch.setenv("SOURCES__HIGHLEVEL__FETCH_POSTS", "false")

    report = run()

    assert report.exit_code == 0, report.providers[0].errors
    assert query("select count(*) from {ds}.highlevel_csv_uploads") == [(250,)]


def test_a_listing_repeating_forever_fails_its_location_only(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 30, "loc_loop": 3})
    sim = highlevel_sim(fixture)
    page = [dict(r) for r in fixture.imports["loc_loop"]]
    sim.inject(hostile.Fault(None, r"/social-media-posting/loc_loop/csv", times=100_000,
                             answer=lambda req: hostile.Reply(
                                 200, {"results": {"csvs": page, "count": 10**9}})))

    report = run()

    assert report.exit_code == 1
    errors = " ".join(report.providers[0].errors)
    assert "location loc_loop: listing stopped" in errors and "repeats" in errors
    assert len(sim.requests(path_pattern=r".*/loc_loop/csv")) == 2
    assert query("select location_id, count(*) from {ds}.highlevel_csv_uploads group by 1 "
                 "order by 1") == [("loc1", 30), ("loc_loop", 3)]


def test_the_page_limit_stops_a_listing_that_never_ends(highlevel_sim, run, monkeypatch):
    fixture = HighLevelFixture(locations={"loc1": 5, "loc_big": 40})
    sim = highlevel_sim(fixture, page_size=10)
    monkeypatch.setenv("SOURCES__HIGHLEVEL__MAX_PAGES", "3")

    report = run()

    assert report.exit_code == 1
    assert "location loc_big: listing stopped: more than 3 pages" in " ".join(
        report.providers[0].errors)
    assert len(sim.requests(path_pattern=r".*/loc_big/csv")) == 3


def test_lobstr_keeps_its_documented_limit_by_default(polled_sim, run_polled, monkeypatch):
    """The declared 90 a minute is the source's default; the limiter keeps a limit, checked
    on the server's arrival log at a tenth of the period (the same code, 54 s less waiting)."""
    import inspect

    from sources import providers

    lobstr = providers()["lobstr"]
    defaults = inspect.signature(lobstr.source).parameters
    assert (defaults["rate_limit_requests"].default, defaults["rate_limit_period"].default) == (
        90, 60.0)
    fixture = polled_sim.fixtures["lobstr"]
    fixture.rate_limit = WindowLimit(9, 6.0)
    # 10 tasks: the last must wait for the first window to pass
    tasks = [fixture.add(f"{i:032x}", ["SUCCESS"]) for i in range(1, 11)]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
    monkeypatch.setenv("SOURCES__LOBSTR__RATE_LIMIT_REQUESTS", "9")
    monkeypatch.setenv("SOURCES__LOBSTR__RATE_LIMIT_PERIOD", "6")

    report = run_polled("lobstr")

    assert report.exit_code == 0, report.providers[0].errors
    arrivals = sorted(r.at for r in polled_sim.requests("lobstr"))
    assert len(arrivals) == 10 and fixture.rate_limit.refused == 0
    busiest = max(sum(1 for t in arrivals if start <= t < start + 6) for start in arrivals)
    assert busiest <= 9


def test_upload_post_rate_limit_headers_are_honoured(polled_sim, run_polled, monkeypatch):
    up = polled_sim.fixtures["upload_post"]
    up.rate_limit = WindowLimit(5, 1.0)
    refs = [up.add("request", f"r{i}", ["completed"], in_history=False) for i in range(15)]
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", json.dumps([r[8:] for r in refs]))
    monkeypatch.setenv("SOURCES__UPLOAD_POST__CONCURRENCY", "1")

    report = run_polled("upload_post")

    assert report.exit_code == 0, report.providers[0].errors
    assert up.rate_limit.refused == 0
    assert len(polled_sim.requests("upload_post", path_pattern=r".*/status")) == 15


def test_a_run_deadline_shorter_than_the_work_loads_what_was_polled(polled_sim, run_polled,
                                                                    query, monkeypatch):
    lobstr, cleartax = polled_sim.fixtures["lobstr"], polled_sim.fixtures["cleartax"]
    tasks = [lobstr.add(f"{i:032x}", ["SUCCESS"]) for i in range(1, 21)]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", json.dumps([cleartax.add(
        "TE1", "act-1", ["PROCESSED"])]))
    monkeypatch.setenv("SOURCES__LOBSTR__RUN_DEADLINE_SECONDS", "1")
    monkeypatch.setenv("SOURCES__LOBSTR__CONCURRENCY", "1")
    polled_sim.latency = 0.2  # 20 tasks one at a time: 4 s, past the deadline

    report = run_polled("lobstr", "cleartax")

    outcomes = {p.provider: p for p in report.providers}
    lobstr_run = outcomes["lobstr"]
    assert lobstr_run.outcome == "loaded" and outcomes["cleartax"].outcome == "loaded"
    assert any("the run passed its deadline of 1 s (SOURCES__LOBSTR__RUN_DEADLINE_SECONDS)"
               in w for w in lobstr_run.warnings), lobstr_run.warnings
    asked = {r.path.rsplit("/", 1)[1] for r in polled_sim.requests("lobstr")}
    assert 0 < len(asked) < 20
    # what was polled is loaded; the rest wait, and are counted
    loaded = {t for (t,) in query("select id from {ds}.lobstr_upload_tasks")}
    assert loaded == asked
    assert lobstr_run.counts["waiting for the next run"] == 20 - len(asked)
    assert query("select count(*) from {ds}.cleartax_upload_activities") == [(1,)]
    polled_sim.clear_log()
    monkeypatch.setenv("SOURCES__LOBSTR__RUN_DEADLINE_SECONDS", "3600")
    run_polled("lobstr")  # the next run polls only the ones that waited
    assert {r.path.rsplit("/", 1)[1] for r in polled_sim.requests("lobstr")} == \
        set(tasks) - asked


def test_long_strings_are_cut_to_the_documented_length(polled_sim, run_polled, query,
                                                       monkeypatch):
    cleartax = polled_sim.fixtures["cleartax"]
    ref = cleartax.add("TE1", "act-1", ["ABORTED"], error="E" * 10_000)
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", json.dumps([ref]))

    report = run_polled("cleartax")

    assert report.exit_code == 0
    assert report.providers[0].counts["long strings cut"] == 1
    (message,) = query("select error_message from {ds}.cleartax_upload_activities")[0]
    assert message == "E" * 4000 + " [cut: 10000 characters in all]"


def test_history_events_widening_the_table_past_its_bound_are_rejected(
        polled_sim, run_polled, query, monkeypatch):
    up = polled_sim.fixtures["upload_post"]
    up.add("request", "r1", ["completed"])
    monkeypatch.setenv("SOURCES__UPLOAD_POST__MAX_COLUMNS", "40")
    events = up.history()
    # each event has fewer fields than the bound; the second one's would take the table past it
    wide = [{**events[0], "request_id": f"r-{x}", **{f"{x}_{i}": i for i in range(20)}}
            for x in ("a", "b")]
    polled_sim.inject(hostile.Fault(None, r"/api/uploadposts/history", answer=lambda req: (
        hostile.Reply(200, {"history": [*events, *wide], "total": 3, "page": 1, "limit": 100}))))

    report = run_polled("upload_post")

    assert report.exit_code == 0, report.providers[0].errors
    assert sorted(query("select distinct request_id from {ds}.upload_post_history")) == [
        ("r-a",), ("r1",)]
    (reason,) = query("select reason from {ds}.upload_post_rejects")[0]
    assert "upload_post_history" in reason and "SOURCES__UPLOAD_POST__MAX_COLUMNS" in reason


def test_upload_post_history_repeating_forever_stops_and_its_jobs_still_load(
        polled_sim, run_polled, query):
    up = polled_sim.fixtures["upload_post"]
    for i in range(3):
        up.add("request", f"r{i}", ["completed"])
    page = up.history()
    polled_sim.inject(hostile.Fault(None, r"/api/uploadposts/history", times=100_000,
                                    answer=lambda req: hostile.Reply(200, {
                                        "history": page * 34, "total": 10**9, "page": 1,
                                        "limit": 100})))  # a full page, the same every time

    report = run_polled("upload_post")

    assert report.exit_code == 1
    assert "history listing stopped at page 2" in " ".join(report.providers[0].errors)
    assert len(polled_sim.requests("upload_post", path_pattern=r".*/history")) == 2
    assert query("select count(*) from {ds}.upload_post_uploads") == [(3,)]
