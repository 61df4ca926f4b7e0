"""Items deleted at the provider, or gone from the listing: an unfinished item that a complete
read of its scope's listing no longer names is observed with the declared `gone_status`, with
a row of the gone table (`outcome` "gone from the listing"). A deletion is inferred only from a
complete read (every page, no page lost, no error): a full refresh, or the full pass a run
makes when the last one is `full_pass_hours` old."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import dlt

from sources.common.listed.spec import ListedSpec, column_of
from sources.common.seen_ids import SeenIds
from sources.common.tracking import StatusTracker

GONE = "gone from the listing"
_LOOKUP = 5_000  # items looked up in the destination per query


def full_pass_due(state: dict[str, Any], now: datetime, hours: float) -> bool:
    """True when the run reads every page of every scope (the last full pass is `hours` old,
    or there was none)."""
    last = state.get("full_pass_at")
    return last is None or now - datetime.fromisoformat(last) >= timedelta(hours=hours)


def unlisted(tracker: StatusTracker, listed: SeenIds) -> list[str]:
    """The unfinished items no listing of this run named."""
    followed = list(tracker.unfinished())
    return [ref for ref, unseen in zip(followed, listed.unseen(followed), strict=True)
            if unseen]


def gone_items(spec: ListedSpec) -> Any:
    """The `Listing` hook observing unlisted items of completely read scopes as gone."""
    from sources.common.listed.listing import Gone

    def gone(tracker: StatusTracker, listed: SeenIds, complete: set[str]) -> Gone:
        rows, at = Gone(), tracker.observed_at
        for item_id, scope, status in stored_items(spec, unlisted(tracker, listed)):
            if scope not in complete:
                continue  # not read whole this run (or no longer configured): nothing inferred
            tracker.observe(item_id, spec.gone_status, scope)
            rows.append({"item_id": item_id, "scope_id": scope, "status_before": status,
                         "outcome": GONE, "gone_at": at})
            rows.ids.append(item_id)
        return rows

    return gone


def stored_items(spec: ListedSpec, ids: list[str]) -> Iterable[tuple[str, str, Any]]:
    """(id, scope, status) of the stored rows of `ids`."""
    if not ids:
        return
    dataset = dlt.current.pipeline().dataset()
    key, scope, status = column_of(spec.id), spec.scope_column, column_of(spec.status)
    for start in range(0, len(ids), _LOOKUP):
        try:
            rows = dataset[spec.table].where(key, "in", ids[start:start + _LOOKUP]).select(
                key, scope, status).fetchall()
        except Exception:  # nothing loaded yet
            return
        yield from ((str(i), str(s), st) for i, s, st in rows)
