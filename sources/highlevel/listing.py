"""HighLevel's CSV import history as a listed provider (`sources.common.listed`): one listing
per location (`GET /social-media-posting/{id}/csv`, newest first), each import's posts a child
list (`GET .../csv/{id}`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from dlt.sources.helpers.rest_client import RESTClient

from sources.common.field_paths import FieldPath
from sources.common.listed.pages import listing_pages as _listing_pages
from sources.common.listed.spec import ChildSpec, ListedSpec
from sources.highlevel.accounts import import_key
from sources.highlevel.post_rows import POSTS_TABLE
from sources.highlevel.settings import PROVIDER

__all__ = ["SPEC", "created_at", "listing_pages", "listing_path"]

SPEC = ListedSpec(
    provider=PROVIDER, path="social-media-posting/{scope_id}/csv", items="results.csvs",
    table="highlevel_csv_uploads", id=FieldPath("_id"), status=FieldPath("status"),
    created=FieldPath("createdAt"), scope_field="locationId", scope_name="location",
    item_name="import", total="results.count", row_key=import_key,
    children=ChildSpec(
        path="social-media-posting/{scope_id}/csv/{item_id}", items="results.posts",
        table=POSTS_TABLE, item_column="csv_id", scope_column="location_id",
        index_column="post_index", name="post", total="results.count",
        # an import deleted between the listing and this call answers 422 (or 404)
        gone_codes=frozenset({404, 422})))


def listing_path(location: str) -> str:
    return SPEC.listing_path(location)


def listing_pages(client: RESTClient, location: str, page_size: int,
                  params: Mapping[str, Any] | None = None) -> Iterator[list[Any]]:
    """Every page of the location's listing as a list; the official schema types `csvs` as
    one object, which becomes a one-item page."""
    return _listing_pages(client, SPEC, location, page_size, params)


def created_at(record: Mapping[str, Any]) -> datetime | None:
    """An import's `createdAt` as an aware datetime, None if missing or unparsable."""
    return SPEC.created_at(record)
