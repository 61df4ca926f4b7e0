"""Units (a job, an import, a location) that failed on their own while their siblings answered.

Kept in the source state under `failing` (unit key -> its failures), committed with the run's
data: a unit that failed `FREE_RETRIES` runs in a row is then retried after a growing interval
(1 h, 2 h, 4 h ... at most a day) instead of on every run, so a poison unit does not spend every
run's requests. Each failure and each end of one (the unit answered again, was untracked or left
the configuration) is a row of `<provider>_failing_units`, merged on `unit_key`: the view
`upload_failing_units` lists those still failing with their first and last failure and reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.items import DataItemWithMeta

from sources.common.bad_input import routed

FREE_RETRIES = 3  # failures in a row after which a unit waits before its next try
FIRST_INTERVAL = timedelta(hours=1)
MAX_INTERVAL = timedelta(hours=24)
_REASON_LIMIT = 500  # characters of a failure's reason kept in the state

FAILING_COLUMNS: TTableSchemaColumns = {
    "unit_key": {"data_type": "text", "nullable": False},  # "<kind>:<id>"
    "provider": {"data_type": "text"},
    "unit_kind": {"data_type": "text"},  # job | import | location
    "unit_id": {"data_type": "text"},  # the job ref, import id or location id
    "scope_id": {"data_type": "text"},
    "consecutive_failures": {"data_type": "bigint"},
    "first_failed_at": {"data_type": "timestamp"},
    "last_failed_at": {"data_type": "timestamp"},
    "reason": {"data_type": "text"},
    "next_try_at": {"data_type": "timestamp"},  # NULL: tried again on the next run
    "resolved_at": {"data_type": "timestamp"},  # NULL while it fails
    "resolution": {"data_type": "text"},  # answered | untracked | not configured
}


def failing_table(provider: str) -> str:
    return f"{provider}_failing_units"


def unit_key(kind: str, unit_id: str) -> str:
    return f"{kind}:{unit_id}"


def retry_interval(failures: int) -> timedelta | None:
    """How long a unit that failed `failures` runs in a row waits; None: it is tried next run."""
    if failures < FREE_RETRIES:
        return None
    doublings = min(failures - FREE_RETRIES, 16)  # past a day long before; no overflow
    return min(FIRST_INTERVAL * 2 ** doublings, MAX_INTERVAL)


class FailingUnits:
    """The failing units of one provider's source state (see the module docstring). The state
    gets its `failing` key with the first failure, so a run without one leaves it unchanged."""

    def __init__(self, state: dict[str, Any], now: datetime) -> None:
        self._state = state
        self.now = now
        self.rows: list[dict[str, Any]] = []  # rows for the failing-units table, not yet taken

    @property
    def _units(self) -> dict[str, dict[str, Any]]:
        return self._state.get("failing") or {}

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, key: str) -> bool:
        return key in self._units

    def next_try(self, key: str) -> datetime | None:
        """When the unit may be tried again; None if now (not failing, or not waiting)."""
        entry = self._units.get(key)
        if entry is None or (interval := retry_interval(entry["n"])) is None:
            return None
        return datetime.fromisoformat(entry["last"]) + interval

    def is_due(self, key: str) -> bool:
        """True unless the unit failed often and its interval has not passed."""
        at = self.next_try(key)
        return at is None or at <= self.now

    def failed(self, kind: str, unit_id: str, reason: str, scope_id: str | None = None) -> None:
        """One more failure of the unit in a row (once per run)."""
        key = unit_key(kind, unit_id)
        units = self._state.setdefault("failing", {})
        now = self.now.isoformat()
        entry = units.get(key)
        if entry is not None and entry["last"] == now:
            return  # this run counted it already
        entry = units[key] = {"n": (entry["n"] + 1) if entry else 1,
                              "first": entry["first"] if entry else now, "last": now,
                              "reason": reason[:_REASON_LIMIT], "kind": kind, "id": unit_id,
                              "scope": scope_id}
        self.rows.append(self._row(key, entry))

    def ended(self, kind: str, unit_id: str, resolution: str) -> bool:
        """The unit no longer fails (`answered`) or is no longer read (`untracked`, `not
        configured`): its entry is dropped and its row resolved. False if it was not failing."""
        key = unit_key(kind, unit_id)
        entry = self._units.get(key)
        if entry is None:
            return False
        del self._state["failing"][key]
        if not self._state["failing"]:
            del self._state["failing"]
        self.rows.append(self._row(key, entry) | {"next_try_at": None, "resolved_at": self.now,
                                                  "resolution": resolution})
        return True

    def end_all_but(self, kind: str, kept: set[str], resolution: str) -> None:
        """End every failing unit of `kind` whose id is not in `kept` (removed from config)."""
        for entry in [e for e in self._units.values() if e["kind"] == kind]:
            if entry["id"] not in kept:
                self.ended(kind, entry["id"], resolution)

    def waiting(self) -> list[dict[str, Any]]:
        """The entries of units waiting out their interval now."""
        return [e for k, e in self._units.items() if not self.is_due(k)]

    def _row(self, key: str, entry: dict[str, Any]) -> dict[str, Any]:
        interval = retry_interval(entry["n"])
        return {"unit_key": key, "unit_kind": entry["kind"], "unit_id": entry["id"],
                "scope_id": entry.get("scope"), "consecutive_failures": entry["n"],
                "first_failed_at": datetime.fromisoformat(entry["first"]),
                "last_failed_at": datetime.fromisoformat(entry["last"]),
                "reason": entry["reason"],
                "next_try_at": None if interval is None else
                datetime.fromisoformat(entry["last"]) + interval,
                "resolved_at": None, "resolution": None}

    def take_raw(self, provider: str) -> list[dict[str, Any]]:
        """The rows not yet loaded, as dicts (for a resource that routes them itself)."""
        rows = [{**r, "provider": provider} for r in self.rows]
        self.rows.clear()
        return rows

    def take_rows(self, provider: str, resource_columns: TTableSchemaColumns | None = None
                  ) -> DataItemWithMeta | None:
        """The rows not yet loaded, routed to the provider's failing-units table from a
        resource with `resource_columns`."""
        rows = self.take_raw(provider)
        return failing_rows(provider, rows, resource_columns) if rows else None


def failing_rows(provider: str, rows: list[dict[str, Any]],
                 resource_columns: TTableSchemaColumns | None = None) -> DataItemWithMeta:
    return routed(failing_table(provider), "unit_key", FAILING_COLUMNS, rows,
                  resource_columns or {})


def is_failing_row(item: Any) -> bool:
    return isinstance(item, dict) and "unit_key" in item
