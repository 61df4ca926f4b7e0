"""Paging through one location's CSV import listing (`GET /social-media-posting/{id}/csv`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from dlt.sources.helpers.rest_client import RESTClient

from sources.common.paginators import SkipLimitPaginator
from sources.common.scopes import Scope, ScopedAuth


def listing_path(location: str) -> str:
    # percent-encoded whole: no location id can change the request path or query
    return f"social-media-posting/{quote(location, safe='')}/csv"


def listing_pages(client: RESTClient, location: str, page_size: int,
                  params: Mapping[str, Any] | None = None) -> Iterator[list[Any]]:
    """Every page of the listing as a list; the official schema types `csvs` as one object,
    which becomes a one-item page."""
    for page in client.paginate(listing_path(location), params=dict(params or {}),
                                paginator=SkipLimitPaginator(limit=page_size),
                                data_selector="results.csvs",
                                auth=ScopedAuth(Scope(location, "listing"), client.auth)):
        yield page if isinstance(page, list) else [page]


def created_at(record: Mapping[str, Any]) -> datetime | None:
    """An import's `createdAt` as an aware datetime, None if missing or unparsable."""
    value = record.get("createdAt")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass
class ListingWindow:
    """How far down one location's listing a run reads.

    The listing is newest first (by `createdAt`; the simulator serves it so). A run must see
    every import created since the previous run (minus `overlap`, for late or skewed clocks) and
    every import that was unfinished then; below both, every import is known and finished, so
    reading stops at the first page that reaches below. Anything that breaks the premise (an
    out-of-order page, an unfinished import without a readable `createdAt`) makes the next run
    read everything again.
    """

    boundary: datetime | None  # None: read every page
    newest: datetime | None = None
    oldest_unfinished: datetime | None = None
    undated_unfinished: bool = False
    ordered: bool = True
    last: datetime | None = None
    skipped: int = 0  # records before the next page
    failure: Exception | None = None  # why reading stopped early (the mark then stays)

    @classmethod
    def from_mark(cls, mark: Mapping[str, Any] | None, overlap: timedelta) -> ListingWindow:
        if not mark or mark.get("read_all") or not mark.get("newest"):
            return cls(boundary=None)
        boundary = datetime.fromisoformat(mark["newest"]) - overlap
        if mark.get("oldest_unfinished"):
            boundary = min(boundary, datetime.fromisoformat(mark["oldest_unfinished"]))
        return cls(boundary=boundary)

    def see(self, record: Mapping[str, Any], unfinished: bool) -> None:
        """One import, in listing order."""
        created = created_at(record)
        if created is None:
            self.undated_unfinished |= unfinished
            return
        if self.last is not None and created > self.last:
            self.ordered = False
        self.last = created
        self.newest = created if self.newest is None else max(self.newest, created)
        if unfinished:
            self.oldest_unfinished = (created if self.oldest_unfinished is None
                                      else min(self.oldest_unfinished, created))

    @property
    def can_stop(self) -> bool:
        return (self.boundary is not None and self.ordered and self.last is not None
                and self.last < self.boundary)

    def mark(self, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        """The mark for the next run, after this run read down to where it stopped."""
        newest = self.newest
        if previous and previous.get("newest"):
            before = datetime.fromisoformat(previous["newest"])
            newest = before if newest is None else max(newest, before)
        return {"newest": newest.isoformat() if newest else None,
                "oldest_unfinished": (self.oldest_unfinished.isoformat()
                                      if self.oldest_unfinished else None),
                "read_all": self.undated_unfinished or not self.ordered}
