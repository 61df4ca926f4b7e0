"""HighLevel as data: origin, credential, status map and column types from the OpenAPI schema."""

from __future__ import annotations

from dlt.common.schema.typing import TTableSchemaColumns

from sources.common import status as s
from sources.common.provider import Provider

API_VERSION = "2021-07-28"

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
)

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
