"""Paging through one scope's listing, and one item's child list, each request marked with
its scope (`scopes`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dlt.sources.helpers.rest_client import RESTClient

from sources.common.listed.spec import ChildSpec, ListedSpec
from sources.common.paginators import SkipLimitPaginator
from sources.common.scopes import Scope, ScopedAuth


def listing_pages(client: RESTClient, spec: ListedSpec, scope: str, page_size: int,
                  params: Mapping[str, Any] | None = None) -> Iterator[list[Any]]:
    """Every page of `scope`'s listing as a list (an API may answer one object where its
    schema says a list: a one-item page)."""
    paginator = SkipLimitPaginator(limit=page_size, total_path=spec.total,
                                   skip_param=spec.skip_param, limit_param=spec.limit_param)
    for page in client.paginate(spec.listing_path(scope), params=dict(params or {}),
                                paginator=paginator, data_selector=spec.items,
                                auth=ScopedAuth(Scope(scope, "listing"), client.auth)):
        yield page if isinstance(page, list) else [page]


def child_pages(client: RESTClient, spec: ListedSpec, child: ChildSpec, scope: str,
                item_id: str, page_size: int) -> Iterator[list[Any]]:
    """Every page of one item's child list."""
    paginator = SkipLimitPaginator(limit=page_size, total_path=child.total,
                                   skip_param=spec.skip_param, limit_param=spec.limit_param)
    yield from client.paginate(child.path_for(scope, item_id), paginator=paginator,
                               data_selector=child.items,
                               auth=ScopedAuth(Scope(scope, "children"), client.auth))
