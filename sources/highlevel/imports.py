"""Reading the CSV import listings of a run: every location's pages it needs, each import
checked, prepared and observed, handed on in batches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from requests import HTTPError, Response

from sources.common.bad_input import TolerantClient, page_not_read, record_not_read, reject
from sources.common.columns import ColumnBudget
from sources.common.config_checks import MAX_STATUS_LENGTH
from sources.common.counts import Count
from sources.common.fan_out import stepped
from sources.common.paginators import ListingStopped
from sources.common.redaction import redact
from sources.common.scopes import scope_of
from sources.common.seen_ids import SeenIds
from sources.common.stats import ProviderStats
from sources.common.status import TERMINAL
from sources.common.throttle import DailyLimitReached
from sources.common.tracking import Observed, StatusTracker
from sources.highlevel.accounts import import_key
from sources.highlevel.counts import HighLevelCount
from sources.highlevel.credentials import LocationCredentials
from sources.highlevel.gone import gone_imports
from sources.highlevel.listing import ListingWindow, listing_pages, listing_path
from sources.highlevel.oauth import LocationTokenRefused
from sources.highlevel.settings import PROVIDER

# locations whose listings failed in a way that may be the provider's (a shared token refused,
# an error after retries) before any answered: the provider's run ends, as for an outage
OUTAGE_LOCATIONS = 3
# records per item handed to dlt: every Arrow item costs dlt a schema merge and validation
BATCH = 5_000


class FailingRows(list[dict[str, Any]]):
    """Rows of the failing-units table (locations failing on their own, or recovered)."""


class Repeats(Observed):
    """Imports the listing named again in this run (it shifted under new imports while it was
    paged): their status changes and posts count; their rows and accounts are not written
    twice. The shift also breaks the listing's order, so the next run reads it all again."""


def _usable_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


