"""Upload-Post async uploads (`request_id`) and scheduled posts (`job_id`), with per-platform
results, plus the upload history listing through which jobs are discovered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import dlt
import pendulum
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient

from sources.common import status as s
from sources.common.analytics import failure_rows_sql
from sources.common.bad_input import PAGES_NOT_READ, as_rejects, reject
from sources.common.columns import ColumnBudget
from sources.common.config_checks import bounds_for
from sources.common.paginators import ListingStopped, PageItemsPaginator
from sources.common.polling import (
    DEFAULT_CONCURRENCY,
    POLL_COLUMNS,
    InvalidJobRef,
    JobRef,
    PolledProvider,
    Sighting,
    check_id,
    polled_resources,
)
from sources.common.stats import current_stats
from sources.common.throttle import RateLimit
from sources.common.tracking import StatusTracker

KINDS = ("request", "job")
HISTORY_LIMITS = (10, 20, 50, 100)  # the only page sizes the history endpoint accepts


def parse_ref(text: str) -> JobRef:
    """`request:ID` (async upload) or `job:ID` (scheduled post), as the contract writes them."""
    kind, sep, job_id = text.partition(":")
    if not sep or kind not in KINDS:
        raise InvalidJobRef("expected request:ID or job:ID")
    return JobRef(ref=text, job_id=check_id(job_id), kind=kind)


def _platform_outcome(result: dict[str, Any]) -> bool | None:
    if result.get("success") is not None:
        return bool(result["success"])
    status = result.get("status")
    return {"completed": True, "failed": False}.get(status) if isinstance(status, str) else None


def _platforms(answer: dict[str, Any]) -> list[tuple[dict[str, Any], bool | None]]:
    """Each platform result of an answer with its outcome (True ok, False failed, None open)."""
    results = answer.get("results")
    if not isinstance(results, list):
        return []
    return [(r, _platform_outcome(r)) for r in results if isinstance(r, dict)]


def refine(status: str, answer: dict[str, Any]) -> str:
    """A finished request whose platforms did not all succeed is `partial` (some failed) or
    `failed` (all failed), whatever the top-level word says."""
    if status not in (s.SUCCEEDED, s.FAILED):
        return status
    outcomes = {ok for _, ok in _platforms(answer)}
    if True in outcomes and False in outcomes:
        return s.PARTIAL
    if outcomes == {False}:
        return s.FAILED
    return status


def derive(answer: dict[str, Any], status: str) -> dict[str, Any]:
    """Platform counts and the first failure reason, so SQL needs no walk over `results`."""
    platforms = _platforms(answer)
    outcomes = [ok for _, ok in platforms]
    reason = next((r.get("error_message") or r.get("message")
                   for r, ok in platforms if ok is False), None)
    if reason is None and status in (s.FAILED, s.PARTIAL, s.NOT_FOUND, s.CANCELLED):
        reason = answer.get("message") or answer.get("error")
    return {"platforms_succeeded": outcomes.count(True), "platforms_failed": outcomes.count(False),
            "failure_reason": reason if reason is None else str(reason)}


PROVIDER = PolledProvider(
    name="upload_post",
    base_url="https://api.upload-post.com",
    secret_field="api_key",
    status_map={"pending": s.PENDING, "queued": s.PENDING, "processing": s.RUNNING,
                "in_progress": s.RUNNING, "completed": s.SUCCEEDED, "failed": s.FAILED,
                "not_found": s.NOT_FOUND},
    auth_scheme="Apikey",
    jobs_table="upload_post_uploads",
    status_path="api/uploadposts/status",
    status_params={"{kind}_id": "{job_id}"},
    status_field="status",
    parse_ref=parse_ref,
    id_fields={"{kind}_id": "{job_id}"},
    refine=refine,
    derive=derive,
    columns={
        "platforms_succeeded": {"data_type": "bigint"},
        "platforms_failed": {"data_type": "bigint"},
        "failure_reason": {"data_type": "text"},
        "request_id": {"data_type": "text"},
        "job_id": {"data_type": "text"},
        "status": {"data_type": "text"},
        "completed": {"data_type": "bigint"},
        "total": {"data_type": "bigint"},
        "message": {"data_type": "text"},
        "last_update": {"data_type": "timestamp"},
    },
    job_facts={"items_total": "{j}.total", "items_succeeded": "{j}.platforms_succeeded",
               "items_failed": "{j}.platforms_failed", "error_message": "{j}.failure_reason"},
    failure_rows=" UNION ALL ".join((
        failure_rows_sql(  # each failed platform, with its reason
            "upload_post", "{ds}.upload_post_uploads AS up_fu JOIN "
            "{ds}.upload_post_uploads__results AS up_fr ON up_fr._dlt_parent_id = up_fu._dlt_id",
            {"job_id": "up_fu.tracked_id", "item": "up_fr.platform",
             "reason": "COALESCE(up_fr.error_message, up_fr.message)"},
            where="NOT up_fr.success"),
        failure_rows_sql(  # a request that failed before any platform (stalled, not found)
            "upload_post", "{ds}.upload_post_uploads AS up_fj",
            {"job_id": "up_fj.tracked_id", "reason": "up_fj.failure_reason"},
            where="up_fj.platforms_failed = 0 AND up_fj.failure_reason IS NOT NULL"))),
    nested_columns={"results": {
        "platform": {"data_type": "text"},
        "status": {"data_type": "text"},
        "success": {"data_type": "bool"},
        "message": {"data_type": "text"},
        "error_message": {"data_type": "text"},
        "upload_timestamp": {"data_type": "timestamp"},
    }},
)

EVENT_COLUMNS = {
    "event_key": {"data_type": "text", "nullable": False},
    "platform": {"data_type": "text"},
    "request_id": {"data_type": "text"},
    "job_id": {"data_type": "text"},
    "upload_timestamp": {"data_type": "timestamp"},
    "success": {"data_type": "bool"},
    "error_message": {"data_type": "text"},
    "request_total_platforms": {"data_type": "bigint"},
}
_EVENT_IDENTITY = ("request_id", "job_id", "platform", "profile_username", "platform_post_id",
                   "upload_timestamp")


def event_key(event: dict[str, Any]) -> str:
    """A stable key for one platform upload event; the listing gives none of its own."""
    identity = json.dumps([event.get(k) for k in _EVENT_IDENTITY], default=str)
    return hashlib.sha1(identity.encode()).hexdigest()


def history_ref(event: dict[str, Any]) -> JobRef | None:
    """The job an event belongs to: its scheduled post if it came from one, else its request."""
    for kind in ("job", "request"):
        value = event.get(f"{kind}_id")
        if isinstance(value, str) and value:
            try:
                return parse_ref(f"{kind}:{value}")
            except InvalidJobRef:
                return None
    return None


def _timestamp(value: Any) -> pendulum.DateTime | None:
    try:
        parsed = pendulum.parse(value) if isinstance(value, str) else None
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    return parsed if isinstance(parsed, pendulum.DateTime) else None


def _stopping(pages: Iterator[Any], stats: Any) -> Iterator[Any]:
    """The pages of a listing; one stopped for running away (`max_pages`) ends quietly here,
    recorded as a failed part and a page not read (the mark does not move)."""
    try:
        yield from pages
    except ListingStopped as exc:
        stats.counts[PAGES_NOT_READ] += 1
        stats.failed_parts.append(f"history listing stopped: {exc}")


def history_discovery(page_size: int, overlap: timedelta, full_refresh: bool
                      ) -> Callable[..., Iterator[list[Sighting]]]:
    """Reads the history listing (most recent first) down to the newest event of the previous
    run minus `overlap`, and sights the job of every event."""
    limit = min((n for n in HISTORY_LIMITS if n >= page_size), default=HISTORY_LIMITS[-1])

    def discover(client: RESTClient, tracker: StatusTracker,
                 sight: Callable[..., Sighting]) -> Iterator[list[Sighting]]:
        state = dlt.current.source_state()
        newest = _timestamp(state.get("history_newest"))
        cutoff = None if full_refresh or newest is None else newest - overlap
        newest_now = newest
        stats = tracker.stats
        unreadable_before = stats.counts[PAGES_NOT_READ]
        seen: set[str] = set()  # events listed so far in this run: a page of none new repeats
        pages = client.paginate("api/uploadposts/history",
                                paginator=PageItemsPaginator(limit=limit), data_selector="history")
        for page in _stopping(pages, stats):
            stats.counts["history pages"] += 1
            sightings, oldest = [], None
            events = [{**e, "event_key": event_key(e)} for e in page if isinstance(e, dict)]
            if events and seen.issuperset(e["event_key"] for e in events):
                stats.counts[PAGES_NOT_READ] += 1
                stats.failed_parts.append(
                    f"history listing stopped at page {stats.counts['history pages']}: it named "
                    "only events already listed in this run (the listing repeats)")
                break
            seen.update(e["event_key"] for e in events)
            for event in events:
                at = _timestamp(event.get("upload_timestamp"))
                if at is not None:
                    oldest = at if oldest is None else min(oldest, at)
                    newest_now = at if newest_now is None else max(newest_now, at)
                ref = history_ref(event)
                sightings.append(sight(ref, "history", event=event) if ref else {"event": event})
            tracker.stats.counts["history events"] += len(sightings)
            yield sightings
            # most recent first: once a page reaches behind the cutoff, the rest is known
            if cutoff is not None and oldest is not None and oldest < cutoff:
                break
        # a page that could not be read ends the listing early: the next run must read past
        # the old mark again, so the mark only moves after a complete read
        if newest_now is not None and stats.counts[PAGES_NOT_READ] == unreadable_before:
            state["history_newest"] = newest_now.isoformat()

    return discover


@dlt.source(name="upload_post")
def upload_post_source(
    api_key: str = dlt.secrets.value,
    request_ids: Sequence[str] | None = None,
    job_ids: Sequence[str] | None = None,
    base_url: str = PROVIDER.base_url,
    discover_from_history: bool = True,
    history_page_size: int = 100,
    history_overlap_hours: float = 24.0,
    rate_limit_requests: int | None = None,
    rate_limit_period: float = 1.0,
    concurrency: int = DEFAULT_CONCURRENCY,
    full_refresh: bool = False,
) -> tuple[DltResource, ...]:
    """Upload history and the status of every followed request/job that has not finished yet.

    Args:
        api_key: Upload-Post API key, sent as `Authorization: Apikey ...`.
        request_ids / job_ids: ids to follow besides those registered with `track` and those
            found in the history listing.
        base_url: API origin (scheme, host, port).
        discover_from_history: read `GET /api/uploadposts/history` and follow its jobs.
        history_page_size: `limit` asked for (the API accepts 10, 20, 50, 100).
        history_overlap_hours: how far behind the newest event already loaded each run reads
            again, for events recorded late.
        rate_limit_requests / rate_limit_period: at most this many requests in any window of
            this many seconds (no numbers are published: no client-side limit unless set);
            the API's `X-RateLimit-Remaining`/`X-RateLimit-Reset` headers are honoured
            either way, and 429s retried.
        concurrency: status requests in flight at once.
        full_refresh: read the whole history and poll finished jobs again too.
    """
    ids = [f"request:{i}" for i in request_ids or []] + [f"job:{i}" for i in job_ids or []]
    discover = history_discovery(history_page_size, timedelta(hours=history_overlap_hours),
                                 full_refresh) if discover_from_history else None
    feed, *resources = polled_resources(PROVIDER, api_key, base_url, ids, full_refresh, discover,
                                        RateLimit.of(rate_limit_requests, rate_limit_period),
                                        concurrency)

    stats = current_stats(PROVIDER.name)
    budget = ColumnBudget("upload_post_history", bounds_for(PROVIDER).max_columns,
                          PROVIDER.env_key("max_columns"))

    @dlt.transformer(data_from=feed, name="upload_post_history", primary_key="event_key",
                     write_disposition="merge", columns=EVENT_COLUMNS)
    def upload_post_history(sightings: TDataItems) -> Iterator[Any]:
        """One row per platform upload event of the history listing, every field kept; an
        event that would widen the table past `max_columns` goes to the rejects."""
        rows, rejected = [], []
        for event in (x["event"] for x in sightings if x.get("event")):
            if (why := budget.admit_flat(event)) is None:
                rows.append(event)
            else:
                rejected.append(reject(stats, why, event, "/api/uploadposts/history", 200))
        if rejected:
            # the rejects table is also fed by the jobs resource: its required columns relax too
            yield as_rejects(PROVIDER.name, rejected, {**POLL_COLUMNS, **EVENT_COLUMNS})
        if rows:
            yield rows

    return feed, *resources, upload_post_history


SOURCE = upload_post_source
