"""Imports deleted at HighLevel, or gone from the listing: an unfinished import that a complete
read of its location's listing no longer names is `cancelled` (native `deleted`), with a row of
`highlevel_csv_deletions` (`outcome` "gone from the listing"). A deletion is inferred only from
a complete read (every page, no page lost, no error): a full refresh, or the full pass a run
makes when the last one is `full_pass_hours` old (default 24)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dlt

from sources.common.listed.gone import GONE, unlisted
from sources.common.listed.listing import Gone
from sources.common.seen_ids import SeenIds
from sources.common.tracking import StatusTracker
from sources.highlevel.prune import DELETED

_LOOKUP = 5_000  # imports looked up in the destination per query


def gone_imports(tracker: StatusTracker, listed: SeenIds, complete: set[str]) -> Gone:
    """The unfinished imports no complete listing of their location named in this run,
    observed as deleted; their location is read from the destination (the state keeps none)."""
    candidates = unlisted(tracker, listed)
    rows = Gone()
    at = tracker.observed_at
    for record in _stored(candidates):
        if record["location_id"] not in complete:
            continue  # not read whole this run (or no longer configured): nothing inferred
        tracker.observe(record["_id"], DELETED, record["location_id"])
        rows.ids.append(record["_id"])
        rows.append({"csv_id": record["_id"], "location_id": record["location_id"],
                     "file_name": record.get("file_name"), "status_before": record["status"],
                     "created_at": record.get("created_at"), "http_status": None,
                     "outcome": GONE, "deleted_at": at})
    return rows


def _stored(ids: list[str]) -> Iterable[dict[str, Any]]:
    """The stored rows (id, location, status, file name, creation) of `ids`."""
    if not ids:
        return
    dataset = dlt.current.pipeline().dataset()
    for start in range(0, len(ids), _LOOKUP):
        chunk = ids[start:start + _LOOKUP]
        try:
            table = dataset["highlevel_csv_uploads"].where("_id", "in", chunk).select(
                "_id", "location_id", "status", "file_name", "created_at").fetchall()
        except Exception:  # nothing loaded yet
            return
        for _id, location, status, file_name, created in table:
            yield {"_id": _id, "location_id": location, "status": status,
                   "file_name": file_name, "created_at": created}
