"""Pagination that dlt's stock paginators get wrong for these APIs."""

from __future__ import annotations

from typing import Any

from dlt.common import jsonpath
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator
from requests import Response


class SkipLimitPaginator(OffsetPaginator):
    """skip/limit paging that advances by the rows actually received.

    dlt's OffsetPaginator advances by `limit`, so a server that caps pages below the requested
    limit would make it skip rows. This one moves `skip` by the page length and stops when the
    announced total is reached or a page comes back empty.
    """

    def __init__(self, limit: int, total_path: str = "results.count") -> None:
        super().__init__(limit=limit, offset_param="skip", limit_param="limit",
                         total_path=total_path)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        if not data:
            self._has_next_page = False
            return
        self.current_value += len(data)
        if self.total_path is not None:
            values = jsonpath.find_values(self.total_path, response.json())
            if not values:
                self._handle_missing_total(response.json())
            try:
                total = int(values[0])
            except (TypeError, ValueError):
                self._handle_invalid_total(values[0])
            if self.current_value >= total:
                self._has_next_page = False
