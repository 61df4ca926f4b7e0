"""HighLevel Social Planner CSV imports: the import history of each location and its posts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import dlt
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from requests import HTTPError, Response

from sources.common.arrow_items import history_arrow, load_id_on_arrow_items, to_arrow
from sources.common.bad_input import (
    PAGES_NOT_READ,
    TolerantClient,
    as_rejects,
    count_misfits,
    is_reject,
    reject,
    reject_response,
)
from sources.common.columns import ColumnBudget
from sources.common.config_checks import (
    MAX_STATUS_LENGTH,
    bounds_for,
    checked_origin,
    checked_secret,
)
from sources.common.paginators import ListingStopped, SkipLimitPaginator
from sources.common.polling import InvalidJobRef, check_id
from sources.common.redaction import redact
from sources.common.stats import counting_session, current_stats
from sources.common.status import TERMINAL
from sources.common.throttle import RateLimit
from sources.common.tracking import HISTORY_HINTS, StatusTracker
from sources.highlevel.accounts import (
    ACCOUNT_COLUMNS,
    ACCOUNTS_TABLE,
    account_table,
    import_key,
)
from sources.highlevel.listing import ListingWindow, listing_pages, listing_path
from sources.highlevel.settings import (
    API_VERSION,
    CSV_COLUMNS,
    POST_COLUMNS,
    PROVIDER,
    RATE_LIMIT,
)

__all__ = ["PROVIDER", "SOURCE", "highlevel_source"]

# records per item handed to dlt: every Arrow item costs dlt a schema merge and validation
# (~13 ms), paid per listing page it was 60 % of loading 20,000 imports
BATCH = 5_000


def parse_locations(value: str | Iterable[str]) -> list[str]:
    """Location ids from a TOML/JSON list (or a comma-separated string); InvalidJobRef naming
    every id that cannot be one (empty, spaces, control characters, a dot segment)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    locations, bad = [], []
    for item in items:
        try:
            locations.append(check_id(str(item), "location id"))
        except InvalidJobRef as exc:
            bad.append(str(exc))
    if bad:
        raise InvalidJobRef(f"invalid location ids: {'; '.join(bad)}")
    return locations


def location_of(url: str) -> str:
    """The rate-limit key of a request: HighLevel limits each location separately."""
    parts = urlsplit(url).path.split("/")
    if "social-media-posting" in parts:
        index = parts.index("social-media-posting") + 1
        if index < len(parts):
            return f"location {parts[index]}"
    return "highlevel"


def _usable_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


def _rejects(batch: list[dict[str, Any]]) -> bool:
    """Whether an item of the listing holds reject rows (else imports: never both)."""
    return is_reject(batch[0])


