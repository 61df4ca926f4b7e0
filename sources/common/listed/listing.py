"""Reading the listings of a run: every scope's pages it needs, each item checked, prepared and
observed, handed on in batches (`ListedSpec` says where an item's fields are and what to call
things)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from requests import Response

from sources.common.bad_input import TolerantClient, page_not_read, record_not_read, reject
from sources.common.columns import ColumnBudget
from sources.common.config_checks import MAX_STATUS_LENGTH
from sources.common.counts import Count
from sources.common.fan_out import stepped
from sources.common.listed.counts import ListedCounts
from sources.common.listed.pages import listing_pages
from sources.common.listed.scope_failures import ScopeCredentials, ScopeFailures
from sources.common.listed.spec import ListedSpec
from sources.common.listed.window import ListingWindow
from sources.common.paginators import ListingStopped
from sources.common.redaction import redact
from sources.common.scopes import scope_of
from sources.common.seen_ids import SeenIds
from sources.common.stats import ProviderStats
from sources.common.status import TERMINAL
from sources.common.tracking import Observed, StatusTracker

# records per item handed to dlt: every Arrow item costs dlt a schema merge and validation
BATCH = 5_000


class FailingRows(list[dict[str, Any]]):
    """Rows of the failing-units table (scopes failing on their own, or recovered)."""


class Repeats(Observed):
    """Items the listing named again in this run (it shifted under new items while it was
    paged): their status changes and children count; their rows are not written twice. The
    shift also breaks the listing's order, so the next run reads it all again."""


class Gone(Observed):
    """Rows of items gone from the listing (`ListedSpec.gone_table`); `ids` the items."""

    def __init__(self, records: Any = (), ids: list[str] | None = None) -> None:
        super().__init__(records)
        self.ids = ids or []


# the unfinished items no complete listing of their scope named in this run, observed gone
GoneItems = Callable[[StatusTracker, SeenIds, set[str]], Gone]


def usable_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


