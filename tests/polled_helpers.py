"""Helpers of the polled providers' tests: which jobs a run asked for, what it recorded; every
provider from the registry, what its API does from its fixture's facts."""

from __future__ import annotations

from collections import Counter

from conftest import POLLED

from sources import providers

# native statuses after which each provider's simulator never changes a job again
FINISHED = {name: providers()[name].fixture_class().finished for name in POLLED}
HISTORY_TABLES = tuple(f"{name}_status_history" for name in POLLED)


def polled_refs(sim) -> list[str]:
    """The job of every status request in the simulator's log, written as `track` writes it."""
    return [ref for r in sim.requests(method="GET")
            if (fixture := sim.fixtures.get(r.provider)) is not None
            and hasattr(fixture, "polled_job") and (ref := fixture.polled_job(r)) is not None]


def history_rows(query) -> Counter[str]:
    rows = Counter()
    present = {t for (t,) in query("select table_name from information_schema.tables")}
    for table in set(HISTORY_TABLES) & present:  # a table exists once it has had rows
        for (job_ref,) in query(f"select job_ref from {{ds}}.{table}"):
            rows[job_ref] += 1
    return rows


def statuses(query, table: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in query(
        f"select job_ref, native_status, canonical_status from {{ds}}.{table}")}
