"""HighLevel Social Planner CSV imports: the import history of each location and its posts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import dlt
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources
from requests import HTTPError

from sources.common.paginators import SkipLimitPaginator
from sources.common.stats import counting_session, current_stats
from sources.common.tracking import HISTORY_COLUMNS, StatusTracker
from sources.highlevel.settings import API_VERSION, CSV_COLUMNS, POST_COLUMNS, PROVIDER

__all__ = ["PROVIDER", "SOURCE", "highlevel_source"]


def _as_list(value: str | Iterable[str]) -> list[str]:
    """Location ids from TOML/JSON lists or a comma-separated environment variable."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


# the column rest_api's include_from_parent adds for the location a page was read from
PARENT_LOCATION = "_highlevel_locations_location_id"


def _items(data: TDataItems) -> list[dict[str, Any]]:
    return data if isinstance(data, list) else [data]


@dlt.source(name="highlevel")
def highlevel_source(
    access_token: str = dlt.secrets.value,
    location_ids: list[str] = dlt.config.value,
    base_url: str = PROVIDER.base_url,
    include_users: bool | None = None,
    user_id: str | None = None,
    page_size: int = 100,
    posts_page_size: int = 100,
    full_refresh: bool = False,
) -> Iterable[DltResource]:
    """CSV import history of every location, its status changes, and the posts of new or
    changed imports (all imports with `full_refresh`).

    Args:
        access_token: Sub-account or private integration token, sent as a Bearer token.
        location_ids: Locations whose import history is read.
        base_url: API origin (scheme, host, port); the documented one by default.
        include_users / user_id: optional filters passed through to the listing call.
        page_size / posts_page_size: `limit` asked for; a smaller server-side cap is handled.
        full_refresh: fetch the posts of every import, not only of new or changed ones.
    """
    stats = current_stats(PROVIDER.name)
    stats.secrets.add(access_token)
    tracker = StatusTracker(PROVIDER, stats)
    session = counting_session(stats, on_response=lambda r: stats.counts.update(
        ["listing pages" if urlsplit(r.url).path.endswith("/csv") else "post pages"]))
    auth = BearerTokenAuth(access_token)
    headers = {"Version": API_VERSION}
    locations = _as_list(location_ids)

    @dlt.resource(name="highlevel_locations", selected=False)
    def highlevel_locations() -> Iterator[list[dict[str, str]]]:
        # one page, as rest_api's dependent resources expect; ids are percent-encoded whole so
        # no id can change the request path
        yield [{"location_id": loc, "path_id": quote(loc, safe="")} for loc in locations]

    params: dict[str, Any] = {}
    if include_users is not None:
        params["includeUsers"] = str(include_users).lower()
    if user_id:
        params["userId"] = user_id

    config: RESTAPIConfig = {
        "client": {"base_url": base_url, "auth": auth, "headers": headers, "session": session},
        "resources": [
            highlevel_locations,
            {
                "name": "highlevel_csv_uploads",
                "primary_key": "_id",
                "write_disposition": "merge",
                "columns": CSV_COLUMNS,
                "endpoint": {
                    "path": "social-media-posting/{resources.highlevel_locations.path_id}/csv",
                    "params": params,
                    "paginator": SkipLimitPaginator(limit=page_size),
                    # an object (as the official schema types it) is wrapped into a one-row page
                    "data_selector": "results.csvs",
                },
                "include_from_parent": ["location_id"],
            },
        ],
    }
    uploads = next(r for r in rest_api_resources(config) if r.name == "highlevel_csv_uploads")

    def is_import(record: dict[str, Any]) -> bool:
        # an empty object stands for "no import" in the object-shaped answer
        return bool(set(record) - {PARENT_LOCATION})

    def observe(record: dict[str, Any]) -> dict[str, Any]:
        location = record.pop(PARENT_LOCATION, None)
        if not record.get("locationId"):
            record["locationId"] = location
        tracker.observe(str(record.get("_id")), record.get("status"), record.get("locationId"))
        record["last_seen_at"] = tracker.observed_at
        return record

    uploads.add_filter(is_import).add_map(observe)

    @dlt.transformer(data_from=uploads, name="highlevel_status_history",
                     write_disposition="append", columns=HISTORY_COLUMNS)
    def highlevel_status_history(imports: TDataItems) -> Iterator[list[dict[str, Any]]]:
        """One row per import whose status is new or changed since the last run."""
        rows = [tracker.changes[str(i.get("_id"))] for i in _items(imports)
                if str(i.get("_id")) in tracker.changes]
        if rows:
            yield rows

    posts_client = RESTClient(base_url=base_url, headers=headers, auth=auth, session=session)

    def read_posts(location: str, csv_id: str) -> Iterator[list[dict[str, Any]]]:
        """Every page of one import's posts, each post tagged with its import and position."""
        path = f"social-media-posting/{quote(location, safe='')}/csv/{quote(csv_id, safe='')}"
        index = 0
        for page in posts_client.paginate(
            path, paginator=SkipLimitPaginator(limit=posts_page_size),
            data_selector="results.posts",
        ):
            rows = [{"csv_id": csv_id, "location_id": location, "post_index": index + i, **post}
                    for i, post in enumerate(page)]
            index += len(rows)
            stats.counts["posts"] += len(rows)
            yield rows

    @dlt.transformer(
        data_from=uploads,
        name="highlevel_csv_posts",
        # every fetch replaces all posts of that import
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=("csv_id", "post_index"),
        merge_key="csv_id",
        columns=POST_COLUMNS,
    )
    def highlevel_csv_posts(imports: TDataItems) -> Iterator[list[dict[str, Any]]]:
        """Posts (with their error messages) of imports that are new or changed."""
        for csv in _items(imports):
            csv_id = str(csv.get("_id"))
            if not (full_refresh or csv_id in tracker.changes):
                continue
            stats.counts["imports with posts fetched"] += 1
            try:
                yield from read_posts(str(csv["locationId"]), csv_id)
            except HTTPError as exc:
                # an import deleted between the listing and this call answers 422/404; that
                # must not cost the other imports their posts
                if exc.response is None or exc.response.status_code not in (404, 422):
                    raise
                stats.counts["posts unavailable (import gone)"] += 1

    return uploads, highlevel_status_history, highlevel_csv_posts


SOURCE = highlevel_source
