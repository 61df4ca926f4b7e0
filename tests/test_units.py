"""Unit tests of pure pieces: status mapping, the skip/limit paginator, failure messages."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from pipelines.common.errors import describe_failure, redact
from sources import providers
from sources.common.fan_out import completed, round_robin, stepped
from sources.common.job_refs import InvalidJobRef, JobRef
from sources.common.listed.window import ListingWindow
from sources.common.paginators import PageItemsPaginator, SkipLimitPaginator
from sources.common.throttle import DailyLimitReached, RateLimit, RateLimiter
from sources.highlevel import PROVIDER
from sources.highlevel.listing import created_at
from sources.upload_post import history as upload_post

CLEARTAX, LOBSTR, UPLOAD_POST = (providers()[name].provider
                                  for name in ("cleartax", "lobstr", "upload_post"))

def _response(body: dict, status: int = 200, url: str = "http://x/social-media-posting/l/csv"
              ) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.url = url
    return response


@pytest.mark.parametrize(("native", "canonical", "terminal"), [
    ("pending", "pending", False), ("in_review", "pending", False),
    ("in_progress", "running", False), ("importing", "running", False),
    ("completed", "succeeded", True), ("failed", "failed", True),
    ("deleted", "cancelled", True), ("paused", "unknown", False), (None, "unknown", False),
    (42, "unknown", False),
])
def test_highlevel_status_map(native, canonical, terminal):
    assert PROVIDER.canonical(native) == canonical
    assert PROVIDER.is_terminal(native) is terminal


@pytest.mark.parametrize(("total", "pages", "expected_skips"), [
    (23, [10, 10, 3], [10, 20]),      # full pages until the total
    (23, [5, 5, 5, 5, 3], [5, 10, 15, 20]),  # server cap below the limit
    (20, [10, 10, 0], [10, 20]),      # exact multiple: a full page may be followed by more
    (0, [0], []),                     # empty
    (50, [10, 0], [10]),              # total overstated: an empty page stops it
    (15, [10, 10, 4], [10, 20]),      # total understated: full pages go on, a short one ends
    (0, [10, 10, 4], [10, 20]),       # total zero
    (-5, [10, 3], [10]),              # total negative
    (7, [5, 5, 2], [5, 10]),          # server cap 5 and a low total: pages of 5 are full
])
def test_skip_limit_paginator_advances_by_rows_received(total, pages, expected_skips):
    paginator = SkipLimitPaginator(limit=10)
    skips = []
    for n in pages:
        paginator.update_state(_response({"results": {"count": total}}), [{}] * n)
        if not paginator.has_next_page:
            break
        skips.append(paginator.current_value)
    assert skips == expected_skips
    assert not paginator.has_next_page


def test_redact_hides_every_occurrence():
    assert redact("a sekret-123 b sekret-123", ["sekret-123", None, ""]) == "a *** b ***"


def test_auth_failure_message_names_provider_and_key_not_secret():
    response = _response({"statusCode": 401, "message": "Invalid token: sekret-123"}, 401)
    error = requests.HTTPError("401", response=response)
    try:
        raise RuntimeError("extract failed") from error
    except RuntimeError as exc:
        text = describe_failure(PROVIDER, exc, ["sekret-123"])
    assert text.startswith("highlevel:")
    assert "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in text
    assert "sekret-123" not in text


# --- polled providers -------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "text", "expected"), [
    (UPLOAD_POST, "request:abc-1",
     JobRef("request:abc-1", "abc-1", None, "request")),
    (UPLOAD_POST, "job:j:2", JobRef("job:j:2", "j:2", None, "job")),
    (CLEARTAX, "te-1/act-9", JobRef("te-1/act-9", "act-9", "te-1")),
    (LOBSTR, "427a7bfc54cf4ce483d83ba23425164b",
     JobRef("427a7bfc54cf4ce483d83ba23425164b", "427a7bfc54cf4ce483d83ba23425164b")),
])
def test_job_references_parse(provider, text, expected):
    assert provider.parse_ref(text) == expected


@pytest.mark.parametrize(("provider", "text"), [
    (UPLOAD_POST, "abc"), (UPLOAD_POST, "upload:abc"),
    (UPLOAD_POST, "request:"), (CLEARTAX, "act-9"),
    (CLEARTAX, "/act-9"), (CLEARTAX, "te/a/b"), (LOBSTR, ""),
    (LOBSTR, "id\nother"), (LOBSTR, " padded "), (LOBSTR, ".."),
    (CLEARTAX, "../act"), (LOBSTR, "esc\x1b[31m"), (LOBSTR, "bell\x07"),
    (LOBSTR, "del\x7f"), (LOBSTR, "c1\x85"),
])
def test_invalid_job_references_are_rejected(provider, text):
    with pytest.raises(InvalidJobRef):
        provider.parse_ref(text)


def test_status_requests_encode_ids_whole():
    path, _ = CLEARTAX.status_request(JobRef("t/x", "a?b#c", "t e"))
    assert path == "api/v0.2/taxable_entities/t%20e/upload_activity/a%3Fb%23c/status"
    assert UPLOAD_POST.status_request(JobRef("job:j", "x/../y", None, "job")) == (
        "api/uploadposts/status", {"job_id": "x/../y"})  # requests encodes query values
    assert LOBSTR.status_request(JobRef("a/b", "a/b"))[0] == "v1/tasks/upload/a%2Fb"


@pytest.mark.parametrize(("native", "results", "expected"), [
    ("completed", [{"success": True}, {"success": True}], "succeeded"),
    ("completed", [{"success": True}, {"success": False}], "partial"),
    ("failed", [{"success": True}, {"success": False}], "partial"),
    ("completed", [{"success": False}], "failed"),
    ("failed", [], "failed"),
    ("in_progress", [{"success": True}, {"success": False}], "running"),
    ("completed", [{"status": "completed"}, {"status": "failed"}], "partial"),
    ("paused", [], "unknown"),
])
def test_upload_post_canonical_status(native, results, expected):
    observation = UPLOAD_POST.read(JobRef("request:r", "r", None, "request"), 200,
                                            {"status": native, "results": results})
    assert observation.status == expected
    assert observation.record["request_id"] == "r"  # filled in from the reference


def test_a_404_is_not_found_and_keeps_the_error_body():
    observation = LOBSTR.read(JobRef("x", "x"), 404, {"error": {"type": "nf"}})
    assert (observation.native_status, observation.status) == ("HTTP 404", "not_found")
    assert observation.record["id"] == "x" and observation.record["error"] == {"type": "nf"}
    assert observation.record["is_terminal"] is True


def test_lobstr_null_meta_is_dropped_for_its_declared_columns():
    record = LOBSTR.read(JobRef("x", "x"), 202, {"state": "PROGRESS", "meta": None}
                                  ).record
    assert "meta" not in record and record["canonical_status"] == "running"


@pytest.mark.parametrize(("total", "pages", "expected_pages"), [
    (25, [10, 10, 5], [2, 3]),
    (20, [10, 10, 0], [2, 3]),     # exact multiple: a full page may be followed by more
    (5, [10, 10, 3], [2, 3]),      # total understated: full pages go on
    (0, [0], []),
    (None, [10, 4], [2]),           # no total: a short page ends it
    (99, [10, 0], [2]),             # total overstated: an empty page ends it
])
def test_page_items_paginator(total, pages, expected_pages):
    paginator = PageItemsPaginator(limit=10)
    seen = []
    for n in pages:
        body = {} if total is None else {"total": total}
        paginator.update_state(_response(body), [{}] * n)
        if not paginator.has_next_page:
            break
        seen.append(paginator.current_value)
    assert seen == expected_pages
    assert not paginator.has_next_page


def test_history_event_key_is_stable_and_distinguishes_platforms():
    event = {"request_id": "r", "platform": "x", "upload_timestamp": "2026-01-01T00:00:00Z"}
    assert upload_post.event_key(event) == upload_post.event_key(dict(reversed(event.items())))
    assert upload_post.event_key(event) != upload_post.event_key({**event, "platform": "tiktok"})
    assert upload_post.history_ref({"request_id": "r", "job_id": "j"}) == JobRef(
        "job:j", "j", None, "job")
    assert upload_post.history_ref({"platform": "x"}) is None


class _FakeClock:
    """time.monotonic / time.sleep stand-ins: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _max_in_window(starts: list[float], period: float) -> int:
    return max(sum(1 for t in starts if s <= t < s + period) for s in starts)


