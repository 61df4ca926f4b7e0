"""Upload-Post, Lobstr and ClearTax job tracking over real HTTP (bundled simulator) into a real
DuckDB file: what is polled, what is recorded, and what survives a wiped pipeline folder."""

from __future__ import annotations

import shutil
from collections import Counter
from urllib.parse import unquote

import pytest

from pipelines.runner import run_providers
from pipelines.track import track_jobs

# native statuses after which each provider's simulator never changes a job again
FINISHED = {"upload_post": {"completed", "failed"}, "lobstr": {"SUCCESS", "FAILURE"},
            "cleartax": {"PROCESSED", "ABORTED"}}
HISTORY_TABLES = ("upload_post_status_history", "lobstr_status_history",
                  "cleartax_status_history")


def polled_refs(sim) -> list[str]:
    """The job of every status request in the simulator's log, written as `track` writes it."""
    refs = []
    for r in sim.requests(method="GET"):
        if r.provider == "upload_post" and r.path.endswith("/status"):
            kind = "request" if "request_id" in r.query else "job"
            refs.append(f"{kind}:{r.query[kind + '_id']}")
        elif r.provider == "lobstr":
            refs.append(unquote(r.path.rsplit("/", 1)[1]))
        elif r.provider == "cleartax":
            parts = r.path.split("/")  # /api/v0.2/taxable_entities/TE/upload_activity/ID/status
            refs.append(f"{unquote(parts[4])}/{unquote(parts[6])}")
    return refs


def history_rows(query) -> Counter[str]:
    rows = Counter()
    present = {t for (t,) in query("select table_name from information_schema.tables")}
    for table in set(HISTORY_TABLES) & present:  # a table exists once it has had rows
        for (job_ref,) in query(f"select job_ref from {{ds}}.{table}"):
            rows[job_ref] += 1
    return rows


def statuses(query, table: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in query(
        f"select job_ref, native_status, canonical_status from {{ds}}.{table}")}


def test_four_runs_poll_exactly_the_unfinished_jobs_and_record_each_status_once(
        polled_sim, pipeline, run_polled, query, monkeypatch):
    up, lb, ct = (polled_sim.fixtures[n] for n in ("upload_post", "lobstr", "cleartax"))
    steps: dict[str, tuple[str, list[str]]] = {}

    def job(provider: str, ref: str, trajectory: list[str]) -> str:
        steps[ref] = (provider, trajectory)
        return ref

    by_config = [
        job("upload_post", up.add("request", "req-a", ["pending", "in_progress", "completed"],
                                  platforms=["x", "linkedin", "tiktok"],
                                  failures={"tiktok": "Account token expired"}),
            ["pending", "in_progress", "completed"]),
        job("lobstr", lb.add("a" * 32, ["PENDING", "PROGRESS", "SUCCESS"]),
            ["PENDING", "PROGRESS", "SUCCESS"]),
        job("cleartax", ct.add("te-1", "act-1", ["INIT", "PROCESSING", "PROCESSED"]),
            ["INIT", "PROCESSING", "PROCESSED"]),
    ]
    by_track = {
        "upload_post": job("upload_post", up.add("job", "job-b", ["pending", "completed"],
                                                 in_history=False), ["pending", "completed"]),
        "lobstr": job("lobstr", lb.add("b" * 32, ["PENDING", "SUCCESS"]), ["PENDING", "SUCCESS"]),
        "cleartax": job("cleartax", ct.add("te-2", "act-2", ["UPLOADED", "ABORTED"]),
                        ["UPLOADED", "ABORTED"]),
    }
    # found only in the history listing: it already has a platform result
    job("upload_post", up.add("request", "req-d", ["in_progress", "completed"]),
        ["in_progress", "completed"])
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", '["req-a"]')
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{"a" * 32}"]')
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", '["te-1/act-1"]')
    for provider, ref in by_track.items():
        assert track_jobs(provider, [ref], pipeline=pipeline).registered == 1
    assert by_config  # registered through config

    reports = []
    for run_index in range(4):
        # a job is polled unless the previous run saw it finished
        expected = sorted(
            ref for ref, (provider, trajectory) in steps.items()
            if run_index == 0 or trajectory[min(run_index - 1, len(trajectory) - 1)]
            not in FINISHED[provider])
        polled_sim.clear_log()

        report = run_polled()

        assert report.exit_code == 0, [p.errors for p in report.providers]
        assert sorted(polled_refs(polled_sim)) == expected, f"run {run_index + 1}"
        reports.append(report)
        polled_sim.advance()

    assert polled_refs(polled_sim) == []  # run 4: nothing left to poll
    assert sum(p.counts["polled"] for p in reports[3].providers) == 0
    assert history_rows(query) == {ref: len(set(t)) for ref, (_, t) in steps.items()}
    # run 2: req-a, a*32 and te-1 moved on; job-b, b*32, te-2 and req-d finished
    second = {p.provider: p.counts for p in reports[1].providers}
    assert {n: (c["polled"], c["changed"], c["unfinished"]) for n, c in second.items()} == {
        "upload_post": (3, 3, 1), "lobstr": (2, 2, 1), "cleartax": (2, 2, 1)}
    final = statuses(query, "upload_post_uploads")
    assert final["request:req-a"] == ("completed", "partial")  # tiktok failed, two published
    assert final["job:job-b"] == ("completed", "succeeded")
    assert final["request:req-d"] == ("completed", "succeeded")
    assert statuses(query, "cleartax_upload_activities")["te-2/act-2"] == ("ABORTED", "failed")
    assert query("""select registered_by, count(*) from {ds}.upload_post_tracked_jobs
        group by 1 order by 1""") == [("config", 1), ("history", 1), ("track", 1)]