def _imports(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The imports of an item of the listing: none in a list of reject rows."""
    return [] if _rejects(batch) else batch


class Repeats(list[dict[str, Any]]):
    """Imports the listing named again in a run that appends (`first_load`): their status
    changes and posts count, their rows are not loaded twice."""


def _loaded(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The imports of an item of the listing that get a row (and accounts) of their own."""
    return [] if isinstance(batch, Repeats) else _imports(batch)


@dlt.source(name="highlevel")
def highlevel_source(
    access_token: str = dlt.secrets.value,
    location_ids: list[str] = dlt.config.value,
    base_url: str = PROVIDER.base_url,
    include_users: bool | None = None,
    user_id: str | None = None,
    page_size: int = 100,
    posts_page_size: int = 100,
    rate_limit_requests: int | None = RATE_LIMIT.requests,
    rate_limit_period: float = RATE_LIMIT.period,
    listing_overlap_minutes: float = 10.0,
    fetch_posts: bool = True,
    full_refresh: bool = False,
    first_load: bool = False,
) -> Iterable[DltResource]:
    """CSV import history of every location, its status changes, and the posts of new or
    changed imports (all imports with `full_refresh`).

    Args:
        access_token: Sub-account or private integration token, sent as a Bearer token.
        location_ids: Locations whose import history is read.
        base_url: API origin (scheme, host, port); the documented one by default.
        include_users / user_id: optional filters passed through to the listing call.
        page_size / posts_page_size: `limit` asked for; a smaller server-side cap is handled.
        rate_limit_requests / rate_limit_period: at most this many requests per location in any
            window of this many seconds (documented burst limit: 100 per 10 s); 0 turns it off.
        listing_overlap_minutes: how far behind the newest import already seen each run reads
            again (the listing is read newest first, down to there and to the oldest import
            that was unfinished).
        fetch_posts: read the posts (and their error messages) of new and changed imports.
        full_refresh: read every listing page, and fetch the posts of every import, not only
            of new or changed ones.
        first_load: the destination holds nothing of this source yet (the runner asks it for
            the source's stored schema). A run that also starts from an empty state then
            appends imports and accounts instead of merging them (see `appending`).
    """
    stats = current_stats(PROVIDER.name)
    access_token = checked_secret(access_token, PROVIDER.secret_env_key)
    base_url = checked_origin(PROVIDER, base_url)
    bounds = bounds_for(PROVIDER)
    import_columns = ColumnBudget("highlevel_csv_uploads", bounds.max_columns,
                                  PROVIDER.env_key("max_columns"))
    # the listing names every import again: finished ones need no reference in the state
    tracker = StatusTracker(PROVIDER, stats, compact_finished=True)
    # imports whose status is new or changed this run, for their posts (a run that reads no
    # posts keeps no set: on a first run it would hold every import of the history)
    changed: set[str] = set()
    # whether this run appends imports and accounts: decided when the listing starts, from
    # `first_load` and the state then (restored from the destination by then, if it had one)
    appending = False
    locations = parse_locations(location_ids)
    session = counting_session(
        stats, base_url, bounds, on_response=lambda r: stats.counts.update(
            ["listing pages" if urlsplit(r.url).path.endswith("/csv") else "post pages"]),
        limit=RateLimit.of(rate_limit_requests, rate_limit_period), key_of=location_of)
    auth = BearerTokenAuth(access_token)
    headers = {"Version": API_VERSION}

    params: dict[str, Any] = {}
    if include_users is not None:
        params["includeUsers"] = str(include_users).lower()
    if user_id:
        params["userId"] = user_id

    def on_unreadable(response: Response, reason: str) -> None:
        stats.counts[PAGES_NOT_READ] += 1
        pending_rejects.append(reject_response(stats, response, reason, at=tracker.observed_at))

    pending_rejects: list[dict[str, Any]] = []
    client = TolerantClient(base_url=base_url, headers=headers, auth=auth, session=session,
                            on_unreadable=on_unreadable, max_pages=bounds.max_pages)

    def taken_rejects() -> list[dict[str, Any]]:
        rejects = list(pending_rejects)
        pending_rejects.clear()
        return rejects

    def take_rejects(columns: TTableSchemaColumns) -> Iterator[Any]:
        """Rejects found so far, from the resource declaring `columns`."""
        if pending_rejects:
            yield as_rejects(PROVIDER.name, taken_rejects(), columns)

    def read_location(location: str, marks: dict[str, Any]) -> Iterator[Any]:
        """The listing pages of one location a run needs (`ListingWindow`; all of them on a
        full refresh): the imports of each page, rejects left in `pending_rejects`."""
        window = ListingWindow.from_mark(None if full_refresh else marks.get(location),
                                         timedelta(minutes=listing_overlap_minutes))
        unreadable_before = stats.counts[PAGES_NOT_READ]
        seen: set[str] = set()  # ids listed so far in this run: a page of none new repeats
        for page in listing_pages(client, location, page_size, params):
            records = []
            for record in page:
                if isinstance(record, dict) and not record:
                    continue  # an empty object stands for "no import" in the object-shaped answer
                if (why := unusable(record)) is not None:
                    pending_rejects.append(reject(stats, why, record, "/" + listing_path(location),
                                                  200, at=tracker.observed_at))
                    continue
                records.append(prepare(record, location))
            if page and records and seen.issuperset(r["_id"] for r in records):
                raise ListingStopped(f"a listing page at skip={len(seen)} named only imports "
                                     "already listed in this run (the listing repeats)")
            seen.update(r["_id"] for r in records)
            known = observe(records)
            for record in records:
                # just observed: finished is what its status says (cheaper than the state)
                window.see(record, PROVIDER.canonical(record.get("status")) not in TERMINAL)
            # appending, nothing was known before this run: these were named earlier in it, as
            # the listing shifted under new imports. Their rows stay as first seen; the shift
            # also breaks the listing's order, so the next run reads (and merges) it all again
            if appending and known:
                stats.counts["imports listed twice"] += len(known)
                again = set(known)
                yield [r for i, r in enumerate(records) if i not in again]
                yield Repeats(records[i] for i in known)
            else:
                yield records
            if window.can_stop:
                stats.counts["listings read incrementally"] += 1
                break
        if stats.counts[PAGES_NOT_READ] == unreadable_before:  # a page cut short: no new mark
            marks[location] = window.mark(marks.get(location))

    def unusable(record: Any) -> str | None:
        """Why a listed import cannot be loaded (its raw form goes to the rejects), or None."""
        if not isinstance(record, dict) or not _usable_id(record.get("_id")):
            return "import without a usable _id"
        if len(str(record["_id"])) > MAX_STATUS_LENGTH:
            return f"import _id over {MAX_STATUS_LENGTH} characters"
        status = record.get("status")
        if isinstance(status, str) and len(status) > MAX_STATUS_LENGTH:
            return f"import status of {len(status)} characters (over {MAX_STATUS_LENGTH})"
        return import_columns.admit_flat(record)

    @dlt.resource(name="highlevel_imports", selected=False)
    def imports() -> Iterator[list[dict[str, Any]]]:
        """The import history of every location in batches of `BATCH` records, every field
        kept (ids percent-encoded whole, so no id can change the request path), and records
        that cannot be loaded as lists of reject rows of their own (`_rejects`). Not loaded
        itself: the transformers below split it into imports, accounts, history and posts."""
        nonlocal appending
        marks = dlt.current.resource_state().setdefault("listing_marks", {})
        # the tracker knowing no import makes every import it knows during the run one listed
        # twice in it, the only duplicates an appended table could get
        appending = first_load and not marks and tracker.knows_no_job()
        batch: list[dict[str, Any]] = []
        for location in locations:
            try:
                for records in read_location(location, marks):
                    if pending_rejects:  # loaded from the uploads transformer
                        yield taken_rejects()
                    if isinstance(records, Repeats):
                        yield records
                        continue
                    batch.extend(records)
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
            except HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else 0
                if code in (401, 403, 429) or code >= 500:
                    raise  # the provider's run ends: a credential, limit or outage problem
                # one location the API refuses (unknown, no access) does not cost the others
                stats.failed_parts.append(redact(
                    f"location {location}: HTTP {code}: {exc.response.text[:200].strip()}"))
            except ListingStopped as exc:  # what was read loads; the mark stays where it was
                stats.failed_parts.append(f"location {location}: listing stopped: {exc}; "
                                          "the imports listed before it are loaded")
            if pending_rejects:
                yield taken_rejects()
        tracker.save()  # the run's last observation is made
        if batch:
            yield batch

    def prepare(record: dict[str, Any], location: str) -> dict[str, Any]:
        if not record.get("locationId"):
            record["locationId"] = location
        record["_id"] = str(record["_id"])
        record["last_seen_at"] = tracker.observed_at
        record["_dlt_id"] = import_key(record["_id"])  # its accounts point at it
        return record

    def observe(records: list[dict[str, Any]]) -> list[int]:
        """The status of a page's imports: history rows for new and changed ones; returns the
        positions of imports observed before."""
        sightings = tracker.observe_many([r["_id"] for r in records],
                                         [r.get("status") for r in records],
                                         [r.get("locationId") for r in records])
        if fetch_posts:
            changed.update(records[i]["_id"] for i in sightings.changed)
        return sightings.known

    def appended(item: Any) -> Any:
        """`item` of a table this run appends to (`appending`), else as it is.

        A first run writes every import once into empty tables, so dlt's merge (a staging copy
        of every row, deduplication, a delete) only cost time: 0.8-1.1 s of DuckDB's 1.9-2.3 s
        for 100,000 imports (bench/RESULTS.md). The resource's own hint (merge) is back in
        force from the next run on."""
        if not appending:
            return item
        return dlt.mark.with_hints(item, dlt.mark.make_hints(write_disposition="append"))

    @dlt.transformer(data_from=imports, name="highlevel_csv_uploads", primary_key="_id",
                     write_disposition="merge", columns=CSV_COLUMNS)
    def uploads(batch: list[dict[str, Any]]) -> Iterator[Any]:
        """One row per import (merged on `_id`); its `accountIds` go to the accounts table.

        A batch is written as Arrow (parquet, no row-by-row normalizing) when every value fits
        its column; otherwise the records with a field of the wrong type (counted as bad input)
        go as dicts, for dlt to keep such values in variant columns."""
        if _rejects(batch):
            yield as_rejects(PROVIDER.name, batch, CSV_COLUMNS)
            return
        imports = _loaded(batch)
        if not imports:
            return
        schema = dlt.current.source_schema()
        known = schema.tables.get("highlevel_csv_uploads", {}).get("columns") or CSV_COLUMNS
        table = to_arrow(imports, known, schema.naming, unnested=("accountIds",))
        if table is not None:
            yield appended(table)
            return
        rows = [{k: v for k, v in record.items() if k != "accountIds" or not isinstance(v, list)}
                for record in imports]
        fit, misfit = [], []
        for row in rows:
            (misfit if count_misfits(stats, row, CSV_COLUMNS) else fit).append(row)
        table = to_arrow(fit, known, schema.naming) if fit else None
        if table is not None:
            yield appended(table)
        if misfit or table is None:
            yield appended(misfit + (fit if table is None else []))

    @dlt.transformer(data_from=imports, name=ACCOUNTS_TABLE, merge_key="_dlt_root_id",
                     columns=ACCOUNT_COLUMNS,
                     # the accounts of every import loaded now replace the ones it had; no
                     # primary key: dlt would then delete on `pk OR merge key`, which DuckDB
                     # cannot hash-join (2.4 s of a 4.7 s load of 100,000 imports)
                     write_disposition={"disposition": "merge", "strategy": "delete-insert"})
    def accounts(batch: list[dict[str, Any]]) -> Iterator[Any]:
        """One row per account of an import, as dlt would unnest `accountIds` (`value`,
        `_dlt_parent_id` = the import's `_dlt_id`, `_dlt_list_idx`), written as Arrow."""
        table = account_table(_loaded(batch))
        if table is not None:
            yield appended(table)

    @dlt.transformer(data_from=imports, name="highlevel_status_history",
                     **HISTORY_HINTS)
    def highlevel_status_history(batch: list[dict[str, Any]]) -> Iterator[Any]:
        """One row per import whose status is new or changed since the last run."""
        rows = tracker.take_changes(i["_id"] for i in _imports(batch))
        if rows:
            yield appended(history_arrow(rows))

    def read_posts(location: str, csv_id: str) -> list[dict[str, Any]] | None:
        """All posts of one import, each tagged with its import and position; None when a page
        could not be read (the import's posts are then read again next run)."""
        path = f"{listing_path(location)}/{quote(csv_id, safe='')}"
        rows: list[dict[str, Any]] = []
        unreadable_before = len(pending_rejects)
        try:
            for page in client.paginate(path, paginator=SkipLimitPaginator(limit=posts_page_size),
                                        data_selector="results.posts"):
                rows.extend({"csv_id": csv_id, "location_id": location,
                             "post_index": len(rows) + i,
                             **(post if isinstance(post, dict) else {"value": post})}
                            for i, post in enumerate(page))
        except ListingStopped as exc:
            stats.counts["posts listings stopped"] += 1
            stats.failed_parts.append(f"import {csv_id}: posts listing stopped: {exc}; "
                                      "read again next run")
            return None
        if len(pending_rejects) > unreadable_before:
            return None
        stats.counts["posts"] += len(rows)
        return rows

    @dlt.transformer(
        data_from=imports,
        name="highlevel_csv_posts",
        # every fetch replaces all posts of that import
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=("csv_id", "post_index"),
        merge_key="csv_id",
        columns=POST_COLUMNS,
    )
    def highlevel_csv_posts(batch: list[dict[str, Any]]) -> Iterator[Any]:
        """Posts (with their error messages) of imports that are new or changed, and of those
        whose posts could not be read before."""
        unread: dict[str, str] = dlt.current.resource_state().setdefault("posts_unread", {})
        for csv in _imports(batch):
            csv_id = csv["_id"]
            if not (full_refresh or csv_id in changed or csv_id in unread):
                continue
            stats.counts["imports with posts fetched"] += 1
            try:
                posts = read_posts(str(csv["locationId"]), csv_id)
            except HTTPError as exc:
                # an import deleted between the listing and this call answers 422/404; that
                # must not cost the other imports their posts
                if exc.response is None or exc.response.status_code not in (404, 422):
                    raise
                stats.counts["posts unavailable (import gone)"] += 1
                unread.pop(csv_id, None)
                continue
            yield from take_rejects(POST_COLUMNS)
            if posts is None:
                unread[csv_id] = str(csv["locationId"])
                continue
            unread.pop(csv_id, None)
            if posts:
                yield posts

    load_id_on_arrow_items()
    loaded = (imports, uploads, accounts, highlevel_status_history)
    return (*loaded, highlevel_csv_posts) if fetch_posts else loaded


SOURCE = highlevel_source
