"""The posts of imports (`GET .../csv/{id}`), with their error messages, fetched concurrently
and read into the run on one thread."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from requests import HTTPError

from sources.common.bad_input import TolerantClient
from sources.common.fan_out import completed, round_robin
from sources.common.paginators import ListingStopped, SkipLimitPaginator
from sources.common.scopes import Scope, ScopedAuth
from sources.common.stats import ProviderStats
from sources.highlevel.counts import HighLevelCount
from sources.highlevel.listing import listing_path


class LocationFailures(Protocol):
    def location_failure(self, location: str, error: BaseException) -> str | None: ...

    def report_failure(self, location: str, failure: str) -> None: ...

    def alone(self, location: str, error: BaseException) -> str | None: ...


@dataclass(frozen=True)
class PostsRead:
    rows: list[dict[str, Any]] | None  # None: a page could not be read (read again next run)
    stopped: str | None = None  # why the posts listing stopped, if it did


def read_posts(client: TolerantClient, location: str, csv_id: str, page_size: int
               ) -> PostsRead:
    """All posts of one import, each tagged with its import and position (thread-safe: it
    counts nothing itself)."""
    path = f"{listing_path(location)}/{quote(csv_id, safe='')}"
    rows: list[dict[str, Any]] = []
    lost_before = client.pages_not_read
    try:
        for page in client.paginate(path, paginator=SkipLimitPaginator(limit=page_size),
                                    data_selector="results.posts",
                                    auth=ScopedAuth(Scope(location, "children"), client.auth)):
            # the position counted from before the page (`len(rows)` grows while extending)
            rows.extend({"csv_id": csv_id, "location_id": location, "post_index": index,
                         **(post if isinstance(post, dict) else {"value": post})}
                        for index, post in enumerate(page, start=len(rows)))
    except ListingStopped as exc:
        return PostsRead(None, str(exc))
    return PostsRead(None if client.pages_not_read > lost_before else rows)


class PostsOfImports:
    """Fetches the posts of many imports with `concurrency` requests in flight, the imports
    of each location in turn (each location has a rate limit of its own); `unread` (resource
    state: import -> location) keeps those whose posts must be read again next run."""

    def __init__(self, client: TolerantClient, stats: ProviderStats, page_size: int,
                 concurrency: int, failures: LocationFailures) -> None:
        self.client, self.stats = client, stats
        self.page_size, self.concurrency = page_size, concurrency
        self.failures = failures

    def fetch(self, wanted: list[tuple[str, str]], unread: dict[str, str]
              ) -> Iterator[list[dict[str, Any]]]:
        """The posts of every (import, location) in `wanted`, one list per import."""
        self.stats.counts[HighLevelCount.POSTS_FETCHED] += len(wanted)
        deferred: Counter[str] = Counter()
        reasons: dict[str, str] = {}
        for outcome in completed(self._read, round_robin(wanted, key=lambda w: w[1]),
                                 self.concurrency, "highlevel-posts"):
            csv_id, location = outcome.item
            if outcome.error is not None:
                if _gone(outcome.error):
                    self.stats.counts[HighLevelCount.POSTS_GONE] += 1
                    unread.pop(csv_id, None)
                    continue
                reason = self.failures.location_failure(location, outcome.error) or \
                    self.failures.alone(location, outcome.error)
                if reason is None:
                    raise outcome.error
                reasons.setdefault(location, reason)
                deferred[location] += 1
                unread[csv_id] = location
                continue
            read = outcome.result
            if read.stopped is not None:
                self.stats.counts[HighLevelCount.POSTS_STOPPED] += 1
                self.stats.failed_parts.append(f"import {csv_id}: posts listing stopped: "
                                               f"{read.stopped}; read again next run")
            if read.rows is None:
                unread[csv_id] = location
                continue
            unread.pop(csv_id, None)
            self.stats.counts[HighLevelCount.POSTS] += len(read.rows)
            if read.rows:
                yield read.rows
        for location, imports in deferred.items():
            self.failures.report_failure(location, f"{reasons[location]}; the posts of "
                                                   f"{imports} import(s) are read next run")

    def _read(self, item: tuple[str, str]) -> PostsRead:
        csv_id, location = item
        return read_posts(self.client, location, csv_id, self.page_size)


def _gone(error: BaseException) -> bool:
    """An import deleted between the listing and this call answers 422/404; that must not
    cost the other imports their posts."""
    return (isinstance(error, HTTPError) and error.response is not None
            and error.response.status_code in (404, 422))