class ImportListing:
    """The import listings of one run. Rejected records wait in `rejects`, and the pages the
    client could not read in `unread_pages` (appended on the client's threads), until a
    resource that loads them takes them; `changed` holds the imports whose status is new or
    changed (for their posts)."""

    def __init__(self, client: TolerantClient, tracker: StatusTracker, stats: ProviderStats,
                 columns: ColumnBudget, unread_pages: list[tuple[Response, str]],
                 cut_records: list[tuple[Response, Any, str]], *,
                 page_size: int, params: Mapping[str, Any], overlap: timedelta,
                 full_refresh: bool, track_changes: bool, concurrency: int = 1,
                 credentials: LocationCredentials) -> None:
        self.client, self.tracker, self.stats, self.columns = client, tracker, stats, columns
        self.page_size, self.params, self.overlap = page_size, dict(params), overlap
        self.full_refresh, self.track_changes = full_refresh, track_changes
        self.read_all = full_refresh  # every page of every location (`gone`: a full pass)
        self.complete: set[str] = set()  # locations read whole in this run, without a loss
        self.concurrency, self.credentials = concurrency, credentials
        self.rejects: list[dict[str, Any]] = []
        self.unread_pages = unread_pages
        self.cut_records = cut_records
        self.lost: dict[str, int] = {}  # location -> pages its listing could not read
        self.spent_locations: set[str] = set()  # those whose daily request limit is used up
        self.failed_locations: set[str] = set()  # those with a failure in the summary
        self.answered = False  # a location's listing answered in this run
        # failures that are the provider's or one location's, until a sibling answers
        self.undecided: list[tuple[str, BaseException]] = []
        self.changed: set[str] = set()
        # import -> the location whose listing named it, where its own `locationId` differs:
        # its posts are read there (under its own they answer 422)
        self.listed_in: dict[str, str] = {}
        self.listed = SeenIds()  # ids listed so far in this run

    @property
    def has_rejects(self) -> bool:
        return bool(self.rejects or self.unread_pages or self.cut_records)

    def take_rejects(self) -> list[dict[str, Any]]:
        """Reject rows of everything waiting, made (and counted) on this thread."""
        pages = self.unread_pages[:]
        del self.unread_pages[:len(pages)]  # appends of other threads go after these
        cut = self.cut_records[:]
        del self.cut_records[:len(cut)]
        at = self.tracker.observed_at
        rejects = self.rejects + [page_not_read(self.stats, response, reason, at)
                                  for response, reason in pages]
        for response, record, reason in cut:
            scope = scope_of(response.request)
            is_post = scope is not None and scope.reads == "children"
            rejects.append(record_not_read(self.stats, response, record, reason, at,
                                           "post of import" if is_post else "import"))
            if not is_post and isinstance(record, dict) and _usable_id(record.get("_id")):
                # a failing unit until a later read takes it (`_page`)
                self.tracker.failing.failed("import", str(record["_id"]), reason,
                                            None if scope is None else scope.id)
        self.rejects = []
        return rejects

    def batches(self, locations: list[str], marks: dict[str, Any]
                ) -> Iterator[list[dict[str, Any]]]:
        """Imports of every location in batches of `BATCH`, rejects as lists of their own.
        Locations are listed `concurrency` at a time, each page read here; a location the API
        refuses (unknown, no access, its daily limit spent) or that runs away does not cost
        the others."""
        batch: list[dict[str, Any]] = []
        windows: dict[str, ListingWindow] = {}
        locations = self._due(locations)
        for step in stepped(locations, self._pages, self.concurrency, "highlevel-listing"):
            location = step.key
            if step.done:
                self._ended(location, step.error, windows.pop(location, None), marks)
            else:
                window = windows.setdefault(location, ListingWindow.from_mark(
                    None if self.read_all else marks.get(location), self.overlap))
                pieces = self._page(location, step.item, window)
                step.go_on(not window.can_stop and window.failure is None)
                for records in pieces:
                    if isinstance(records, Repeats):
                        yield self._carrying(records)
                        continue
                    batch.extend(records)
                    if len(batch) >= BATCH:
                        yield self._carrying(Observed(batch))
                        batch = []
            if self.has_rejects:
                yield self.take_rejects()
        if self.undecided:  # every location that ended failed: the provider's failure
            raise self.undecided[0][1]
        if rows := self.tracker.failing.take_raw(PROVIDER.name):
            yield FailingRows(rows)
        if self.read_all and self.complete and (
                gone := gone_imports(self.tracker, self.listed, self.complete)):
            self.stats.counts[HighLevelCount.GONE] += len(gone)
            yield self._carrying(gone, [r["csv_id"] for r in gone])
        self.tracker.save()  # the run's last observation is made
        if batch:
            yield self._carrying(Observed(batch))

    def _carrying(self, records: Observed, ids: list[str] | None = None) -> Observed:
        """`records` with the history rows of their status changes."""
        records.history = self.tracker.take_changes(
            [r["_id"] for r in records] if ids is None else ids)
        return records

    def _due(self, locations: list[str]) -> list[str]:
        """The locations to read: those failing runs in a row wait out their interval
        (`failing_units`); the failing ones no longer configured end."""
        failing = self.tracker.failing
        failing.end_all_but("location", set(locations), "not configured")
        due = [loc for loc in locations if failing.is_due(f"location:{loc}")]
        for location in locations:
            if (at := failing.next_try(f"location:{location}")) is not None and at > failing.now:
                self.stats.counts[Count.BACKING_OFF] += 1
                self.stats.warnings.append(
                    f"highlevel: location {location} failed runs in a row; next tried after "
                    f"{at.isoformat()} (upload_failing_units)")
        return due

    def _pages(self, location: str) -> Iterator[list[Any]]:
        """One location's listing pages (on a worker thread); how many could not be read is
        left in `lost` for its mark."""
        before = self.client.pages_not_read
        try:
            yield from listing_pages(self.client, location, self.page_size, self.params)
        finally:
            self.lost[location] = self.client.pages_not_read - before

    def _ended(self, location: str, error: BaseException | None,
               window: ListingWindow | None, marks: dict[str, Any]) -> None:
        """A location's listing is over: its mark moves only when no page was lost."""
        lost = self.lost.pop(location, 0)
        window = window or ListingWindow(boundary=None)  # a listing without a page
        error = error or window.failure
        if error is None and not lost:
            self.tracker.failing.ended("location", location, "answered")
            marks[location] = window.mark(marks.get(location))
            if window.boundary is None:
                self.complete.add(location)
        if error is None:
            return
        if isinstance(error, ListingStopped):  # what was read loads; the mark stays
            self.stats.failed_parts.append(f"location {location}: listing stopped: {error}; "
                                           "the imports listed before it are loaded")
            return
        failure = self.location_failure(location, error)
        if failure is None:
            failure = self.alone(location, error)
        if failure is not None:
            self._location_failed(location, failure, error)

    def _location_failed(self, location: str, failure: str, error: BaseException) -> None:
        """Its line in the summary; a failing unit unless it only spent its daily limit."""
        self.report_failure(location, failure)
        if not isinstance(error, DailyLimitReached):
            self.tracker.failing.failed("location", location, failure, location)

    def alone(self, location: str, error: BaseException) -> str | None:
        """A failure that is the provider's or one location's (a shared token refused, an
        error after retries): the location's alone once another location answered this run,
        then described; the provider's (raised) when the first `OUTAGE_LOCATIONS` to end
        failed so, or every one did. None: deferred until a sibling answers."""
        if self.answered:
            return self._described(location, error)
        self.undecided.append((location, error))
        if len(self.undecided) >= OUTAGE_LOCATIONS:
            raise self.undecided[0][1]
        return None

    def _sibling_answered(self) -> None:
        """A location's listing answered: the failures held back were their locations' own."""
        self.answered = True
        for location, error in self.undecided:
            self._location_failed(location, self._described(location, error), error)
        self.undecided.clear()

    def _described(self, location: str, error: BaseException) -> str:
        response = getattr(error, "response", None)
        if not isinstance(error, HTTPError) or response is None:
            return redact(f"location {location}: {type(error).__name__}: {error}; read again "
                          "next run, the other locations loaded")
        code, body = response.status_code, response.text[:200].strip()
        if code in (401, 403):
            return redact(f"location {location}: the API refused the token for this location "
                          f"(HTTP {code}: {body}) while it accepted it for others; check that "
                          f"{self.credentials.key_for(location)} may read it")
        return redact(f"location {location}: HTTP {code} after retries: {body}; read again "
                      "next run, the other locations loaded")

    def report_failure(self, location: str, failure: str) -> None:
        """One line per failed location in the run's summary, however often it failed."""
        if location not in self.failed_locations:
            self.failed_locations.add(location)
            self.stats.failed_parts.append(failure)

    def location_failure(self, location: str, error: BaseException) -> str | None:
        """What to report when `error` costs one location only (unknown, no access, its own
        token refused, its daily limit spent); None when it ends the provider's run (a shared
        token refused, a limit or an outage, the agency's refresh token rejected)."""
        if isinstance(error, DailyLimitReached):
            if location not in self.spent_locations:
                self.spent_locations.add(location)
                self.stats.counts[HighLevelCount.DAILY_LIMIT_SPENT] += 1
            return f"location {location}: {error.reason}"
        if isinstance(error, LocationTokenRefused):
            return redact(str(error))
        if not isinstance(error, HTTPError):
            return None
        code = error.response.status_code if error.response is not None else 0
        body = error.response.text[:200].strip() if error.response is not None else ""
        if code in (401, 403):
            refusal = self.credentials.refusal(location, code, body)
            return None if refusal is None else redact(refusal)
        if code == 429 or code >= 500:
            return None
        return redact(f"location {location}: HTTP {code}: {body}")

    def _page(self, location: str, page: list[Any], window: ListingWindow
              ) -> list[list[dict[str, Any]]]:
        """One listing page read into the run: its new imports, and those the run listed
        before (`Repeats`); a page of repeats only stops the location's listing."""
        if not self.answered:
            self._sibling_answered()
        records = self._usable(page, location)
        if len(self.tracker.failing):  # imports rejected before that load now
            for record in records:
                self.tracker.failing.ended("import", record["_id"], "answered")
        unseen = self.listed.unseen([r["_id"] for r in records])
        fresh = [r for r, new in zip(records, unseen, strict=True) if new]
        if records and not fresh:
            window.failure = ListingStopped(
                f"a listing page at skip={window.skipped} named only imports already listed in "
                "this run (the listing repeats)")
            return []
        window.skipped += len(page)
        self.listed.add(r["_id"] for r in fresh)
        self._observe(records)
        for record in records:
            # just observed: finished is what its status says (cheaper than the state)
            window.see(record, PROVIDER.canonical(record.get("status")) not in TERMINAL)
        if window.can_stop:
            self.stats.counts[HighLevelCount.READ_INCREMENTALLY] += 1
        if len(fresh) == len(records):
            return [fresh]
        self.stats.counts[HighLevelCount.LISTED_TWICE] += len(records) - len(fresh)
        fresh_ids = {id(r) for r in fresh}
        return [fresh, Repeats(r for r in records if id(r) not in fresh_ids)]

    def _usable(self, page: list[Any], location: str) -> list[dict[str, Any]]:
        """The page's imports prepared for loading; the others go to the rejects raw."""
        records = []
        for record in page:
            if isinstance(record, dict) and not record:
                continue  # an empty object stands for "no import" in the object-shaped answer
            if (why := self.unusable(record)) is not None:
                self.rejects.append(reject(self.stats, why, record, "/" + listing_path(location),
                                           200, at=self.tracker.observed_at))
                name = record.get("_id") if isinstance(record, dict) else None
                self.stats.unit_failed(redact(f"import {name} of location {location}: {why}"))
                continue
            records.append(self._prepare(record, location))
        return records

    def unusable(self, record: Any) -> str | None:
        """Why a listed import cannot be loaded (its raw form goes to the rejects), or None."""
        if not isinstance(record, dict) or not _usable_id(record.get("_id")):
            return "import without a usable _id"
        if len(str(record["_id"])) > MAX_STATUS_LENGTH:
            return f"import _id over {MAX_STATUS_LENGTH} characters"
        status = record.get("status")
        if isinstance(status, str) and len(status) > MAX_STATUS_LENGTH:
            return f"import status of {len(status)} characters (over {MAX_STATUS_LENGTH})"
        return self.columns.admit_flat(record)

    def _prepare(self, record: dict[str, Any], location: str) -> dict[str, Any]:
        if not record.get("locationId"):
            record["locationId"] = location
        elif record["locationId"] != location:
            self.listed_in[str(record["_id"])] = location
        record["_id"] = str(record["_id"])
        record["last_seen_at"] = self.tracker.observed_at
        record["_dlt_id"] = import_key(record["_id"])  # its accounts point at it
        return record

    def _observe(self, records: list[dict[str, Any]]) -> None:
        """History rows for the page's new and changed imports."""
        sightings = self.tracker.observe_many([r["_id"] for r in records],
                                              [r.get("status") for r in records],
                                              [r.get("locationId") for r in records])
        if self.track_changes:
            self.changed.update(records[i]["_id"] for i in sightings.changed)