def test_registrations_and_finished_jobs_survive_a_wiped_pipeline_folder(
        polled_sim, new_pipeline, tmp_path, query):
    lb = polled_sim.fixtures["lobstr"]
    done = lb.add("1" * 32, ["SUCCESS"])
    running = lb.add("2" * 32, ["PENDING", "PROGRESS", "SUCCESS"])
    track_jobs("lobstr", [done, running], pipeline=new_pipeline())
    shutil.rmtree(tmp_path / "pipelines")  # registered, never polled, folder gone

    first = run_providers(["lobstr"], pipeline=new_pipeline())

    assert first.exit_code == 0, first.providers[0].errors
    assert sorted(polled_refs(polled_sim)) == sorted([done, running])
    shutil.rmtree(tmp_path / "pipelines")
    polled_sim.advance()
    polled_sim.clear_log()

    second = run_providers(["lobstr"], pipeline=new_pipeline())

    assert polled_refs(polled_sim) == [running]  # the finished one is known from the destination
    assert second.providers[0].counts["new"] == 0
    assert history_rows(query) == {done: 1, running: 2}


def test_not_found_from_404_or_from_the_body_is_final(polled_sim, run_polled, query,
                                                      monkeypatch):
    ct = polled_sim.fixtures["cleartax"]
    ct.add("te-1", "act-1", ["PROCESSING"])
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", '["no-such-request"]')
    monkeypatch.setenv("SOURCES__UPLOAD_POST__JOB_IDS", '["job-200-not-found"]')
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{"f" * 32}"]')
    # an activity of te-1 asked for under another taxable entity does not exist there
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", '["te-9/act-1"]')
    # the status word without the 404 code
    polled_sim.fixtures["upload_post"].add("job", "job-200-not-found", ["not_found"],
                                           in_history=False)

    report = run_polled()

    assert report.exit_code == 0, [p.errors for p in report.providers]
    rows = query("""select job_ref, native_status, canonical_status, is_terminal, http_status
        from {ds}.upload_post_uploads order by job_ref""")
    assert sorted(rows) == [
        ("job:job-200-not-found", "not_found", "not_found", True, 200),
        ("request:no-such-request", "not_found", "not_found", True, 404)]
    assert query("""select native_status, canonical_status, http_status, error__type, id
        from {ds}.lobstr_upload_tasks""") == [
        ("HTTP 404", "not_found", 404, "not_found_error", "f" * 32)]
    assert query("""select native_status, canonical_status, activity_id, taxable_entity_id
        from {ds}.cleartax_upload_activities""") == [("HTTP 404", "not_found", "act-1", "te-9")]
    polled_sim.clear_log()

    run_polled()

    assert polled_refs(polled_sim) == []


