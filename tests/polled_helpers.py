"""Helpers of the polled providers' tests: which jobs a run asked for, what it recorded."""

from __future__ import annotations

from collections import Counter
from urllib.parse import unquote

# native statuses after which each provider's simulator never changes a job again
FINISHED = {"upload_post": {"completed", "failed"}, "lobstr": {"SUCCESS", "FAILURE"},
            "cleartax": {"PROCESSED", "ABORTED"}}
HISTORY_TABLES = ("upload_post_status_history", "lobstr_status_history",
                  "cleartax_status_history")


def polled_refs(sim) -> list[str]:
    """The job of every status request in the simulator's log, written as `track` writes it."""
    refs = []
    for r in sim.requests(method="GET"):
        if r.provider == "upload_post" and r.path.endswith("/status"):
            kind = "request" if "request_id" in r.query else "job"
            refs.append(f"{kind}:{r.query[kind + '_id']}")
        elif r.provider == "lobstr":
            refs.append(unquote(r.path.rsplit("/", 1)[1]))
        elif r.provider == "cleartax":
            parts = r.path.split("/")  # /api/v0.2/taxable_entities/TE/upload_activity/ID/status
            refs.append(f"{unquote(parts[4])}/{unquote(parts[6])}")
    return refs


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
