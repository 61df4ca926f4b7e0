"""Pagination that dlt's stock paginators get wrong for these APIs."""

from __future__ import annotations

from typing import Any

from dlt.sources.helpers.rest_client.paginators import OffsetPaginator, PageNumberPaginator
from requests import Request, Response

from sources.common.errors import ProviderError
from sources.common.responses import compiled, select


class ListingStopped(ProviderError):
    """A listing that would not end (a page repeating, more pages than allowed): stopped."""


def page_length(response: Response, data: list[Any] | None) -> int:
    """Records the server sent on a page: those read and those rejected alone
    (`TolerantClient`), so a page with a record cut still counts as full."""
    return len(data or ()) + getattr(response, "records_rejected", 0)


class SkipLimitPaginator(OffsetPaginator):
    """skip/limit paging that advances by the rows actually received.

    dlt's OffsetPaginator advances by `limit`, so a server that caps pages below the requested
    limit would make it skip rows. This one moves `skip` by the page length and stops on an
    empty page, or once the announced total is reached by a page that is not full: a full page
    may be followed by more whatever the total says (a total that lies low loses nothing). Full
    is `limit` rows, or as many as the largest earlier page (the server's own cap).
    """

    def __init__(self, limit: int, total_path: str | None = "results.count",
                 skip_param: str = "skip", limit_param: str = "limit") -> None:
        # compiled once per process: dlt would parse it anew for every listing
        super().__init__(limit=limit, offset_param=skip_param, limit_param=limit_param,
                         total_path=compiled(total_path) if total_path else None)
        self._largest = 0

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        length = page_length(response, data)
        if not length:
            self._has_next_page = False
            return
        self.current_value += length
        full = length >= self.limit or (self._largest and length >= self._largest)
        self._largest = max(self._largest, length)
        values = select(self.total_path, response) if self.total_path else []
        try:
            total = int(values[0]) if values else None
        except (TypeError, ValueError):
            total = None
        if not full and (total is None or self.current_value >= total):
            self._has_next_page = False


class PageItemsPaginator(PageNumberPaginator):
    """page=1, 2, ... paging whose `total` counts items, not pages (dlt's PageNumberPaginator
    reads `total_path` as a number of pages). Stops on a short page or an empty one; past the
    total while pages come back full (a total that lies low loses nothing).
    """

    def __init__(self, limit: int, total_path: str = "total", page_param: str = "page",
                 limit_param: str = "limit") -> None:
        super().__init__(base_page=1, page_param=page_param, total_path=None,
                         stop_after_empty_page=True)
        self.limit = limit
        self.limit_param = limit_param
        self.items_total_path = total_path
        self._items_seen = 0

    def init_request(self, request: Request) -> None:
        super().init_request(request)  # sets the page parameter, so params is a dict now
        request.params[self.limit_param] = self.limit
        self._items_seen = 0

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        length = page_length(response, data)
        if not length:
            self._has_next_page = False
            return
        self._items_seen += length
        if length < self.limit:
            self._has_next_page = False
        else:
            self.current_value += 1
