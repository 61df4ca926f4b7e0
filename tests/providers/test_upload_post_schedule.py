"""Upload-Post's scheduled posts: followed from the schedule listing before they run (real
HTTP to the simulator, a real DuckDB file), their scheduled date kept for the views."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from polled_helpers import statuses


def test_scheduled_posts_are_followed_before_they_run_and_keep_their_date(
        polled_sim, run_polled, query):
    up = polled_sim.fixtures["upload_post"]
    when = datetime(2026, 12, 3, 15, 30, tzinfo=timezone.utc)
    up.add("job", "sched-1", ["pending", "pending", "completed"], platforms=["x"],
           scheduled_date=when)
    up.add("job", "sched-2", ["pending"], platforms=["tiktok"],
           scheduled_date=when + timedelta(days=1))
    up.add("request", "now-1", ["completed"], platforms=["x"])  # in the history only

    first = run_polled("upload_post")

    assert first.exit_code == 0, first.providers[0].errors
    assert statuses(query, "upload_post_uploads") == {
        "job:sched-1": ("pending", "pending"), "job:sched-2": ("pending", "pending"),
        "request:now-1": ("completed", "succeeded")}
    assert first.providers[0].counts["scheduled posts listed"] == 2
    assert dict(query("select job_id, scheduled_at from {ds}.upload_jobs "
                      "where provider = 'upload_post'")) == {
        "sched-1": when, "sched-2": when + timedelta(days=1), "now-1": None}
    assert dict(query("select tracked_id, registered_by from {ds}.upload_post_tracked_jobs")) \
        == {"sched-1": "schedule", "sched-2": "schedule", "now-1": "history"}

    polled_sim.advance()
    polled_sim.advance()  # sched-1 ran: it left the schedule listing
    polled_sim.clear_log()
    second = run_polled("upload_post")

    assert second.exit_code == 0, second.providers[0].errors
    assert statuses(query, "upload_post_uploads")["job:sched-1"] == ("completed", "succeeded")
    assert dict(query("select job_id, scheduled_at from {ds}.upload_jobs where provider = "
                      "'upload_post' and job_id = 'sched-1'")) == {"sched-1": when}
    assert len(polled_sim.requests("upload_post", path_pattern=r"/api/uploadposts/schedule")) \
        == 1  # one request a run, no paging
    history = query("select job_id, status from {ds}.upload_job_status_history "
                    "where job_id = 'sched-1' order by observed_at")
    assert history == [("sched-1", "pending"), ("sched-1", "succeeded")]


def test_a_schedule_item_without_a_usable_id_is_rejected_not_lost(polled_sim, run_polled,
                                                                   query):
    up = polled_sim.fixtures["upload_post"]
    up.schedule_extra = [{"title": "no id"}, {"job_id": "a\nb", "title": "bad id"}, "text"]
    up.add("job", "ok-1", ["pending"], scheduled_date=datetime(2026, 12, 9, tzinfo=timezone.utc))

    report = run_polled("upload_post")

    assert report.exit_code == 0, report.providers[0].errors
    assert report.providers[0].counts["bad input"] == 3
    assert query("select count(*) from {ds}.upload_post_rejects") == [(3,)]
    assert set(statuses(query, "upload_post_uploads")) == {"job:ok-1"}


def test_schedule_discovery_can_be_turned_off(polled_sim, run_polled, monkeypatch):
    up = polled_sim.fixtures["upload_post"]
    up.add("job", "sched-1", ["pending"], scheduled_date=datetime(2026, 12, 9, tzinfo=timezone.utc))
    monkeypatch.setenv("SOURCES__UPLOAD_POST__DISCOVER_SCHEDULED", "false")

    report = run_polled("upload_post")

    assert report.exit_code == 0
    assert polled_sim.requests("upload_post", path_pattern=r"/api/uploadposts/schedule") == []
    assert report.providers[0].counts["jobs seen"] == 0