def test_partial_and_failed_upload_post_requests(polled_sim, run_polled, query, monkeypatch):
    up = polled_sim.fixtures["upload_post"]
    up.add("request", "mixed", ["completed"], platforms=["x", "instagram", "tiktok"],
           failures={"instagram": "Video duration exceeds the platform limit"})
    up.add("request", "all-failed", ["completed"], platforms=["x", "tiktok"],
           failures={"x": "Account token expired", "tiktok": "Account token expired"})
    up.add("request", "stalled", ["pending", "failed"], platforms=["youtube"], stalled=True)
    up.add("job", "fine", ["completed"], platforms=["linkedin"])
    polled_sim.advance()  # "stalled" reaches its failed step
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", '["stalled"]')  # not in the history

    report = run_polled("upload_post")

    assert report.exit_code == 0, report.providers[0].errors
    assert statuses(query, "upload_post_uploads") == {
        "request:mixed": ("completed", "partial"),
        "request:all-failed": ("completed", "failed"),
        "request:stalled": ("failed", "failed"),
        "job:fine": ("completed", "succeeded")}
    assert query("""select message, completed, total from {ds}.upload_post_uploads
        where job_ref = 'request:stalled'""") == [
        ("Upload appears to have failed (no activity for over 1 hour)", 0, 1)]
    results = query("""select u.job_ref, r.platform, r.success, r.message
        from {ds}.upload_post_uploads u join {ds}.upload_post_uploads__results r
        on r._dlt_parent_id = u._dlt_id where u.job_ref = 'request:mixed' order by 2""")
    assert results == [
        ("request:mixed", "instagram", False, "Video duration exceeds the platform limit"),
        ("request:mixed", "tiktok", True, "Published"),
        ("request:mixed", "x", True, "Published")]


def test_lobstr_202_while_running_then_200_with_counts(polled_sim, run_polled, query,
                                                       monkeypatch):
    lb = polled_sim.fixtures["lobstr"]
    task = lb.add("c" * 32, ["PROGRESS", "SUCCESS"], valid=120, invalid=4, duplicates=7)
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{task}"]')
    sql = """select http_status, state, canonical_status, meta__valid, meta__invalid,
        meta__inserted, meta__duplicates from {ds}.lobstr_upload_tasks"""

    run_polled("lobstr")
    assert query(sql) == [(202, "PROGRESS", "running", None, None, None, None)]
    polled_sim.advance()
    run_polled("lobstr")

    assert query(sql) == [(200, "SUCCESS", "succeeded", 120, 4, 113, 7)]
    assert query("select native_status from {ds}.lobstr_status_history order by observed_at"
                 ) == [("PROGRESS",), ("SUCCESS",)]


def test_unknown_native_status_is_kept_and_polled_again(polled_sim, run_polled, query,
                                                        monkeypatch):
    ct = polled_sim.fixtures["cleartax"]
    ref = ct.add("te-1", "act-1", ["ON_HOLD", "PROCESSED"])
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", f'["{ref}"]')

    first = run_polled("cleartax")

    assert first.providers[0].counts["unfinished"] == 1
    assert query("""select status, native_status, canonical_status, is_terminal
        from {ds}.cleartax_upload_activities""") == [("ON_HOLD", "ON_HOLD", "unknown", False)]
    polled_sim.advance()
    polled_sim.clear_log()

    run_polled("cleartax")

    assert polled_refs(polled_sim) == [ref]
    assert query("""select native_status, status from {ds}.cleartax_status_history
        order by observed_at""") == [("ON_HOLD", "unknown"), ("PROCESSED", "succeeded")]


