"""How far down one scope's listing a run reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass
class ListingWindow:
    """How far down one scope's listing a run reads.

    The listing is newest first (by creation time). A run must see every item created since
    the previous run (minus `overlap`, for late or skewed clocks) and every item that was
    unfinished then; below both, every item is known and finished, so reading stops at the
    first page that reaches below. Anything that breaks the premise (an out-of-order page, an
    unfinished item without a readable creation time) makes the next run read everything again.
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

    def see(self, created: datetime | None, unfinished: bool) -> None:
        """One item (its creation time, if readable), in listing order."""
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