def test_rate_limiter_never_exceeds_its_window_and_runs_at_the_limit():
    clock = _FakeClock()
    limiter = RateLimiter(RateLimit(10, 1.0), clock=clock, sleep=clock.sleep)
    starts, ends = [], []
    for _ in range(95):
        slot = limiter.acquire("loc1")
        starts.append(clock.now)
        clock.now += 0.001  # each request takes a moment
        limiter.release(slot)
        ends.append(clock.now)

    assert _max_in_window(starts, 1.0) == 10
    # the request 10 places later starts a full period after the earlier one's answer
    assert all(starts[i + 10] >= ends[i] + 1.0 for i in range(85))
    # 95 requests at 10 per second, 1 ms each: the last five start in the tenth window
    assert starts[-1] == pytest.approx(9 * 1.001 + 0.004)


def test_rate_limiter_holds_a_slot_until_the_answer_is_back():
    clock = _FakeClock()
    limiter = RateLimiter(RateLimit(1, 1.0), clock=clock, sleep=clock.sleep)
    slot = limiter.acquire("x")
    clock.now = 0.5  # a slow answer
    limiter.release(slot)
    limiter.acquire("x")
    assert clock.now == pytest.approx(1.5)  # a period after the answer, not after the start


def test_rate_limiter_keys_are_independent_and_server_pauses_are_obeyed():
    clock = _FakeClock()
    limiter = RateLimiter(RateLimit(2, 1.0), clock=clock, sleep=clock.sleep)
    for key in ("a", "a", "b", "b"):
        limiter.release(limiter.acquire(key))
    assert clock.now == 0.0  # two keys, two requests each: no wait

    interval = "X-RateLimit-Interval-Milliseconds"
    limiter.observe("b", {"X-RateLimit-Remaining": "0", interval: "2500"})
    limiter.observe("a", {"X-RateLimit-Remaining": "oops", interval: "1"})
    limiter.acquire("b")
    assert clock.now == pytest.approx(2.5)  # the server's pause, longer than the own window


