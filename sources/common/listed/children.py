"""The child lists of items (an import's posts), fetched concurrently, the items of each scope
in turn (each scope has a rate limit of its own), read into the run on one thread."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from requests import HTTPError

from sources.common.bad_input import TolerantClient
from sources.common.fan_out import completed, round_robin
from sources.common.listed.counts import ListedCounts
from sources.common.listed.pages import child_pages
from sources.common.listed.spec import ChildSpec, ListedSpec
from sources.common.paginators import ListingStopped
from sources.common.stats import ProviderStats


class ScopeFailures(Protocol):
    def scope_failure(self, scope: str, error: BaseException) -> str | None: ...

    def report_failure(self, scope: str, failure: str) -> None: ...

    def alone(self, scope: str, error: BaseException) -> str | None: ...


@dataclass(frozen=True)
class ChildrenRead:
    rows: list[dict[str, Any]] | None  # None: a page could not be read (read again next run)
    stopped: str | None = None  # why the child list stopped, if it did


def read_children(client: TolerantClient, spec: ListedSpec, scope: str, item_id: str,
                  page_size: int) -> ChildrenRead:
    """Every child of one item, each tagged with its item, scope and position (thread-safe:
    it counts nothing itself)."""
    child: ChildSpec = spec.children  # type: ignore[assignment]
    rows: list[dict[str, Any]] = []
    lost_before = client.pages_not_read
    try:
        for page in child_pages(client, spec, child, scope, item_id, page_size):
            # the position counted from before the page (`len(rows)` grows while extending)
            rows.extend({child.item_column: item_id, child.scope_column: scope,
                         child.index_column: index,
                         **(record if isinstance(record, dict) else {"value": record})}
                        for index, record in enumerate(page, start=len(rows)))
    except ListingStopped as exc:
        return ChildrenRead(None, str(exc))
    return ChildrenRead(None if client.pages_not_read > lost_before else rows)


class ChildrenOfItems:
    """Fetches the child lists of many items with `concurrency` requests in flight; `unread`
    (resource state: item -> scope) keeps those whose children must be read again next run."""

    def __init__(self, client: TolerantClient, spec: ListedSpec, stats: ProviderStats,
                 page_size: int, concurrency: int, failures: ScopeFailures) -> None:
        self.client, self.spec, self.stats = client, spec, stats
        self.page_size, self.concurrency = page_size, concurrency
        self.failures = failures
        self.counts = ListedCounts(spec)

    def fetch(self, wanted: list[tuple[str, str]], unread: dict[str, str]
              ) -> Iterator[list[dict[str, Any]]]:
        """The children of every (item, scope) in `wanted`, one list per item."""
        counts, child = self.counts, self.spec.children
        assert child is not None
        self.stats.counts[counts.children_fetched] += len(wanted)
        deferred: Counter[str] = Counter()
        reasons: dict[str, str] = {}
        for outcome in completed(self._read, round_robin(wanted, key=lambda w: w[1]),
                                 self.concurrency, f"{self.spec.provider.name}-children"):
            item_id, scope = outcome.item
            if outcome.error is not None:
                if _gone(outcome.error, child):
                    self.stats.counts[counts.children_gone] += 1
                    unread.pop(item_id, None)
                    continue
                reason = self.failures.scope_failure(scope, outcome.error) or \
                    self.failures.alone(scope, outcome.error)
                if reason is None:
                    raise outcome.error
                reasons.setdefault(scope, reason)
                deferred[scope] += 1
                unread[item_id] = scope
                continue
            read = outcome.result
            if read.stopped is not None:
                self.stats.counts[counts.children_stopped] += 1
                self.stats.failed_parts.append(
                    f"{self.spec.item_name} {item_id}: {child.name}s listing stopped: "
                    f"{read.stopped}; read again next run")
            if read.rows is None:
                unread[item_id] = scope
                continue
            unread.pop(item_id, None)
            self.stats.counts[counts.children] += len(read.rows)
            if read.rows:
                yield read.rows
        for scope, items in deferred.items():
            self.failures.report_failure(
                scope, f"{reasons[scope]}; the {child.name}s of {items} "
                       f"{self.spec.item_name}(s) are read next run")

    def _read(self, item: tuple[str, str]) -> ChildrenRead:
        item_id, scope = item
        return read_children(self.client, self.spec, scope, item_id, self.page_size)


def _gone(error: BaseException, child: ChildSpec) -> bool:
    """An item deleted between the listing and this call: that must not cost the other
    items their children."""
    return (isinstance(error, HTTPError) and error.response is not None
            and error.response.status_code in child.gone_codes)
