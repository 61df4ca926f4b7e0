"""HighLevel Social Planner CSV imports: the import history of each location and its posts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import dlt
from dlt.common.typing import TSecretStrValue, TSecretValue
from dlt.extract.resource import DltResource
from requests import PreparedRequest, Response, Session

from sources.common.arrow_items import known_columns, to_arrow
from sources.common.bad_input import TolerantClient, count_misfits, is_reject
from sources.common.columns import ColumnBudget
from sources.common.config_checks import bounds_for, checked_concurrency, checked_origin
from sources.common.listed.children import ChildrenOfItems
from sources.common.listed.counts import ListedCounts
from sources.common.listed.gone import full_pass_due
from sources.common.listed.listing import FailingRows, Gone, Listing, Repeats
from sources.common.listed.resources import children_table, item_table
from sources.common.poller import DEFAULT_CONCURRENCY
from sources.common.scopes import scope_of
from sources.common.session import counting_session
from sources.common.stats import ProviderStats, current_stats
from sources.common.throttle import RateLimit
from sources.common.tracking import StatusTracker
from sources.highlevel.accounts import ACCOUNT_COLUMNS, ACCOUNTS_TABLE, account_table
from sources.highlevel.credentials import (
    LocationBearerAuth,
    discovered_locations,
    location_credentials,
    parse_locations,
)
from sources.highlevel.gone import gone_imports
from sources.highlevel.listing import SPEC
from sources.highlevel.oauth import AgencyOAuthCredentials, agency_settings, agency_tokens
from sources.highlevel.post_rows import (
    POSTS_COLUMNS,
    declare_list_tables,
    post_items,
)
from sources.highlevel.settings import (
    API_VERSION,
    CSV_COLUMNS,
    DELETION_COLUMNS,
    PROVIDER,
    RATE_LIMIT,
)

__all__ = ["KIND", "PROVIDER", "SCOPES_KEY", "SOURCE", "SPEC", "highlevel_source",
           "parse_locations"]

KIND = "listed"  # each location's import history, page by page (its spec: `listing.SPEC`)
SCOPES_KEY = "location_ids"


def location_of(request: PreparedRequest) -> str:
    """The rate-limit key of a request: HighLevel limits each location separately."""
    scope = scope_of(request)
    return "highlevel" if scope is None else f"location {scope.id}"


def _imports(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The imports of an item of the listing: none in a list of reject rows (never both) or
    of imports gone from the listing."""
    return [] if isinstance(batch, Gone | FailingRows) or is_reject(batch[0]) else batch


