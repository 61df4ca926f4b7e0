"""Upload-Post as a polled provider: `request:ID` / `job:ID` references and a status refined by
the per-platform results (some failed: `partial`)."""

from __future__ import annotations

from typing import Any

from sources.common import status as s
from sources.common.job_refs import InvalidJobRef, JobRef, check_id
from sources.common.polled_provider import PolledProvider
from sources.upload_post.views import FAILURE_ROWS, PLATFORM_RESULTS

KINDS = ("request", "job")


RETRYABLE = "retryable"  # a platform result Upload-Post will try again


def parse_ref(text: str) -> JobRef:
    """`request:ID` (async upload) or `job:ID` (scheduled post), as the contract writes them."""
    kind, sep, job_id = text.partition(":")
    if not sep or kind not in KINDS:
        raise InvalidJobRef("expected request:ID or job:ID")
    return JobRef(ref=text, job_id=check_id(job_id), kind=kind)


def _platform_outcome(result: dict[str, Any]) -> bool | None:
    if result.get("status") == RETRYABLE:  # Upload-Post tries that platform again: open
        return None
    if result.get("success") is not None:
        return bool(result["success"])
    status = result.get("status")
    return {"completed": True, "failed": False}.get(status) if isinstance(status, str) else None


def _platforms(answer: dict[str, Any]) -> list[tuple[dict[str, Any], bool | None]]:
    """Each platform result of an answer with its outcome (True ok, False failed, None open)."""
    results = answer.get("results")
    if not isinstance(results, list):
        return []
    return [(r, _platform_outcome(r)) for r in results if isinstance(r, dict)]


def refine(status: str, answer: dict[str, Any]) -> str:
    """A finished request whose platforms did not all succeed is `partial` (some failed) or
    `failed` (all failed), whatever the top-level word says."""
    if status not in (s.SUCCEEDED, s.FAILED):
        return status
    outcomes = {ok for _, ok in _platforms(answer)}
    if True in outcomes and False in outcomes:
        return s.PARTIAL
    if outcomes == {False}:
        return s.FAILED
    return status


def derive(answer: dict[str, Any], status: str) -> dict[str, Any]:
    """Platform counts and the first failure reason, so SQL needs no walk over `results`."""
    platforms = _platforms(answer)
    outcomes = [ok for _, ok in platforms]
    reason = next((r.get("error_message") or r.get("message")
                   for r, ok in platforms if ok is False), None)
    if reason is None and status in (s.FAILED, s.PARTIAL, s.NOT_FOUND, s.CANCELLED):
        reason = answer.get("message") or answer.get("error")
    return {"platforms_succeeded": outcomes.count(True), "platforms_failed": outcomes.count(False),
            "failure_reason": reason if reason is None else str(reason)}


PROVIDER = PolledProvider(
    name="upload_post",
    base_url="https://api.upload-post.com",
    secret_field="api_key",
    status_map={"pending": s.PENDING, "queued": s.PENDING, "processing": s.RUNNING,
                "in_progress": s.RUNNING, "completed": s.SUCCEEDED, "failed": s.FAILED,
                "not_found": s.NOT_FOUND},
    auth_scheme="Apikey",
    jobs_table="upload_post_uploads",
    status_path="api/uploadposts/status",
    status_params={"{kind}_id": "{job_id}"},
    status_field="status",
    parse_ref=parse_ref,
    id_fields={"{kind}_id": "{job_id}"},
    refine=refine,
    derive=derive,
    columns={
        "platforms_succeeded": {"data_type": "bigint"},
        "platforms_failed": {"data_type": "bigint"},
        "failure_reason": {"data_type": "text"},
        "request_id": {"data_type": "text"},
        "job_id": {"data_type": "text"},
        "status": {"data_type": "text"},
        "completed": {"data_type": "bigint"},
        "total": {"data_type": "bigint"},
        "message": {"data_type": "text"},
        "last_update": {"data_type": "timestamp"},
    },
    job_facts={"items_total": "{j}.total", "items_succeeded": "{j}.platforms_succeeded",
               "items_failed": "{j}.platforms_failed", "error_message": "{j}.failure_reason",
               "scheduled_at": "{j}_s.scheduled_date"},
    # scheduled posts keep the date they were scheduled for (sources/upload_post/schedule.py)
    job_joins="LEFT JOIN {ds}.upload_post_scheduled_posts AS {j}_s ON {j}_s.job_ref = {j}.job_ref",
    failure_rows=FAILURE_ROWS,
    views=(PLATFORM_RESULTS,),
    nested_columns={"results": {
        "platform": {"data_type": "text"},
        "status": {"data_type": "text"},
        "success": {"data_type": "bool"},
        "message": {"data_type": "text"},
        "error_message": {"data_type": "text"},
        "upload_timestamp": {"data_type": "timestamp"},
    }},
)
