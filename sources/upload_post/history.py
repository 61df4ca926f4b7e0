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

from sources.common.bad_input import TolerantClient
from sources.common.counts import Count, Counted
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


class HistoryCount(Counted):
    PAGES = "history pages"
    EVENTS = "history events"


class HistoryListing:
    """One run's read of the history listing (most recent first), down to the newest event of
    the previous run minus the overlap; the mark moves only after a complete read."""

    def __init__(self, client: TolerantClient, tracker: StatusTracker, limit: int,
                 cutoff: pendulum.DateTime | None) -> None:
        self.client, self.tracker, self.stats = client, tracker, tracker.stats
        self.limit, self.cutoff = limit, cutoff
        self.newest: pendulum.DateTime | None = None
        self.complete = True  # no page lost, not stopped
        self.seen: set[str] = set()  # events listed so far in this run

    def pages(self, sight: Callable[..., Sighting]) -> Iterator[list[Sighting]]:
        lost_before = self.client.pages_not_read
        pages = self.client.paginate("api/uploadposts/history", data_selector="history",
                                     paginator=PageItemsPaginator(limit=self.limit))
        try:
            for page in pages:
                self.stats.counts[HistoryCount.PAGES] += 1
                events = [{**e, "event_key": event_key(e)} for e in page if isinstance(e, dict)]
                if events and self.seen.issuperset(e["event_key"] for e in events):
                    self._stopped(f"at page {self.stats.counts[HistoryCount.PAGES]}: it named "
                                  "only events already listed in this run (the listing repeats)")
                    break
                self.seen.update(e["event_key"] for e in events)
                sightings, oldest = self._sighted(events, sight)
                yield sightings
                # most recent first: once a page reaches behind the cutoff, the rest is known
                if self.cutoff is not None and oldest is not None and oldest < self.cutoff:
                    break
        except ListingStopped as exc:  # ran away (`max_pages`): what was read stands
            self._stopped(str(exc))
        self.complete = self.complete and self.client.pages_not_read == lost_before

    def _stopped(self, why: str) -> None:
        self.complete = False
        self.stats.counts[Count.PAGES_NOT_READ] += 1
        self.stats.failed_parts.append(f"history listing stopped {why}")

    def _sighted(self, events: list[dict[str, Any]], sight: Callable[..., Sighting]
                 ) -> tuple[list[Sighting], pendulum.DateTime | None]:
        """The sighting of every event's job, and the page's oldest event time."""
        sightings, oldest = [], None
        for event in events:
            at = _timestamp(event.get("upload_timestamp"))
            if at is not None:
                oldest = at if oldest is None else min(oldest, at)
                self.newest = at if self.newest is None else max(self.newest, at)
            ref = history_ref(event)
            sightings.append(sight(ref, "history", event=event) if ref else {"event": event})
        self.stats.counts[HistoryCount.EVENTS] += len(sightings)
        return sightings, oldest


def history_discovery(page_size: int, overlap: timedelta, full_refresh: bool
                      ) -> Callable[..., Iterator[list[Sighting]]]:
    """Discovery through the history listing: the job of every event is sighted."""
    limit = min((n for n in HISTORY_LIMITS if n >= page_size), default=HISTORY_LIMITS[-1])

    def discover(client: TolerantClient, tracker: StatusTracker,
                 sight: Callable[..., Sighting]) -> Iterator[list[Sighting]]:
        state = dlt.current.source_state()
        newest = _timestamp(state.get("history_newest"))
        cutoff = None if full_refresh or newest is None else newest - overlap
        listing = HistoryListing(client, tracker, limit, cutoff)
        yield from listing.pages(sight)
        # a listing cut short: the next run must read past the old mark again
        if listing.complete and listing.newest is not None:
            state["history_newest"] = max(listing.newest, newest or listing.newest).isoformat()

    return discover
