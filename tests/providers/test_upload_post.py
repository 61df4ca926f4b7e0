"""Upload-Post: a status refined by the platform results, and jobs discovered in the history
listing, read incrementally."""

from __future__ import annotations

from polled_helpers import polled_refs, statuses


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