def _written(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The imports of an item of the listing that get a row and accounts of their own."""
    return [] if isinstance(batch, Repeats) else _imports(batch)


@dlt.source(name="highlevel")
def highlevel_source(
    access_token: TSecretStrValue | None = None,
    location_tokens: TSecretValue | None = None,
    location_ids: list[str] | None = None,
    oauth: AgencyOAuthCredentials | None = None,
    base_url: str = PROVIDER.base_url,
    include_users: bool | None = None,
    user_id: str | None = None,
    page_size: int = 100,
    posts_page_size: int = 100,
    rate_limit_requests: int | None = RATE_LIMIT.requests,
    rate_limit_period: float = RATE_LIMIT.period,
    listing_overlap_minutes: float = 10.0,
    full_pass_hours: float = 24.0,
    fetch_posts: bool = True,
    full_refresh: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Iterable[DltResource]:
    """CSV import history of every location, its status changes, and the posts of new or
    changed imports (all imports with `full_refresh`).

    Args:
        access_token: the token sent (as a Bearer token) for every location without one of
            its own in `location_tokens`.
        location_tokens: location id -> that sub-account's token (a Private Integration Token):
            a TOML table, or a JSON object in the environment.
        location_ids: Locations whose import history is read (default: those of
            `location_tokens`, and those where the agency app is installed if `oauth.app_id`).
        oauth: an agency's Marketplace app (`[sources.highlevel.oauth]`): a token is minted
            for every location without one of its own.
        base_url: API origin (scheme, host, port); the documented one by default.
        include_users / user_id: optional filters passed through to the listing call.
        page_size / posts_page_size: `limit` asked for; a smaller server-side cap is handled.
        rate_limit_requests / rate_limit_period: at most this many requests per location in any
            window of this many seconds (documented burst limit: 100 per 10 s); 0 turns it off.
        listing_overlap_minutes: how far behind the newest import already seen each run reads
            again (the listing is read newest first, down to there and to the oldest import
            that was unfinished).
        full_pass_hours: how often a run reads every page (then missing imports are cancelled).
        fetch_posts: read the posts (and their error messages) of new and changed imports.
        full_refresh: read every listing page, and fetch the posts of every import, not only
            of new or changed ones.
        concurrency: requests in flight at once (locations listed side by side, posts
            fetched side by side), each location within its own rate limit.
    """
    stats = current_stats(PROVIDER.name)
    base_url = checked_origin(PROVIDER, base_url)
    bounds = bounds_for(PROVIDER)
    tracker = StatusTracker(PROVIDER, stats, compact_finished=True)  # listed again anyway
    params = {k: v for k, v in (("includeUsers", None if include_users is None else
                                 str(include_users).lower()), ("userId", user_id)) if v}
    not_read: list[tuple[Response, str]] = []  # appended on the client's threads
    cut: list[tuple[Response, Any, str]] = []  # records over a bound, likewise
    concurrency = checked_concurrency(PROVIDER, concurrency)
    session = _session(stats, base_url, bounds,
                       RateLimit.of(rate_limit_requests, rate_limit_period))
    warned = stats.warnings
    agency = agency_tokens(agency_settings(oauth, warned), session, base_url, warned)
    locations, credentials = location_credentials(access_token, location_tokens, location_ids,
                                                  agency, warned)
    client = TolerantClient(base_url=base_url, headers={"Version": API_VERSION},
                            auth=LocationBearerAuth(credentials), session=session,
                            on_unreadable=lambda response, reason: not_read.append(
                                (response, reason)), max_pages=bounds.max_pages,
                            on_record_rejected=lambda response, record, reason: cut.append(
                                (response, record, reason)))
    listing = Listing(
        SPEC, client, tracker, stats, ColumnBudget("highlevel_csv_uploads", bounds.max_columns,
                                                   PROVIDER.env_key("max_columns")),
        not_read, cut, page_size=page_size, params=params,
        overlap=timedelta(minutes=listing_overlap_minutes), full_refresh=full_refresh,
        track_changes=fetch_posts, concurrency=concurrency, credentials=credentials,
        gone=gone_imports)
    imports = _imports_resource(listing, locations, full_pass_hours)
    loaded = (imports, _uploads(imports, listing), _accounts(imports))
    if not fetch_posts:
        return loaded
    posts = ChildrenOfItems(client, SPEC, stats, posts_page_size, concurrency,
                            listing.failures)
    return (*loaded, _posts(imports, listing, posts, full_refresh))


def _uploads(imports: DltResource, listing: Listing) -> DltResource:
    """One row per import (merged on `_id`), as Arrow where it fits; deletions inferred from
    the listing go to `highlevel_csv_deletions`."""
    return item_table(imports, listing, CSV_COLUMNS, rows=_arrow_rows(listing.stats),
                      gone=("highlevel_csv_deletions", "csv_id", DELETION_COLUMNS))


def _session(stats: ProviderStats, base_url: str, bounds: Any, limit: RateLimit | None
             ) -> Session:
    """The API session: a rate limit per location, pages counted by kind."""
    counts = ListedCounts(SPEC)

    def count_page(response: Response) -> None:
        scope = scope_of(response.request)
        if scope is None or scope.reads not in ("listing", "children"):
            return
        stats.counts[counts.listing_pages if scope.reads == "listing"
                     else counts.child_pages] += 1

    return counting_session(stats, base_url, bounds, on_response=count_page, limit=limit,
                            key_of=location_of)


def _imports_resource(listing: Listing, locations: list[str] | None,
                      full_pass_hours: float) -> DltResource:
    @dlt.resource(name="highlevel_imports", selected=False)
    def imports() -> Iterator[list[dict[str, Any]]]:
        """The import history of every location in batches, every field kept (ids
        percent-encoded whole, so no id can change the request path), and records that cannot
        be loaded as lists of reject rows of their own. Not loaded itself: the transformers
        split it into imports, accounts, history and posts."""
        state = dlt.current.resource_state()
        marks = state.setdefault("listing_marks", {})
        credentials = listing.credentials
        now = listing.tracker.observed_at
        listing.read_all = listing.full_refresh or full_pass_due(state, now, full_pass_hours)
        if locations is None:
            read = discovered_locations(credentials)
            if (stopped := credentials.agency.discovery_stopped) is not None:
                listing.stats.failed_parts.append(f"{stopped}; the locations listed before "
                                                  "are read")
        yield from listing.batches(read if locations is None else locations, marks)
        if listing.read_all and listing.complete:
            state["full_pass_at"] = now.isoformat()
        if credentials.agency is not None:
            credentials.agency.flush()

    return imports


def _arrow_rows(stats: ProviderStats) -> Any:
    """The rows hook of the imports table (`item_table`): a batch is written as Arrow
    (parquet, no row-by-row normalizing) when every value fits its column; otherwise the
    records with a field of the wrong type (counted as bad input) go as dicts, for dlt to keep
    such values in variant columns. `accountIds` go to the accounts table."""

    def rows(batch: list[dict[str, Any]]) -> Iterator[Any]:
        schema = dlt.current.source_schema()
        known = known_columns(schema, "highlevel_csv_uploads", CSV_COLUMNS)
        table = to_arrow(batch, known, schema.naming, unnested=("accountIds",))
        if table is not None:
            yield table
            return
        records = [{k: v for k, v in record.items()
                    if k != "accountIds" or not isinstance(v, list)} for record in batch]
        fit, misfit = [], []
        for record in records:
            (misfit if count_misfits(stats, record, CSV_COLUMNS) else fit).append(record)
        table = to_arrow(fit, known, schema.naming) if fit else None
        if table is not None:
            yield table
        if misfit or table is None:
            yield misfit + (fit if table is None else [])

    return rows


def _accounts(imports: DltResource) -> DltResource:
    @dlt.transformer(data_from=imports, name=ACCOUNTS_TABLE, merge_key="_dlt_root_id",
                     columns=ACCOUNT_COLUMNS,
                     # the accounts of every import loaded now replace the ones it had; no
                     # primary key: dlt would then delete on `pk OR merge key`, which DuckDB
                     # cannot hash-join
                     write_disposition={"disposition": "merge", "strategy": "delete-insert"})
    def accounts(batch: list[dict[str, Any]]) -> Iterator[Any]:
        """One row per account of an import, as dlt would unnest `accountIds` (`value`,
        `_dlt_parent_id` = the import's `_dlt_id`, `_dlt_list_idx`), written as Arrow."""
        table = account_table(_written(batch))
        if table is not None:
            yield table

    return accounts


def _posts(imports: DltResource, listing: Listing, posts: ChildrenOfItems,
           full_refresh: bool) -> DltResource:
    """Posts (with their error messages) of imports that are new or changed, and of those
    whose posts could not be read before; written as Arrow with their lists' tables."""
    agency = listing.credentials.agency
    resource = children_table(
        imports, listing, posts, full_refresh, POSTS_COLUMNS,
        rows=lambda read: post_items(read, dlt.current.source_schema()),
        after=None if agency is None else agency.flush, unread_key="posts_unread")
    declare_list_tables(resource)
    return resource


SOURCE = highlevel_source
