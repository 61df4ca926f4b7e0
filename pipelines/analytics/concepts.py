"""The concepts the views and the report share, each defined once (DuckDB SQL over the rows of
`upload_jobs`, aliased `j`): when a job is finished, in flight, on which day it counts, and what
its success rate is."""

from __future__ import annotations

from sources.common.status import TERMINAL

TERMINAL_LIST = ", ".join(f"'{s}'" for s in sorted(TERMINAL))
# the statuses a success rate is taken over: a job that ended, neither cancelled nor unknown
RATED = ("succeeded", "partial", "failed")


def is_terminal(status: str) -> str:
    """A canonical status column or expression is a final one."""
    return f"{status} IN ({TERMINAL_LIST})"


def resolved_status(row: str, mapped: str = "m") -> str:
    """A row's canonical status: its override (not found, untracked ...), else its native
    status through the provider's map (`mapped`: the joined `upload_status_map`), else unknown."""
    return f"COALESCE({row}.status_override, {mapped}.status, 'unknown')"


def job_day(alias: str = "j") -> str:
    """The UTC day a job counts on (submitted, else first seen), whatever the session's time
    zone, so every database groups alike."""
    return f"CAST(({job_since(alias)} AT TIME ZONE 'UTC') AS DATE)"


def job_since(alias: str = "j") -> str:
    """When a job started counting: submitted, else first seen."""
    return f"COALESCE({alias}.submitted_at, {alias}.first_seen_at)"


def in_flight(alias: str = "j", now: str = "CURRENT_TIMESTAMP") -> str:
    """Unfinished and still expected to move: neither untracked nor a scheduled post not yet
    due at `now` (an SQL timestamp expression)."""
    return (f"NOT {alias}.is_terminal AND {alias}.untracked_at IS NULL "
            f"AND ({alias}.scheduled_at IS NULL OR {alias}.scheduled_at <= {now})")


def count_where(condition: str) -> str:
    """How many rows meet `condition`, as BIGINT everywhere (DuckDB's SUM gives HUGEINT)."""
    return f"CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT)"


def success_rate_sql(alias: str = "j") -> str:
    """Succeeded among the rated jobs (NULL when none is rated)."""
    rated = ", ".join(f"'{s}'" for s in RATED)
    return (f"CAST(SUM(CASE WHEN {alias}.status = 'succeeded' THEN 1 ELSE 0 END) AS DOUBLE) "
            f"/ NULLIF(SUM(CASE WHEN {alias}.status IN ({rated}) THEN 1 ELSE 0 END), 0)")


def success_rate(counts: dict[str, int]) -> float | None:
    """The same rate from counts per status (the report's totals over its days)."""
    rated = sum(counts.get(s, 0) for s in RATED)
    return counts.get("succeeded", 0) / rated if rated else None