def test_upload_post_history_discovers_jobs_and_is_read_incrementally(
        polled_sim, run_polled, query, monkeypatch):
    up = polled_sim.fixtures["upload_post"]
    refs = up.generate(30, seed=5, days=2)
    monkeypatch.setenv("SOURCES__UPLOAD_POST__HISTORY_PAGE_SIZE", "10")
    monkeypatch.setenv("SOURCES__UPLOAD_POST__HISTORY_OVERLAP_HOURS", "0")
    events = up.history()
    in_history = {f"{'job' if e.get('job_id') else 'request'}:{e.get('job_id') or e['request_id']}"
                  for e in events}

    report = run_polled("upload_post")

    assert report.exit_code == 0, report.providers[0].errors
    assert len(events) > 20  # more than two pages
    assert query("select count(*) from {ds}.upload_post_history") == [(len(events),)]
    assert set(polled_refs(polled_sim)) == in_history  # every job found there was polled
    assert in_history < set(refs)  # jobs without any platform result are not listed yet
    pages = [r for r in polled_sim.requests(path_pattern=r"/api/uploadposts/history")]
    assert [r.query["page"] for r in pages] == [str(p) for p in range(1, len(pages) + 1)]
    assert {r.query["limit"] for r in pages} == {"10"}
    polled_sim.clear_log()

    run_polled("upload_post")  # nothing new: the first page reaches behind the cutoff

    assert len(polled_sim.requests(path_pattern=r"/api/uploadposts/history")) == 1
    new = up.add("request", "late-arrival", ["in_progress", "completed"])  # newer than all
    polled_sim.clear_log()

    run_polled("upload_post")

    assert new in polled_refs(polled_sim)
    assert query("""select count(*) from {ds}.upload_post_history
        where request_id = 'late-arrival'""") == [(1,)]


def test_an_invalid_configured_id_is_a_configuration_error_the_valid_ones_load(
        polled_sim, run_polled, monkeypatch):
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", '["te-1/act-1", "no-entity-part"]')

    report = run_polled("cleartax")

    assert report.exit_code == 2
    assert "no-entity-part" in report.providers[0].errors[0]
    assert polled_refs(polled_sim) == ["te-1/act-1"]


@pytest.mark.parametrize("provider", ["lobstr", "upload_post"])
def test_a_rejected_key_fails_that_provider_naming_the_key(polled_sim, run_polled,
                                                          monkeypatch, provider):
    key = f"SOURCES__{provider.upper()}__API_KEY"
    monkeypatch.setenv(key, "wrong-key-0123")
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{"a" * 32}"]')
    polled_sim.fixtures["lobstr"].add("a" * 32, ["PENDING"])

    report = run_polled(provider)

    assert report.exit_code == 1
    assert key in report.providers[0].errors[0]
    assert "wrong-key-0123" not in report.providers[0].errors[0]


def test_full_refresh_polls_finished_jobs_again_without_new_history(polled_sim, run_polled,
                                                                    query, monkeypatch):
    lb = polled_sim.fixtures["lobstr"]
    finished, running = lb.add("1" * 32, ["SUCCESS"]), lb.add("2" * 32, ["PENDING"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{finished}", "{running}"]')
    run_polled("lobstr")
    polled_sim.clear_log()

    plain = run_polled("lobstr")
    assert polled_refs(polled_sim) == [running]
    polled_sim.clear_log()
    refreshed = run_polled("lobstr", full_refresh=True)

    assert sorted(polled_refs(polled_sim)) == sorted([finished, running])
    assert plain.providers[0].counts["changed"] == refreshed.providers[0].counts["changed"] == 0
    assert history_rows(query) == {finished: 1, running: 1}
