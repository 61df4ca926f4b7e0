"""The dlt resources of a declared listed provider:

- `<provider>_items` (not loaded): every scope's listing in batches (`Listing.batches`);
- the items table, merged on the item's id; the same resource writes the history table (a
  table variant, from the batches' `Observed.history`), the rejects, the failing units and
  the items gone from the listing;
- the children table (when declared): the child list of every new or changed item, and of
  those whose list could not be read before, merged on (item, position).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dlt
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.resource import DltResource

from sources.common.arrow_items import history_arrow
from sources.common.bad_input import as_rejects, is_reject, routed
from sources.common.columns import normalized
from sources.common.failing_units import failing_rows
from sources.common.listed.children import ChildrenOfItems
from sources.common.listed.gone import full_pass_due
from sources.common.listed.listing import BATCH, FailingRows, Gone, Listing, Repeats
from sources.common.tracking import HISTORY_COLUMNS, Observed, history_table

GONE_COLUMNS: TTableSchemaColumns = {
    "item_id": {"data_type": "text", "nullable": False},
    "scope_id": {"data_type": "text"},
    "status_before": {"data_type": "text"},
    "outcome": {"data_type": "text"},
    "gone_at": {"data_type": "timestamp"},
}


def items_resource(listing: Listing, scopes: list[str], full_pass_hours: float
                   ) -> DltResource:
    spec = listing.spec

    @dlt.resource(name=f"{spec.provider.name}_items", selected=False)
    def items() -> Iterator[list[dict[str, Any]]]:
        """Every scope's listing in batches, every field kept; not loaded itself: the
        transformers split it into items, history, rejects and children."""
        state = dlt.current.resource_state()
        marks = state.setdefault("listing_marks", {})
        now = listing.tracker.observed_at
        listing.read_all = listing.full_refresh or full_pass_due(state, now, full_pass_hours)
        yield from listing.batches(scopes, marks)
        if listing.read_all and listing.complete:
            state["full_pass_at"] = now.isoformat()

    return items


def _items_of(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of a batch of the listing: none in a list of reject rows, failing units or
    items gone from the listing."""
    return [] if isinstance(batch, Gone | FailingRows) or not batch or is_reject(batch[0]) \
        else batch


# a batch of written items -> what the items resource yields for them (dicts by default; a
# provider may write Arrow, route lists to tables of their own)
Rows = Callable[[list[dict[str, Any]]], Iterator[Any]]


def _as_dicts(batch: list[dict[str, Any]]) -> Iterator[Any]:
    yield batch


def item_table(items: DltResource, listing: Listing, columns: TTableSchemaColumns,
               rows: Rows = _as_dicts,
               gone: tuple[str, str, TTableSchemaColumns] | None = None) -> DltResource:
    """The items table; `gone`: the table, key and columns of the items gone from the
    listing (default: the spec's gone table, keyed by `item_id`)."""
    spec = listing.spec
    name, key = spec.provider.name, normalized(spec.id_column)
    if gone is None and spec.gone_table is not None:
        gone = (spec.gone_table, "item_id", GONE_COLUMNS)

    @dlt.transformer(data_from=items, name=spec.table, primary_key=key,
                     write_disposition="merge", columns=columns)
    def item_rows(batch: list[dict[str, Any]]) -> Iterator[Any]:
        """One row per item (merged on its id); the history rows of the status changes the
        listing observed, rejects, failing units and gone items go to their tables."""
        if isinstance(batch, Observed) and batch.history:
            yield routed(history_table(spec.provider), "change_key", HISTORY_COLUMNS,
                         history_arrow(batch.history), columns)
        if isinstance(batch, Gone):
            if gone is not None:
                yield routed(gone[0], gone[1], gone[2], list(batch), columns)
            return
        if isinstance(batch, FailingRows):
            yield failing_rows(name, batch, columns)
            return
        if batch and is_reject(batch[0]):
            yield as_rejects(name, batch, columns)
            return
        if not isinstance(batch, Repeats) and batch:
            yield from rows(list(batch))

    return item_rows


def children_table(items: DltResource, listing: Listing, children: ChildrenOfItems,
                   full_refresh: bool, columns: TTableSchemaColumns, rows: Rows = _as_dicts,
                   after: Callable[[], None] | None = None,
                   unread_key: str = "children_unread") -> DltResource:
    """The children table; `rows` turns a batch of children into items, `after` runs once a
    batch of the listing is done (a token store's flush), `unread_key` names the resource
    state of the items whose children are read again next run."""
    spec = listing.spec
    child = spec.children
    assert child is not None
    item_col, index_col = normalized(child.item_column), normalized(child.index_column)
    fetched: set[str] = set()

    @dlt.transformer(data_from=items, name=child.table, columns=columns,
                     # every fetch replaces all children of that item
                     write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                     primary_key=(item_col, index_col), merge_key=item_col)
    def child_rows(batch: list[dict[str, Any]]) -> Iterator[Any]:
        """The children of items that are new or changed, and of those whose children could
        not be read before, in batches of about `BATCH`; each item once a run."""
        unread: dict[str, str] = dlt.current.resource_state().setdefault(unread_key, {})
        key = spec.id_column
        wanted = [(item[key], listing.scope_of_item(item)) for item in _items_of(batch)
                  if (full_refresh or item[key] in listing.changed or item[key] in unread)
                  and item[key] not in fetched]
        fetched.update(item_id for item_id, _ in wanted)
        read: list[dict[str, Any]] = []
        for children_read in children.fetch(wanted, unread):
            if listing.has_rejects:
                yield as_rejects(spec.provider.name, listing.take_rejects(), columns)
            read.extend(children_read)
            if len(read) >= BATCH:
                yield from rows(read)
                read = []
        if read:
            yield from rows(read)
        if listing.has_rejects:
            yield as_rejects(spec.provider.name, listing.take_rejects(), columns)
        if after is not None:
            after()

    return child_rows