def test_no_rate_limit_configured_never_waits():
    clock = _FakeClock()
    limiter = RateLimiter(RateLimit.of(0, 10), clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        limiter.acquire("x")
    assert clock.now == 0.0
    with pytest.raises(ValueError):
        RateLimit.of(5, 0)


def test_rate_limiter_keeps_the_announced_limit_and_what_others_used():
    """No limit configured: the answers' `X-RateLimit-Max` per interval is kept (requests in
    flight cannot wait for "none remaining"), what the server counted beyond this process's
    requests holds slots, and a spent daily quota refuses the key."""
    clock = _FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.release(limiter.acquire("loc"))
    limiter.observe("loc", {"X-RateLimit-Max": "4", "X-RateLimit-Remaining": "1",
                            "X-RateLimit-Interval-Milliseconds": "1000"})
    limiter.release(limiter.acquire("loc"))  # the 4th in the server's window: no wait
    assert clock.now == 0.0
    limiter.acquire("loc")  # 1 of ours + 2 of another process + 1: a window later
    assert clock.now == pytest.approx(1.0)
    limiter.observe("other", {"X-RateLimit-Daily-Remaining": "0"})
    with pytest.raises(DailyLimitReached, match="other: the daily request limit is used up"):
        limiter.acquire("other")


def test_fan_out_hands_each_walk_on_only_when_told_and_keeps_its_order():
    def walk(key: str):
        for i in range(5):
            yield f"{key}{i}"

    seen: dict[str, list[str]] = {}
    ended = []
    for step in stepped(["a", "b", "c"], walk, 2):
        if step.done:
            ended.append((step.key, step.error))
            continue
        seen.setdefault(step.key, []).append(step.item)
        step.go_on(step.key != "b" or len(seen["b"]) < 2)  # b is stopped after two
    assert seen == {"a": ["a0", "a1", "a2", "a3", "a4"], "b": ["b0", "b1"],
                    "c": ["c0", "c1", "c2", "c3", "c4"]}
    assert sorted(ended) == [("a", None), ("b", None), ("c", None)]
    outcomes = list(completed(lambda n: 10 // n, [1, 2, 0, 5], 3))
    assert sorted(o.result for o in outcomes if o.error is None) == [2, 5, 10]
    assert [type(o.error) for o in outcomes if o.error] == [ZeroDivisionError]
    assert round_robin(["a1", "a2", "b1", "a3", "c1", "b2"], key=lambda s: s[0]) == \
        ["a1", "b1", "c1", "a2", "b2", "a3"]


def _listing(*stamps: str, unfinished: tuple[int, ...] = ()) -> ListingWindow:
    window = ListingWindow.from_mark({"newest": "2026-11-01T12:00:00+00:00"},
                                     timedelta(minutes=10))
    for i, stamp in enumerate(stamps):
        window.see(created_at({"createdAt": stamp}), i in unfinished)
    return window


def test_listing_window_stops_below_the_mark_and_reads_all_when_the_premise_breaks():
    below = _listing("2026-11-01T12:30:00Z", "2026-11-01T11:40:00Z")
    assert below.can_stop and below.mark(None)["newest"] == "2026-11-01T12:30:00+00:00"
    within = _listing("2026-11-01T12:30:00Z", "2026-11-01T11:55:00Z")  # inside the overlap
    assert not within.can_stop
    unordered = _listing("2026-11-01T10:00:00Z", "2026-11-01T12:30:00Z", "2026-11-01T09:00:00Z")
    assert not unordered.can_stop and unordered.mark(None)["read_all"]
    undated = _listing("2026-11-01T12:30:00Z", "not a date", unfinished=(1,))
    assert undated.mark(None)["read_all"]
    assert ListingWindow.from_mark(undated.mark(None), timedelta(0)).boundary is None
    watched = _listing("2026-11-01T12:30:00Z", "2026-10-01T00:00:00Z", unfinished=(1,))
    assert ListingWindow.from_mark(watched.mark(None), timedelta(minutes=10)).boundary == (
        datetime(2026, 10, 1, tzinfo=timezone.utc))


# --- Arrow pages: only what dlt's row path would store the same way ----------------------------

def _naming():
    from dlt.common.normalizers.naming.snake_case import NamingConvention
    return NamingConvention()


def test_to_arrow_types_columns_as_declared():
    from sources.common.arrow_items import to_arrow

    columns = {"_id": {"data_type": "text", "nullable": False},
               "count": {"data_type": "bigint"}, "created_at": {"data_type": "timestamp"}}
    table = to_arrow([{"_id": "a", "count": 3, "createdAt": "2024-01-02T03:04:05.000Z",
                       "note": "x", "gone": None},
                      {"_id": "b", "count": None, "createdAt": "2024-01-03T00:00:00Z",
                       "note": None, "gone": None}], columns, _naming())

    assert table is not None
    assert table.column_names == ["_id", "count", "createdAt", "note"]  # null-only: no column
    assert str(table.schema.field("count").type) == "int64"
    assert str(table.schema.field("createdAt").type) == "timestamp[us, tz=UTC]"
    assert table.schema.field("_id").nullable is False
    assert table.column("createdAt")[0].as_py() == datetime(2024, 1, 2, 3, 4, 5,
                                                            tzinfo=timezone.utc)
    # lists under an unnested key stay out (their nested table is built elsewhere)
    listed = to_arrow([{"_id": "a", "tags": ["x", "y"]}, {"_id": "b", "tags": "one"}],
                      columns, _naming(), unnested=("tags",))
    assert listed is not None and listed.column("tags").to_pylist() == [None, "one"]
    assert to_arrow([{"_id": "a", "tags": ["x"]}], columns, _naming(),
                    unnested=("tags",)).column_names == ["_id"]


@pytest.mark.parametrize("rows", [
    [{"_id": "a", "meta": {"valid": 1}}],  # nested: dlt flattens it into meta__valid
    [{"_id": "a", "tags": ["x"]}],  # a list: dlt makes a nested table
    [{"_id": "a", "count": "twelve"}],  # dlt keeps it in count__v_text
    [{"_id": "a", "seen": "2024-01-01T00:00:00Z"}],  # dlt would detect a timestamp
    [{"_id": "a", "extra": 1}, {"_id": "b", "extra": "one"}],  # mixed types in a new column
    [{"_id": "a", "createdAt": "yesterday"}],  # not a timestamp Arrow can read
    [{"_id": "a", "fileName": "x", "file_name": "y"}],  # two keys, one column name
])
def test_to_arrow_leaves_to_dlt_what_it_would_store_differently(rows):
    from sources.common.arrow_items import to_arrow

    columns = {"_id": {"data_type": "text"}, "count": {"data_type": "bigint"},
               "created_at": {"data_type": "timestamp"}}
    assert to_arrow(rows, columns, _naming()) is None


def test_account_table_points_each_account_at_its_import():
    from sources.highlevel.accounts import account_table, import_key

    imports = [{"_id": "a", "accountIds": ["x", "y"]}, {"_id": "b", "accountIds": "solo"},
               {"_id": "c", "accountIds": []}, {"_id": "d", "accountIds": [7]}]
    for record in imports:
        record["_dlt_id"] = import_key(record["_id"])

    table = account_table(imports).to_pylist()

    assert [(r["value"], r["_dlt_list_idx"]) for r in table] == [("x", 0), ("y", 1), ("7", 0)]
    assert [r["_dlt_parent_id"] for r in table] == [import_key("a")] * 2 + [import_key("d")]
    assert all(r["_dlt_root_id"] == r["_dlt_parent_id"] for r in table)
    assert len({r["_dlt_id"] for r in table}) == 3
    assert account_table([{"_id": "e", "_dlt_id": "k"}]) is None


@pytest.mark.parametrize("compact", [False, True])
def test_job_state_is_one_small_int_per_job_and_reads_the_older_layout(tmp_path, compact):
    """Status changes are found against the state's pair indexes (finished jobs as digests when
    compact), and a state written with a `[native, canonical]` list per job (before
    `job_statuses`) is read as the same history."""
    import gc

    import dlt

    from sources.common.finished_jobs import FinishedJobs
    from sources.common.stats import ProviderStats
    from sources.common.tracking import StatusTracker

    seen: list[list[tuple[str, str | None]]] = []

    @dlt.source(name="tracking_probe")
    def probe(sightings: list[tuple[str, str]], old_layout: dict | None = None):
        @dlt.resource(name="rows")
        def rows():
            state = dlt.current.source_state()
            if old_layout is not None:
                state["jobs"] = dict(old_layout)
                for key in ("job_statuses", "finished_jobs"):
                    state.pop(key, None)
            tracker = StatusTracker(LOBSTR, ProviderStats("lobstr"),
                                    compact_finished=compact)
            changes = [tracker.observe(ref, native) for ref, native in sightings]
            tracker.save()
            seen.append([(c["job_ref"], c["previous_native_status"]) for c in changes if c])
            yield {"unfinished": list(tracker.unfinished())}
        return rows

    pipeline = dlt.pipeline("tracking_probe", pipelines_dir=str(tmp_path))
    pipeline.extract(probe([("a", "PENDING"), ("b", "SUCCESS")]))
    pipeline.extract(probe([("a", "PENDING"), ("b", "SUCCESS"), ("c", "ERROR")]))
    pipeline.extract(probe([("a", "SUCCESS"), ("b", "SUCCESS")]))
    pipeline.extract(probe([("c", "PENDING"), ("b", "SUCCESS")]))  # c is running again
    pipeline.extract(probe([("c", "PENDING"), ("a", "SUCCESS"), ("b", "SUCCESS")]))
    assert seen == [[("a", None), ("b", None)], [("c", None)], [("a", "PENDING")],
                    [("c", "ERROR")], []]
    state = pipeline.state["sources"]["tracking_probe"]
    assert all(isinstance(code, int) for code in state["jobs"].values())
    assert not gc.is_tracked(dict(state["jobs"]))  # str -> int: nothing for full GCs to walk
    # compact: only the unfinished job is named; a and b are two 8-byte digests
    assert sorted(state["jobs"]) == (["c"] if compact else ["a", "b", "c"])
    assert len(FinishedJobs(state.get("finished_jobs"))) == (2 if compact else 0)

    old = {"a": ["PENDING", "pending"], "b": ["SUCCESS", "succeeded"], "r": None}
    seen.clear()
    pipeline.extract(probe([("a", "SUCCESS"), ("b", "SUCCESS")], old_layout=old))
    pipeline.extract(probe([("a", "SUCCESS"), ("b", "SUCCESS")]))
    assert seen == [[("a", "PENDING")], []]


def test_observe_many_tells_changed_and_known_and_loses_no_change(tmp_path):
    """A page of sightings: positions with a new or changed status, positions of jobs observed
    before (earlier in the run too, also within one page), and every history row of a job that
    changed twice before its rows were taken."""
    import dlt

    from sources.common.stats import ProviderStats
    from sources.common.tracking import StatusTracker

    found = []

    @dlt.source(name="observe_probe")
    def probe():
        @dlt.resource(name="rows")
        def rows():
            tracker = StatusTracker(LOBSTR, ProviderStats("lobstr"),
                                    compact_finished=True)
            found.append(tracker.observe_many(["a", "b", "c"], ["PENDING", "SUCCESS", None],
                                              ["s", "s", "s"]))
            found.append(tracker.observe_many(["d", "a", "b"], ["PENDING", "SUCCESS", "SUCCESS"],
                                              ["s", "s", "s"]))
            found.append(tracker.observe_many(["e", "e", "a"], ["PENDING", "ERROR", "ERROR"],
                                              ["s", "s", "s"]))
            taken = tracker.take_changes(["a", "e", "b"])
            found.append([(r[2], r[8], r[5]) for r in taken])  # job, previous, native
            found.append(tracker.take_changes(["a", "b", "c", "d", "e"]))
            yield {"ok": True}
        return rows

    dlt.pipeline("observe_probe", pipelines_dir=str(tmp_path)).extract(probe())
    assert [(s.changed, s.known) for s in found[:3]] == [
        ([0, 1, 2], []), ([0, 1], [1, 2]), ([0, 1, 2], [1, 2])]
    assert found[3] == [("a", None, "PENDING"), ("a", "PENDING", "SUCCESS"),
                        ("a", "SUCCESS", "ERROR"), ("e", None, "PENDING"),
                        ("e", "PENDING", "ERROR"), ("b", None, "SUCCESS")]
    assert [r[2] for r in found[4]] == ["c", "d"]


def test_finished_jobs_merge_and_round_trip(monkeypatch):
    from sources.common import finished_jobs
    from sources.common.finished_jobs import FinishedJobs

    monkeypatch.setattr(finished_jobs, "MERGE_EVERY", 300)  # merged while adding, 3 times
    jobs = FinishedJobs()
    for i in range(1000):
        jobs.add(f"job{i}", i % 3)
    assert len(jobs._added) == 100 and jobs.get("job5") == 2 and jobs.get("job999") == 0
    stored = jobs.stored()
    again = FinishedJobs(stored)
    assert len(again) == 1000 and [again.get(f"job{i}") for i in (0, 1, 500, 999)] == [0, 1, 2, 0]
    assert again.get("job1000") is None
    assert again.get_many(["job5", "job1000", "job5"]) == [2, None, 2]  # one search, in order
    again.drop("job1")
    again.add("job1000", 2)
    again.add("job2", 1)  # a new status for a known job
    third = FinishedJobs(again.stored())
    assert (third.get("job1"), third.get("job1000"), third.get("job2"), len(third)) == (
        None, 2, 1, 1000)
    with pytest.raises(ValueError, match="damaged"):
        FinishedJobs({**stored, "codes": ""})
    for damaged in ({**stored, "keys": "not base64!"}, {"layout": 2, "keys": stored["keys"]},
                    {**stored, "keys": base64.b64encode(b"not deflated").decode()}):
        with pytest.raises(ValueError, match="damaged"):
            FinishedJobs(damaged)


def test_finished_jobs_read_the_first_layout_and_store_packed():
    """A state written before the packed layout (the sorted arrays as base64) reads as the same
    jobs; stored again, it is packed (a digest in 6.3 bytes at 100,000 jobs, 5.8 at a million,
    where the arrays took 8)."""
    import numpy as np

    from sources.common.finished_jobs import PACKED, FinishedJobs

    jobs = FinishedJobs()
    for i in range(100_000):
        jobs.add(f"import-{i:08d}", i % 4)
    jobs.stored()
    first = {"keys": base64.b64encode(jobs._keys.tobytes()).decode(),
             "codes": base64.b64encode(jobs._codes.tobytes()).decode()}
    read = FinishedJobs(first)
    assert len(read) == 100_000 and read.get_many(["import-00000003", "import-x"]) == [3, None]
    packed = read.stored()
    assert packed["layout"] == PACKED
    assert len(packed["keys"]) < 0.8 * len(first["keys"])
    assert len(packed["codes"]) < 0.25 * len(first["codes"])
    again = FinishedJobs(packed)
    assert np.array_equal(again._keys, jobs._keys) and np.array_equal(again._codes, jobs._codes)
    assert len(FinishedJobs(FinishedJobs().stored())) == 0


def test_seen_ids_tell_ids_met_before_in_the_run(monkeypatch):
    """Membership across merges into the sorted array, within one page, and of ids that
    are added only after being asked about."""
    from sources.common import seen_ids
    from sources.common.seen_ids import SeenIds

    monkeypatch.setattr(seen_ids, "MERGE_EVERY", 7)
    seen = SeenIds()
    assert seen.unseen([]) == []
    for page in range(20):
        ids = [f"id{page * 5 + i}" for i in range(5)]
        assert seen.unseen(ids) == [True] * 5
        seen.add(ids)
        assert seen.unseen(ids) == [False] * 5
    assert len(seen) == 100 and len(seen._sorted) >= 90  # merged along the way
    assert seen.unseen(["id0", "id99", "id100", "id100"]) == [False, False, True, True]
    assert list(seen._sorted) == sorted(seen._sorted)


def test_duckdb_memory_is_bounded_unless_the_user_says_otherwise(tmp_path, monkeypatch):
    import dlt

    from pipelines.destinations.destination import duckdb_destination

    def settings() -> tuple[str, int]:
        pipeline = dlt.pipeline("duckdb_settings", pipelines_dir=str(tmp_path / "p"),
                                destination=duckdb_destination(str(tmp_path / "d.duckdb")))
        with pipeline.sql_client() as client:
            row = client.execute_sql("SELECT current_setting('memory_limit'), "
                                     "current_setting('threads')")[0]
        return row[0], row[1]

    limit, threads = settings()
    assert (limit, threads) == ("122.0 MiB", 1)  # DuckDB shows 128MB in MiB
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
                       '{"memory_limit": "1GB"}')
    limit, threads = settings()
    assert (limit, threads) == ("953.6 MiB", 1)


def test_duckdb_loads_one_job_at_a_time_after_the_extracts_memory_is_freed(tmp_path,
                                                                        monkeypatch):
    """Three tables' parquet jobs, never two in flight (each adds its own buffers over DuckDB's
    memory cap), and the load step starts once the extract's freed memory is handed back."""
    import threading
    import time

    import dlt
    import pyarrow as pa
    from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob

    from pipelines.common import memory
    from pipelines.destinations.destination import make_pipeline

    released, in_flight, most = [], [0], [0]
    lock = threading.Lock()
    copy = DuckDbCopyJob.run

    def counted(job: DuckDbCopyJob) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)  # long enough for a second worker to start one
        try:
            copy(job)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(DuckDbCopyJob, "run", counted)
    monkeypatch.setattr(memory, "release_freed_memory", lambda: released.append(True))
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "jobs.duckdb"))
    pipeline = make_pipeline(dataset="one_at_a_time", pipelines_dir=str(tmp_path / "p"))
    tables = [dlt.resource(pa.table({"n": list(range(10))}), name=f"t{i}") for i in range(3)]
    pipeline.run(tables, loader_file_format="parquet")
    assert most[0] == 1 and released == [True]
    assert pipeline.dataset().t2.df()["n"].tolist() == list(range(10))