class Listing:
    """The listings of one run. Rejected records wait in `rejects`, and the pages the client
    could not read in `unread_pages` (appended on the client's threads), until a resource
    that loads them takes them; `changed` holds the items whose status is new or changed
    (for their children)."""

    def __init__(self, spec: ListedSpec, client: TolerantClient, tracker: StatusTracker,
                 stats: ProviderStats, columns: ColumnBudget,
                 unread_pages: list[tuple[Response, str]],
                 cut_records: list[tuple[Response, Any, str]], *, page_size: int,
                 params: Mapping[str, Any], overlap: timedelta, full_refresh: bool,
                 track_changes: bool, concurrency: int = 1, credentials: ScopeCredentials,
                 gone: GoneItems | None = None) -> None:
        self.spec, self.counts, self.gone = spec, ListedCounts(spec), gone
        self.client, self.tracker, self.stats, self.columns = client, tracker, stats, columns
        self.page_size, self.params, self.overlap = page_size, dict(params), overlap
        self.full_refresh, self.track_changes = full_refresh, track_changes
        self.read_all = full_refresh  # every page of every scope (`gone`: a full pass)
        self.complete: set[str] = set()  # scopes read whole in this run, without a loss
        self.concurrency, self.credentials = concurrency, credentials
        self.failures = ScopeFailures(spec, tracker, stats, credentials)
        self.rejects: list[dict[str, Any]] = []
        # filled on the client's threads: pages not read, records over a bound
        self.unread_pages, self.cut_records = unread_pages, cut_records
        self.lost: dict[str, int] = {}  # scope -> pages its listing could not read
        self.changed: set[str] = set()
        # item -> the scope whose listing named it, where its own scope field differs: its
        # children are read there (a HighLevel import's posts answer 422 under its own)
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
        at, spec = self.tracker.observed_at, self.spec
        child = spec.children.name if spec.children is not None else "child"
        rejects = self.rejects + [page_not_read(self.stats, response, reason, at)
                                  for response, reason in pages]
        for response, record, reason in cut:
            scope = scope_of(response.request)
            is_child = scope is not None and scope.reads == "children"
            rejects.append(record_not_read(
                self.stats, response, record, reason, at,
                f"{child} of {spec.item_name}" if is_child else spec.item_name))
            if not is_child and usable_id(item_id := spec.item_id(record)):
                # a failing unit until a later read takes it (`_page`)
                self.tracker.failing.failed(spec.item_name, str(item_id), reason,
                                            None if scope is None else scope.id)
        self.rejects = []
        return rejects

    def batches(self, scopes: list[str], marks: dict[str, Any]
                ) -> Iterator[list[dict[str, Any]]]:
        """Items of every scope in batches of `BATCH`, rejects as lists of their own. Scopes
        are listed `concurrency` at a time, each page read here; a scope the API refuses
        (unknown, no access, its daily limit spent) or that runs away does not cost the
        others."""
        batch: list[dict[str, Any]] = []
        windows: dict[str, ListingWindow] = {}
        for step in stepped(self._due(scopes), self._pages, self.concurrency,
                            f"{self.spec.provider.name}-listing"):
            scope = step.key
            if step.done:
                self._ended(scope, step.error, windows.pop(scope, None), marks)
            else:
                window = windows.setdefault(scope, ListingWindow.from_mark(
                    None if self.read_all else marks.get(scope), self.overlap))
                pieces = self._page(scope, step.item, window)
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
        yield from self._last(batch)

    def _last(self, batch: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """What follows the last page: the provider's failure, failing units, gone items."""
        if self.failures.undecided:  # every scope that ended failed: the provider's failure
            raise self.failures.undecided[0][1]
        if rows := self.tracker.failing.take_raw(self.spec.provider.name):
            yield FailingRows(rows)
        if self.read_all and self.complete and self.gone is not None and (
                gone := self.gone(self.tracker, self.listed, self.complete)):
            self.stats.counts[self.counts.gone] += len(gone)
            yield self._carrying(gone, gone.ids)
        self.tracker.save()  # the run's last observation is made
        if batch:
            yield self._carrying(Observed(batch))

    def _carrying(self, records: Observed, ids: list[str] | None = None) -> Observed:
        """`records` with the history rows of their status changes."""
        key = self.spec.id_column
        records.history = self.tracker.take_changes(
            [r[key] for r in records] if ids is None else ids)
        return records

    def _due(self, scopes: list[str]) -> list[str]:
        """The scopes to read: those failing runs in a row wait out their interval
        (`failing_units`); the failing ones no longer configured end."""
        failing, kind = self.tracker.failing, self.spec.scope_name
        failing.end_all_but(kind, set(scopes), "not configured")
        due = [scope for scope in scopes if failing.is_due(f"{kind}:{scope}")]
        for scope in scopes:
            if (at := failing.next_try(f"{kind}:{scope}")) is not None and at > failing.now:
                self.stats.counts[Count.BACKING_OFF] += 1
                self.stats.warnings.append(
                    f"{self.spec.provider.name}: {kind} {scope} failed runs in a row; next "
                    f"tried after {at.isoformat()} (upload_failing_units)")
        return due

    def _pages(self, scope: str) -> Iterator[list[Any]]:
        """One scope's listing pages (on a worker thread); how many could not be read is left
        in `lost` for its mark."""
        before = self.client.pages_not_read
        try:
            yield from listing_pages(self.client, self.spec, scope, self.page_size,
                                     self.params)
        finally:
            self.lost[scope] = self.client.pages_not_read - before

    def _ended(self, scope: str, error: BaseException | None,
               window: ListingWindow | None, marks: dict[str, Any]) -> None:
        """A scope's listing is over: its mark moves only when no page was lost."""
        lost = self.lost.pop(scope, 0)
        window = window or ListingWindow(boundary=None)  # a listing without a page
        error = error or window.failure
        if error is None and not lost:
            self.tracker.failing.ended(self.spec.scope_name, scope, "answered")
            marks[scope] = window.mark(marks.get(scope))
            if window.boundary is None:
                self.complete.add(scope)
        if error is None:
            return
        if isinstance(error, ListingStopped):  # what was read loads; the mark stays
            self.stats.failed_parts.append(
                f"{self.spec.scope_name} {scope}: listing stopped: {error}; the "
                f"{self.spec.item_name}s listed before it are loaded")
            return
        self.failures.failed_alone(scope, error)

    def _page(self, scope: str, page: list[Any], window: ListingWindow
              ) -> list[list[dict[str, Any]]]:
        """One listing page read into the run: its new items, and those the run listed
        before (`Repeats`); a page of repeats only stops the scope's listing."""
        self.failures.sibling_answered()
        spec, key = self.spec, self.spec.id_column
        records = self._usable(page, scope)
        if len(self.tracker.failing):  # items rejected before that load now
            for record in records:
                self.tracker.failing.ended(spec.item_name, record[key], "answered")
        unseen = self.listed.unseen([r[key] for r in records])
        fresh = [r for r, new in zip(records, unseen, strict=True) if new]
        if records and not fresh:
            window.failure = ListingStopped(
                f"a listing page at {spec.skip_param}={window.skipped} named only "
                f"{spec.item_name}s already listed in this run (the listing repeats)")
            return []
        window.skipped += len(page)
        self.listed.add(r[key] for r in fresh)
        self._observe(records)
        for record in records:
            # just observed: finished is what its status says (cheaper than the state)
            window.see(spec.created_at(record),
                       spec.provider.canonical(spec.item_status(record)) not in TERMINAL)
        if window.can_stop:
            self.stats.counts[self.counts.read_incrementally] += 1
        if len(fresh) == len(records):
            return [fresh]
        self.stats.counts[self.counts.listed_twice] += len(records) - len(fresh)
        fresh_ids = {id(r) for r in fresh}
        return [fresh, Repeats(r for r in records if id(r) not in fresh_ids)]

    def _usable(self, page: list[Any], scope: str) -> list[dict[str, Any]]:
        """The page's items prepared for loading; the others go to the rejects raw."""
        records, spec = [], self.spec
        for record in page:
            if isinstance(record, dict) and not record:
                continue  # an empty object stands for "no item" in an object-shaped answer
            if (why := self.unusable(record)) is not None:
                self.rejects.append(reject(self.stats, why, record,
                                           "/" + spec.listing_path(scope), 200,
                                           at=self.tracker.observed_at))
                name = spec.item_id(record) if isinstance(record, dict) else None
                self.stats.unit_failed(redact(
                    f"{spec.item_name} {name} of {spec.scope_name} {scope}: {why}"))
                continue
            records.append(self._prepare(record, scope))
        return records

    def unusable(self, record: Any) -> str | None:
        """Why a listed item cannot be loaded (its raw form goes to the rejects), or None."""
        spec = self.spec
        item_id = spec.item_id(record) if isinstance(record, dict) else None
        if not usable_id(item_id):
            return f"{spec.item_name} without a usable {spec.id}"
        if len(str(item_id)) > MAX_STATUS_LENGTH:
            return f"{spec.item_name} {spec.id} over {MAX_STATUS_LENGTH} characters"
        status = spec.item_status(record)
        if isinstance(status, str) and len(status) > MAX_STATUS_LENGTH:
            return (f"{spec.item_name} status of {len(status)} characters (over "
                    f"{MAX_STATUS_LENGTH})")
        return self.columns.admit_flat(record)

    def _prepare(self, record: dict[str, Any], scope: str) -> dict[str, Any]:
        spec = self.spec
        item_id = record[spec.id_column] = str(spec.item_id(record))
        if spec.scope_field is None:
            record["listed_scope"] = scope
        elif not record.get(spec.scope_field):
            record[spec.scope_field] = scope
        elif record[spec.scope_field] != scope:
            self.listed_in[item_id] = scope
        record["last_seen_at"] = self.tracker.observed_at
        record["_dlt_id"] = spec.row_key(item_id)  # rows of its own tables point at it
        return record

    def scope_of_item(self, record: Mapping[str, Any]) -> str:
        """The scope an item's children are read under: where it was listed."""
        item_id = record[self.spec.id_column]
        if item_id in self.listed_in:
            return self.listed_in[item_id]
        return str(record[self.spec.scope_column if self.spec.scope_field is None
                          else self.spec.scope_field])

    def _observe(self, records: list[dict[str, Any]]) -> None:
        """History rows for the page's new and changed items."""
        spec = self.spec
        sightings = self.tracker.observe_many(
            [r[spec.id_column] for r in records], [spec.item_status(r) for r in records],
            [r.get(spec.scope_field) if spec.scope_field else None for r in records])
        if self.track_changes:
            self.changed.update(records[i][spec.id_column] for i in sightings.changed)
