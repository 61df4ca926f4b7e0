"""Upload-Post's scheduled posts (`GET /api/uploadposts/schedule`): jobs followed from the
moment they are scheduled, before they run and reach the history listing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from dlt.sources.helpers.rest_client.paginators import SinglePagePaginator
from requests import HTTPError

from sources.common.bad_input import TolerantClient, reject
from sources.common.counts import Counted
from sources.common.job_refs import InvalidJobRef
from sources.common.polled_resources import Sighting
from sources.common.redaction import redact
from sources.common.tracking import StatusTracker
from sources.upload_post.provider import parse_ref

SCHEDULE_PATH = "api/uploadposts/schedule"
SCHEDULED_TABLE = "upload_post_scheduled_posts"
# one row per scheduled post as last listed; kept after it ran, for the views' scheduled_at
SCHEDULED_COLUMNS = {
    "job_ref": {"data_type": "text", "nullable": False},
    "job_id": {"data_type": "text"},
    "scheduled_date": {"data_type": "timestamp"},
    "post_type": {"data_type": "text"},
    "profile_username": {"data_type": "text"},
    "title": {"data_type": "text"},
    "preview_url": {"data_type": "text"},
    "listed_at": {"data_type": "timestamp"},
}

Discover = Callable[..., Iterator[list[Sighting]]]


class ScheduleCount(Counted):
    LISTED = "scheduled posts listed"


def schedule_discovery(then: Discover | None = None) -> Discover:
    """Discovery through the schedule listing (one request, no paging), then `then`'s."""

    def discover(client: TolerantClient, tracker: StatusTracker,
                 sight: Callable[..., Sighting]) -> Iterator[list[Sighting]]:
        sightings = []
        try:
            for page in client.paginate(SCHEDULE_PATH, paginator=SinglePagePaginator()):
                for item in page:
                    if (sighting := _sighted(item, tracker, sight)) is not None:
                        sightings.append(sighting)
        except HTTPError as exc:  # the listing fails alone: the followed jobs are still polled
            response = exc.response
            if getattr(response, "status_code", None) in (401, 403) and \
                    not tracker.stats.answered:
                raise  # no job answered either: the credential is refused
            reason = f"HTTP {response.status_code}: {response.text[:200].strip()}" \
                if response is not None else str(exc)
            tracker.stats.unit_failed(redact(f"listing /{SCHEDULE_PATH}: {reason}; scheduled "
                                             "posts are looked for again next run"))
            sightings.append({"reject": reject(tracker.stats, reason, response.text
                                               if response is not None else "",
                                               "/" + SCHEDULE_PATH, getattr(
                                                   response, "status_code", None))})
        if sightings:
            yield sightings
        if then is not None:
            yield from then(client, tracker, sight)

    return discover


def _moment(value: Any) -> datetime | None:
    """An ISO 8601 moment (any case, `Z` or an offset; naive is UTC), None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _sighted(item: Any, tracker: StatusTracker, sight: Callable[..., Sighting]
             ) -> Sighting | None:
    """The sighting of one listed post's job, carrying the post for its table; an item
    without a usable `job_id` goes to the rejects table."""
    if not isinstance(item, dict) or not isinstance(item.get("job_id"), str):
        return {"reject": reject(tracker.stats, "scheduled post without a job_id", item,
                                 "/" + SCHEDULE_PATH, 200)}
    try:
        ref = parse_ref(f"job:{item['job_id']}")
    except InvalidJobRef as exc:
        return {"reject": reject(tracker.stats, f"scheduled post with an invalid job_id: {exc}",
                                 item, "/" + SCHEDULE_PATH, 200)}
    tracker.stats.counts[ScheduleCount.LISTED] += 1
    if (when := _moment(item.get("scheduled_date"))) is not None:
        tracker.expect_at(ref.ref, when)  # a 404 before then: not created yet, pending
    post = {**item, "job_ref": ref.ref, "listed_at": tracker.observed_at}
    return sight(ref, "schedule", scheduled=post)
