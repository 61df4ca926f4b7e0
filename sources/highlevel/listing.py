"""Paging through one location's CSV import listing (`GET /social-media-posting/{id}/csv`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from dlt.sources.helpers.rest_client import RESTClient

from sources.common.paginators import SkipLimitPaginator


def listing_path(location: str) -> str:
    # percent-encoded whole: no location id can change the request path or query
    return f"social-media-posting/{quote(location, safe='')}/csv"


def listing_pages(client: RESTClient, location: str, page_size: int,
                  params: Mapping[str, Any] | None = None) -> Iterator[list[Any]]:
    """Every page of the listing as a list; the official schema types `csvs` as one object,
    which becomes a one-item page."""
    for page in client.paginate(listing_path(location), params=dict(params or {}),
                                paginator=SkipLimitPaginator(limit=page_size),
                                data_selector="results.csvs"):
        yield page if isinstance(page, list) else [page]
