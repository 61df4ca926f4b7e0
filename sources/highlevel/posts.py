"""The posts of one import (`GET .../csv/{id}`), with their error messages."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sources.common.bad_input import TolerantClient
from sources.common.paginators import ListingStopped, SkipLimitPaginator
from sources.common.stats import ProviderStats
from sources.highlevel.counts import HighLevelCount
from sources.highlevel.listing import listing_path


def read_posts(client: TolerantClient, stats: ProviderStats, location: str, csv_id: str,
               page_size: int) -> list[dict[str, Any]] | None:
    """All posts of one import, each tagged with its import and position; None when a page
    could not be read (the import's posts are then read again next run)."""
    path = f"{listing_path(location)}/{quote(csv_id, safe='')}"
    rows: list[dict[str, Any]] = []
    lost_before = client.pages_not_read
    try:
        for page in client.paginate(path, paginator=SkipLimitPaginator(limit=page_size),
                                    data_selector="results.posts"):
            rows.extend({"csv_id": csv_id, "location_id": location, "post_index": len(rows) + i,
                         **(post if isinstance(post, dict) else {"value": post})}
                        for i, post in enumerate(page))
    except ListingStopped as exc:
        stats.counts[HighLevelCount.POSTS_STOPPED] += 1
        stats.failed_parts.append(f"import {csv_id}: posts listing stopped: {exc}; "
                                  "read again next run")
        return None
    if client.pages_not_read > lost_before:
        return None
    stats.counts[HighLevelCount.POSTS] += len(rows)
    return rows
