"""Job status change detection backed by dlt source state.

The last native status of every job lives in the source state, which dlt commits in the same
load package as the data and restores from the destination when the local pipeline folder is
gone. A job whose status differs from the remembered one (or that is new) yields one history row.
"""

from __future__ import annotations

from typing import Any

import dlt
import pendulum
from dlt.common.schema.typing import TTableSchemaColumns

from sources.common.provider import Provider
from sources.common.stats import ProviderStats

# one row per observed status change, the same shape for every provider
HISTORY_COLUMNS: TTableSchemaColumns = {
    "provider": {"data_type": "text", "nullable": False},
    "job_id": {"data_type": "text", "nullable": False},
    "scope_id": {"data_type": "text"},
    "native_status": {"data_type": "text"},
    "status": {"data_type": "text", "nullable": False},
    "previous_native_status": {"data_type": "text"},
    "observed_at": {"data_type": "timestamp", "nullable": False},
}


class StatusTracker:
    def __init__(self, provider: Provider, stats: ProviderStats,
                 observed_at: pendulum.DateTime | None = None) -> None:
        self.provider = provider
        self.stats = stats
        self.observed_at = observed_at or pendulum.now("UTC")
        self.changes: dict[str, dict[str, Any]] = {}  # job id -> history row, this run only

    @staticmethod
    def _jobs() -> dict[str, Any]:
        return dlt.current.source_state().setdefault("jobs", {})  # type: ignore[no-any-return]

    def known_status(self, job_id: str) -> Any:
        return self._jobs().get(job_id)

    def observe(self, job_id: str, native_status: Any, scope_id: str | None = None
                ) -> dict[str, Any] | None:
        """Record one sighting; return the history row if the status is new or changed."""
        jobs = self._jobs()
        self.stats.counts["jobs seen"] += 1
        if not self.provider.is_terminal(native_status):
            self.stats.counts["unfinished"] += 1
        previous = jobs.get(job_id)
        if job_id in jobs and previous == native_status:
            return None
        self.stats.counts["new" if job_id not in jobs else "changed"] += 1
        jobs[job_id] = native_status
        row = {
            "provider": self.provider.name,
            "job_id": job_id,
            "scope_id": scope_id,
            "native_status": native_status if native_status is None else str(native_status),
            "status": self.provider.canonical(native_status),
            "previous_native_status": previous,
            "observed_at": self.observed_at,
        }
        self.changes[job_id] = row
        return row
