"""Reading the CSV import listings of a run: every location's pages it needs, each import
checked, prepared and observed, handed on in batches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from requests import HTTPError

from sources.common.bad_input import TolerantClient, reject
from sources.common.columns import ColumnBudget
from sources.common.config_checks import MAX_STATUS_LENGTH
from sources.common.paginators import ListingStopped
from sources.common.redaction import redact
from sources.common.stats import ProviderStats
from sources.common.status import TERMINAL
from sources.common.tracking import StatusTracker
from sources.highlevel.accounts import import_key
from sources.highlevel.counts import HighLevelCount
from sources.highlevel.credentials import LocationCredentials
from sources.highlevel.listing import ListingWindow, listing_pages, listing_path
from sources.highlevel.settings import PROVIDER

# records per item handed to dlt: every Arrow item costs dlt a schema merge and validation
BATCH = 5_000


class Repeats(list[dict[str, Any]]):
    """Imports the listing named again in this run (it shifted under new imports while it was
    paged): their status changes and posts count; their rows and accounts are not written
    twice. The shift also breaks the listing's order, so the next run reads it all again."""


def _usable_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


class ImportListing:
    """The import listings of one run. Rejected records, and the pages the client could not
    read (it appends them to the same list), wait in `rejects` until a resource that loads
    them takes them; `changed` holds the imports whose status is new or changed (for their
    posts)."""

    def __init__(self, client: TolerantClient, tracker: StatusTracker, stats: ProviderStats,
                 columns: ColumnBudget, rejects: list[dict[str, Any]], *, page_size: int,
                 params: Mapping[str, Any], overlap: timedelta, full_refresh: bool,
                 track_changes: bool, credentials: LocationCredentials | None = None) -> None:
        self.client, self.tracker, self.stats, self.columns = client, tracker, stats, columns
        self.page_size, self.params, self.overlap = page_size, dict(params), overlap
        self.full_refresh, self.track_changes = full_refresh, track_changes
        self.credentials = credentials
        self.rejects = rejects
        self.changed: set[str] = set()
        self.listed: set[str] = set()  # ids listed so far in this run

    def take_rejects(self) -> list[dict[str, Any]]:
        rejects = list(self.rejects)
        self.rejects.clear()  # in place: the client holds this list too
        return rejects

    def batches(self, locations: list[str], marks: dict[str, Any]
                ) -> Iterator[list[dict[str, Any]]]:
        """Imports of every location in batches of `BATCH`, rejects as lists of their own; a
        location the API refuses (unknown, no access) or that runs away does not cost the
        others."""
        batch: list[dict[str, Any]] = []
        for location in locations:
            try:
                for records in self.location(location, marks):
                    if self.rejects:
                        yield self.take_rejects()
                    if isinstance(records, Repeats):
                        yield records
                        continue
                    batch.extend(records)
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
            except HTTPError as exc:
                self._refused(location, exc)
            except ListingStopped as exc:  # what was read loads; the mark stays where it was
                self.stats.failed_parts.append(f"location {location}: listing stopped: {exc}; "
                                               "the imports listed before it are loaded")
            if self.rejects:
                yield self.take_rejects()
        self.tracker.save()  # the run's last observation is made
        if batch:
            yield batch

    def _refused(self, location: str, exc: HTTPError) -> None:
        """A location the API refuses (unknown, no access, its own token rejected) fails
        alone; a shared token rejected, a limit or an outage ends the provider's run."""
        code = exc.response.status_code if exc.response is not None else 0
        body = exc.response.text[:200].strip() if exc.response is not None else ""
        own = self.credentials is not None and location in self.credentials.own
        if code in (401, 403) and own:
            self.stats.failed_parts.append(redact(
                f"location {location}: the API refused its token (HTTP {code}: {body}); check "
                f"{self.credentials.key_for(location)}[{location}]"))
            return
        if code in (401, 403, 429) or code >= 500:
            raise exc
        self.stats.failed_parts.append(redact(f"location {location}: HTTP {code}: {body}"))

    def location(self, location: str, marks: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The pages of one location's listing a run needs (`ListingWindow`; every page on a
        full refresh); its mark moves only when no page was lost."""
        window = ListingWindow.from_mark(None if self.full_refresh else marks.get(location),
                                         self.overlap)
        lost_before = self.client.pages_not_read
        skip = 0
        for page in listing_pages(self.client, location, self.page_size, self.params):
            records = self._usable(page, location)
            fresh = [r for r in records if r["_id"] not in self.listed]
            if records and not fresh:
                raise ListingStopped(f"a listing page at skip={skip} named only imports "
                                     "already listed in this run (the listing repeats)")
            skip += len(page)
            self.listed.update(r["_id"] for r in fresh)
            self._observe(records)
            for record in records:
                # just observed: finished is what its status says (cheaper than the state)
                window.see(record, PROVIDER.canonical(record.get("status")) not in TERMINAL)
            yield fresh
            if len(fresh) < len(records):
                self.stats.counts[HighLevelCount.LISTED_TWICE] += len(records) - len(fresh)
                fresh_ids = {id(r) for r in fresh}
                yield Repeats(r for r in records if id(r) not in fresh_ids)
            if window.can_stop:
                self.stats.counts[HighLevelCount.READ_INCREMENTALLY] += 1
                break
        if self.client.pages_not_read == lost_before:
            marks[location] = window.mark(marks.get(location))

    def _usable(self, page: list[Any], location: str) -> list[dict[str, Any]]:
        """The page's imports prepared for loading; the others go to the rejects raw."""
        records = []
        for record in page:
            if isinstance(record, dict) and not record:
                continue  # an empty object stands for "no import" in the object-shaped answer
            if (why := self.unusable(record)) is not None:
                self.rejects.append(reject(self.stats, why, record, "/" + listing_path(location),
                                           200, at=self.tracker.observed_at))
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
