"""Upload-Post async uploads (`request_id`) and scheduled posts (`job_id`), with per-platform
results, plus the upload history listing through which jobs are discovered."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import dlt
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource

from sources.common.bad_input import as_rejects, reject
from sources.common.columns import ColumnBudget
from sources.common.config_checks import bounds_for
from sources.common.polled_provider import POLL_COLUMNS
from sources.common.polled_resources import DEFAULT_CONCURRENCY, polled_resources
from sources.common.stats import current_stats
from sources.common.throttle import RateLimit
from sources.upload_post.history import EVENT_COLUMNS, history_discovery
from sources.upload_post.provider import PROVIDER
from sources.upload_post.schedule import SCHEDULED_COLUMNS, SCHEDULED_TABLE, schedule_discovery

__all__ = ["IDS_HELP", "PROVIDER", "SOURCE", "upload_post_source"]

IDS_HELP = "request:ID (async upload) or job:ID (scheduled post)"


@dlt.source(name="upload_post")
def upload_post_source(
    api_key: str = dlt.secrets.value,
    request_ids: Sequence[str] | None = None,
    job_ids: Sequence[str] | None = None,
    base_url: str = PROVIDER.base_url,
    discover_from_history: bool = True,
    discover_scheduled: bool = True,
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
        discover_scheduled: read `GET /api/uploadposts/schedule` and follow its scheduled
            posts before they run (their `scheduled_date` kept for the views).
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
    if discover_scheduled:
        discover = schedule_discovery(then=discover)
    feed, *resources = polled_resources(
        PROVIDER, api_key, base_url, ids, full_refresh=full_refresh, discover=discover,
        limit=RateLimit.of(rate_limit_requests, rate_limit_period), concurrency=concurrency,
        ids_key=f"{PROVIDER.env_key('request_ids')} or {PROVIDER.env_key('job_ids')}")

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

    @dlt.transformer(data_from=feed, name=SCHEDULED_TABLE, primary_key="job_ref",
                     write_disposition="merge", columns=SCHEDULED_COLUMNS)
    def upload_post_scheduled_posts(sightings: TDataItems) -> Iterator[Any]:
        """Scheduled posts as last listed, kept after they ran (their scheduled date)."""
        rows = [x["scheduled"] for x in sightings if x.get("scheduled")]
        if rows:
            yield rows

    return feed, *resources, upload_post_history, upload_post_scheduled_posts


SOURCE = upload_post_source
