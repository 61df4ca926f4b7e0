"""Upload-Post's history listing (most recent first): one row per platform upload event, and
the job of every event sighted for polling."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import dlt
import pendulum
from dlt.sources.helpers.rest_client import RESTClient

from sources.common.bad_input import PAGES_NOT_READ
from sources.common.job_refs import InvalidJobRef, JobRef
from sources.common.paginators import ListingStopped, PageItemsPaginator
from sources.common.polled_resources import Sighting
from sources.common.tracking import StatusTracker
from sources.upload_post.provider import parse_ref

HISTORY_LIMITS = (10, 20, 50, 100)  # the only page sizes the history endpoint accepts

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
