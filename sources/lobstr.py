"""Lobstr.io upload tasks: 200 with row counts in `meta` when done, 202 with `meta` null before."""

from __future__ import annotations

from collections.abc import Sequence

import dlt
from dlt.extract.resource import DltResource

from sources.common import status as s
from sources.common.polling import DEFAULT_CONCURRENCY, PolledProvider, polled_resources
from sources.common.throttle import RateLimit

# documented per-endpoint limit of /v1/tasks (api-notes: Lobstr); its X-RateLimit-* headers are
# honoured too (`throttle.RateLimiter.observe`)
RATE_LIMIT = RateLimit(90, 60.0)

PROVIDER = PolledProvider(
    name="lobstr",
    base_url="https://api.lobstr.io",
    secret_field="api_key",
    status_map={"PENDING": s.PENDING, "PROGRESS": s.RUNNING, "SUCCESS": s.SUCCEEDED,
                "FAILURE": s.FAILED},
    auth_scheme="Token",
    jobs_table="lobstr_upload_tasks",
    status_path="v1/tasks/upload/{job_id}",
    status_field="state",
    body_codes=frozenset({200, 202}),
    id_fields={"id": "{job_id}"},
    # meta is null while the upload runs: typed up front so the columns exist from the start
    columns={f"meta__{k}": {"data_type": "bigint"}
             for k in ("valid", "invalid", "inserted", "duplicates")},
    # rows of the uploaded file: valid ones were inserted or skipped as duplicates
    job_facts={"items_total": "{j}.meta__valid + {j}.meta__invalid",
               "items_succeeded": "{j}.meta__inserted", "items_failed": "{j}.meta__invalid"},
)


@dlt.source(name="lobstr")
def lobstr_source(
    api_key: str = dlt.secrets.value,
    upload_task_ids: Sequence[str] | None = None,
    base_url: str = PROVIDER.base_url,
    rate_limit_requests: int | None = RATE_LIMIT.requests,
    rate_limit_period: float = RATE_LIMIT.period,
    concurrency: int = DEFAULT_CONCURRENCY,
    full_refresh: bool = False,
) -> tuple[DltResource, ...]:
    """Status of every followed upload task that has not finished yet.

    Args:
        api_key: Lobstr API key, sent as `Authorization: Token ...`.
        upload_task_ids: ids to follow besides those registered with `upload-status track`.
        base_url: API origin (scheme, host, port).
        rate_limit_requests / rate_limit_period: at most this many requests in any window of
            this many seconds (documented limit on `/v1/tasks`: 90 per minute, with temporary
            IP blocks after repeated 429s); 0 turns it off.
        concurrency: status requests in flight at once.
        full_refresh: poll finished tasks again too.
    """
    return polled_resources(PROVIDER, api_key, base_url, upload_task_ids or [], full_refresh,
                            limit=RateLimit.of(rate_limit_requests, rate_limit_period),
                            concurrency=concurrency)


SOURCE = lobstr_source
