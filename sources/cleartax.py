"""ClearTax e-way bill upload activities (INIT ... PROCESSED / ABORTED), per taxable entity.

The vendor marks this v0.x upload-activity API deprecated; no rate limit is documented."""

from __future__ import annotations

from collections.abc import Sequence

import dlt
from dlt.extract.resource import DltResource

from sources.common import status as s
from sources.common.analytics import failure_rows_sql
from sources.common.polling import (
    DEFAULT_CONCURRENCY,
    InvalidJobRef,
    JobRef,
    PolledProvider,
    check_id,
    polled_resources,
)
from sources.common.throttle import RateLimit


def parse_activity(text: str) -> JobRef:
    """`TAXABLE_ENTITY_ID/ACTIVITY_ID`, as the contract writes ClearTax jobs."""
    entity, sep, activity = text.partition("/")
    if not sep or "/" in activity:
        raise InvalidJobRef("expected TAXABLE_ENTITY_ID/ACTIVITY_ID")
    return JobRef(ref=text, job_id=check_id(activity, "activity id"),
                  scope_id=check_id(entity, "taxable entity id"))


PROVIDER = PolledProvider(
    name="cleartax",
    base_url="https://ewb.cleartax.in",
    secret_field="auth_token",
    status_map={"INIT": s.PENDING, "UPLOADED": s.PENDING, "QUEUED": s.PENDING,
                "PROCESSING": s.RUNNING, "PROCESSED": s.SUCCEEDED, "ABORTED": s.FAILED},
    auth_header="X-Cleartax-Auth-Token",
    jobs_table="cleartax_upload_activities",
    status_path="api/v0.2/taxable_entities/{scope_id}/upload_activity/{job_id}/status",
    status_field="status",
    parse_ref=parse_activity,
    id_fields={"activityId": "{job_id}", "taxable_entity_id": "{scope_id}"},
    columns={
        "activity_id": {"data_type": "text"},
        "taxable_entity_id": {"data_type": "text"},
        "status": {"data_type": "text"},
        "error_message": {"data_type": "text"},
        "queued_count": {"data_type": "bigint"},
    },
    job_facts={"error_message": "{j}.error_message"},
    failure_rows=failure_rows_sql(
        "cleartax", "{ds}.cleartax_upload_activities AS ct_f",
        {"job_id": "ct_f.tracked_id", "item": "ct_f.taxable_entity_id",
         "reason": "ct_f.error_message"}, where="ct_f.error_message IS NOT NULL"),
)


@dlt.source(name="cleartax")
def cleartax_source(
    auth_token: str = dlt.secrets.value,
    activities: Sequence[str] | None = None,
    base_url: str = PROVIDER.base_url,
    rate_limit_requests: int | None = None,
    rate_limit_period: float = 1.0,
    concurrency: int = DEFAULT_CONCURRENCY,
    full_refresh: bool = False,
) -> tuple[DltResource, ...]:
    """Status of every followed upload activity that has not finished yet.

    Args:
        auth_token: sent as `X-Cleartax-Auth-Token`.
        activities: `TAXABLE_ENTITY_ID/ACTIVITY_ID` entries to follow besides those registered
            with `upload-status track`.
        base_url: API origin (scheme, host, port).
        rate_limit_requests / rate_limit_period: at most this many requests in any window of
            this many seconds (no client-side limit when unset; 429s are retried either way).
        concurrency: status requests in flight at once.
        full_refresh: poll finished activities again too.
    """
    return polled_resources(PROVIDER, auth_token, base_url, activities or [], full_refresh,
                            limit=RateLimit.of(rate_limit_requests, rate_limit_period),
                            concurrency=concurrency)


SOURCE = cleartax_source