def test_first_row_key_of_an_insert_values_file():
    from pipelines.run.resume import insert_values_first_key

    text = ('INSERT INTO {}("summary","n","_dlt_load_id","_dlt_id")\nVALUES\n'
            "(E'it''s, (a) \\'x\\' \\\\',12,E'171.5',E'abc_XY-1'),\n(NULL,1,E'171.5',E'other');")
    assert insert_values_first_key(text) == "abc_XY-1"
    assert insert_values_first_key(text.replace('"_dlt_id"', '"other"')) is None
    assert insert_values_first_key('INSERT INTO {}("_dlt_id")\nVALUES\n(E\'cut') is None


def test_first_row_key_of_parquet_and_jsonl_files(tmp_path):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.run.resume import first_row_key

    pq.write_table(pa.table({"a": [1, 2], "_dlt_id": ["k1", "k2"]}), tmp_path / "t.parquet")
    assert first_row_key(str(tmp_path / "t.parquet"), "parquet") == "k1"
    pq.write_table(pa.table({"a": [1]}), tmp_path / "n.parquet")
    assert first_row_key(str(tmp_path / "n.parquet"), "parquet") is None
    (tmp_path / "t.jsonl").write_bytes(gzip.compress(b'{"_dlt_id": "j1"}\n{"_dlt_id": "j2"}\n'))
    assert first_row_key(str(tmp_path / "t.jsonl"), "jsonl") == "j1"
    assert first_row_key(str(tmp_path / "t.jsonl"), "sql") is None
    # dlt's sqlalchemy destination: typed-jsonl, a list of rows a line
    (tmp_path / "t.typed").write_bytes(gzip.compress(b'[{"_dlt_id": "t1"}, {"_dlt_id": "t2"}]\n'))
    assert first_row_key(str(tmp_path / "t.typed"), "typed-jsonl") == "t1"
    (tmp_path / "e.typed").write_bytes(b"[]\n")
    assert first_row_key(str(tmp_path / "e.typed"), "typed-jsonl") is None


