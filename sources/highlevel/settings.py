"""HighLevel as data: origin, credential, status map and column types from the OpenAPI schema."""

from __future__ import annotations

from dlt.common.schema.typing import TTableSchemaColumns

from sources.common import status as s
from sources.common.analytics import failure_rows_sql, job_rows_sql
from sources.common.provider import Provider
from sources.common.throttle import RateLimit

API_VERSION = "2021-07-28"
# documented burst limit, per app and location: 100 requests in 10 seconds
RATE_LIMIT = RateLimit(100, 10.0)

# Every documented field is declared so the tables have stable columns even before a value is
# seen; fields the API adds later still arrive through dlt's schema evolution.
CSV_COLUMNS: TTableSchemaColumns = {
    "_id": {"data_type": "text", "nullable": False},
    "location_id": {"data_type": "text"},
    "file_name": {"data_type": "text"},
    "file": {"data_type": "text"},
    "status": {"data_type": "text"},
    "count": {"data_type": "bigint"},
    "created_by": {"data_type": "text"},
    "trace_id": {"data_type": "text"},
    "origin_id": {"data_type": "text"},
    "approver": {"data_type": "text"},
    "created_at": {"data_type": "timestamp"},
    "last_seen_at": {"data_type": "timestamp"},  # added: when a run last saw it in the listing
}

POST_COLUMNS: TTableSchemaColumns = {
    "csv_id": {"data_type": "text", "nullable": False},
    "location_id": {"data_type": "text"},
    "post_index": {"data_type": "bigint", "nullable": False},
    "schedule_date": {"data_type": "timestamp"},
    "summary": {"data_type": "text"},
    "type": {"data_type": "text"},
    "follow_up_comment": {"data_type": "text"},
    "error_message": {"data_type": "text"},
}

# imports deleted with `upload-status highlevel-prune`
DELETION_COLUMNS: TTableSchemaColumns = {
    "csv_id": {"data_type": "text", "nullable": False},
    "location_id": {"data_type": "text"},
    "file_name": {"data_type": "text"},
    "status_before": {"data_type": "text"},
    "created_at": {"data_type": "timestamp"},
    "http_status": {"data_type": "bigint"},
    "outcome": {"data_type": "text"},  # deleted | already gone
    "deleted_at": {"data_type": "timestamp"},
}


# posts with an error message per import; an import whose posts were never read has no row
_POST_ERRORS = """(SELECT hl_x.csv_id,
        SUM(CASE WHEN hl_x.error_message IS NOT NULL THEN 1 ELSE 0 END) AS failed,
        MIN(hl_x.error_message) AS first_error
    FROM {ds}.highlevel_csv_posts AS hl_x GROUP BY hl_x.csv_id) AS hl_p"""

PROVIDER = Provider(
    name="highlevel",
    base_url="https://services.leadconnectorhq.com",
    secret_field="access_token",
    status_map={
        "pending": s.PENDING,
        "in_review": s.PENDING,
        "in_progress": s.RUNNING,
        "importing": s.RUNNING,
        "completed": s.SUCCEEDED,
        "failed": s.FAILED,
        "deleted": s.CANCELLED,
    },
    job_rows=job_rows_sql(
        "highlevel",
        f"{{ds}}.highlevel_csv_uploads AS hl_u LEFT JOIN {_POST_ERRORS} ON hl_p.csv_id = hl_u._id"
        " LEFT JOIN {ds}.highlevel_csv_deletions AS hl_d ON hl_d.csv_id = hl_u._id",
        {"job_ref": "hl_u._id", "job_id": "hl_u._id", "scope_id": "hl_u.location_id",
         # a pruned import is `deleted` (cancelled), whatever its status was before
         "native_status": "CASE WHEN hl_d.csv_id IS NOT NULL THEN 'deleted' ELSE hl_u.status END",
         "submitted_at": "hl_u.created_at",
         "last_seen_at": "hl_u.last_seen_at",
         # `count` is a JSON number: a fractional one is kept by dlt beside it, as a double
         "items_total": 'COALESCE(hl_u."count", CAST(hl_u.count__v_double AS BIGINT))',
         "items_failed": "hl_p.failed",
         # posts of a finished import without an error message are taken as imported
         "items_succeeded": "CASE WHEN hl_u.status IN ('completed', 'failed') "
                            'THEN hl_u."count" - hl_p.failed END',
         "error_message": "hl_p.first_error"}),
    tables={"highlevel_csv_uploads": CSV_COLUMNS, "highlevel_csv_posts": POST_COLUMNS,
            "highlevel_csv_deletions": DELETION_COLUMNS},
    failure_rows=failure_rows_sql(
        "highlevel", "{ds}.highlevel_csv_posts AS hl_f",
        {"job_id": "hl_f.csv_id", "item": "CAST(hl_f.post_index AS VARCHAR)",
         "reason": "hl_f.error_message"}, where="hl_f.error_message IS NOT NULL"),
)