# --- credentials and bounds (test_hostile_network has the same over real HTTP) ---------------

@pytest.mark.parametrize(("url", "ok"), [
    ("https://api.lobstr.io", "https://api.lobstr.io"),
    ("https://API.lobstr.io:8443/", "https://api.lobstr.io:8443"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.9.9.9", "http://127.9.9.9"),
    ("http://localhost:1", "http://localhost:1"),
    ("http://[::1]:9", "http://[::1]:9"),
    ("http://api.lobstr.io", None), ("http://10.0.0.1", None),
    ("https://u:p@api.lobstr.io", None), ("https://u@api.lobstr.io", None),
    ("https://api.lobstr.io/v1", None), ("https://api.lobstr.io?x=1", None),
    ("https://api.lobstr.io#f", None), ("ftp://api.lobstr.io", None), ("api.lobstr.io", None),
])
def test_base_url_is_an_https_origin_or_loopback(url, ok):
    from sources.common.config_checks import ConfigProblem, checked_origin

    if ok is None:
        with pytest.raises(ConfigProblem) as raised:
            checked_origin(LOBSTR, url)
        assert "SOURCES__LOBSTR__BASE_URL" in str(raised.value)
        assert ":p@" not in str(raised.value)
    else:
        assert checked_origin(LOBSTR, url) == ok


@pytest.mark.parametrize("value", ["tok-123456\n", " tok-123456", "tok\x00-123456", "", "  "])
def test_unusable_credentials_name_the_key_never_the_value(value):
    from sources.common.config_checks import ConfigProblem, checked_secret

    with pytest.raises(ConfigProblem) as raised:
        checked_secret(value, "SOURCES__X__API_KEY")
    assert "SOURCES__X__API_KEY" in str(raised.value)
    assert "123456" not in str(raised.value)


def test_every_form_of_a_secret_is_redacted():
    from sources.common.redaction import mask, redact, register

    secret = "s3cr/et+tok\"en"
    register(secret)
    text = f"a {secret} b {secret!r} c s3cr%2Fet%2Btok%22en d s3cr%2Fet%2Btok%22en e " \
           + json.dumps(secret)
    assert "s3cr" not in redact(text)
    assert mask({"k": [f"x{secret}y"], secret: 1}) == {"k": ["x***y"], "***": 1}


def test_parsed_answers_are_bounded_in_depth_width_and_string_length():
    from collections import Counter

    from sources.common.config_checks import Bounds
    from sources.common.http_guard import AnswerRejected, Guard

    bounds = Bounds()
    bounds.max_json_depth, bounds.max_columns, bounds.max_text_length = 3, 4, 5
    guard = Guard(("https", "h", 443), bounds, Counter())
    assert guard.checked({"a": {"b": ["abcdefgh"]}}, b"x" * 10) == {
        "a": {"b": ["abcde [cut: 8 characters in all]"]}}
    with pytest.raises(AnswerRejected, match="deeper than 3"):
        guard.checked({"a": {"b": {"c": {}}}}, b"")
    with pytest.raises(AnswerRejected, match="5 fields"):
        guard.checked({str(i): i for i in range(5)}, b"")


def test_rate_limit_reset_header_pauses_until_the_reset():
    clock = [1000.0]
    limiter = RateLimiter(None, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(
        0, clock[0] + s))
    limiter.observe("up", {"X-RateLimit-Remaining": "0",
                           "X-RateLimit-Reset": "1700000012.5"}, now=1700000010.0)
    limiter.acquire("up")
    assert clock[0] == pytest.approx(1002.5)
    limiter.observe("up", {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "9999999999"})
    limiter.observe("up", {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "soon"})
    limiter.acquire("up")
    assert clock[0] == pytest.approx(1002.5)


def test_views_fill_a_missing_table_per_select_whatever_the_aliases():
    """Two providers' parts may use the same alias: a column is judged by the table its own
    SELECT names (a missing table's columns become NULLs, a present one's stay)."""
    import sqlglot

    from pipelines.analytics.views import fill_missing

    sql = """SELECT j.status AS status FROM ds.present_jobs AS j
             UNION ALL SELECT j.status AS status FROM ds.missing_jobs AS j"""
    tree = fill_missing(sqlglot.parse_one(sql, read="duckdb"), "ds",
                        {"present_jobs": {"status"}}, {"missing_jobs": {"status": "VARCHAR"}})
    first, second = tree.sql(dialect="duckdb").split(" UNION ALL ")
    assert first == "SELECT j.status AS status FROM ds.present_jobs AS j"
    assert "CAST(NULL AS TEXT) AS status" in second and "ds.missing_jobs" not in second


def test_markdown_report_keeps_every_value_in_its_cell():
    from datetime import date

    from pipelines.analytics.report import Report
    from pipelines.commands.markdown import report_markdown

    rep = Report(since=date(2026, 11, 25), generated_at=datetime(2026, 12, 2, tzinfo=timezone.utc),
                 stuck_hours=24)
    rep.totals = [{"provider": "lobstr", "jobs": 3, "succeeded": 1, "partial": 0, "failed": 1,
                   "cancelled": 0, "in_flight": 1, "success_rate": 0.5}]
    rep.rates = [{**rep.totals[0], "day": date(2026, 12, 1)}]
    rep.failure_reasons = [{"provider": "lobstr", "reason": "bad | row\nat *line* 2",
                            "occurrences": 2, "jobs": 1}]

    text = report_markdown(rep)

    lines = text.splitlines()
    assert lines[0] == "## Upload status since 2026-11-25"
    assert "| lobstr | 3 | 1 | 0 | 1 | 0 | 1 | 50.0% |" in lines
    assert "| 2026-12-01 | 50.0% (3) |" in lines
    assert "| lobstr | bad \\| row at \\*line\\* 2 | 2 | 1 |" in lines
    stuck = lines.index("### Unfinished for more than 24 hours")
    assert lines[stuck + 2] == "None."
    tables = "\n".join("T" if line.startswith("|") else "" for line in lines).split("\n\n")
    assert len([t for t in tables if "T" in t]) == 3  # totals, per day, reasons
    cells = [line.replace("\\|", "").count("|") for line in lines if line.startswith("|")]
    header_cells = {8 + 1, 2 + 1, 4 + 1}  # every row as many cells as its header
    assert set(cells) == header_cells


def test_empty_settings_are_taken_as_not_set():
    from pipelines.run.environment import unset_empty_settings

    environ = {"SOURCES__LOBSTR__API_KEY": "", "SOURCES__CLEARTAX__AUTH_TOKEN": "  ",
               "SOURCES__UPLOAD_POST__API_KEY": "k", "DESTINATION__POSTGRES__CREDENTIALS": "",
               "HOME": "", "MY__THING": ""}

    assert unset_empty_settings(environ) == [
        "DESTINATION__POSTGRES__CREDENTIALS", "SOURCES__CLEARTAX__AUTH_TOKEN",
        "SOURCES__LOBSTR__API_KEY"]
    assert environ == {"SOURCES__UPLOAD_POST__API_KEY": "k", "HOME": "", "MY__THING": ""}


def test_sql_rendered_for_databases_without_time_zones():
    import sqlglot

    from pipelines.destinations.dialects import render

    sql = ("SELECT CAST((j.t AT TIME ZONE 'UTC') AS DATE) AS day FROM ds.j AS j "
           "WHERE j.t < CAST('2026-12-01T19:12:28.5+01:00' AS TIMESTAMPTZ) "
           "AND CAST(j.u AS TIMESTAMP) IS NOT NULL")

    def tree():
        return sqlglot.parse_one(sql, read="duckdb")

    sqlite = render(tree(), "sqlite")
    assert "AT TIME ZONE" not in sqlite and "TIMESTAMP" not in sqlite
    assert "'2026-12-01 18:12:28.500000'" in sqlite  # UTC, as dlt writes SQLite timestamps
    assert "NOT j.u IS NULL" in sqlite  # no cast left
    mysql = render(tree(), "mysql")
    assert "AT TIME ZONE" not in mysql and "CAST(j.u AS DATETIME)" in mysql
    assert "'2026-12-01 18:12:28.500000'" in mysql
    assert "AT TIME ZONE 'UTC'" in render(tree(), "postgres")
