"""The accounts of each import (`accountIds`), shaped as dlt unnests a list of strings into the
nested table `highlevel_csv_uploads__account_ids`, but built here as Arrow: `value`, the import's
`_dlt_id` as `_dlt_parent_id` and `_dlt_root_id`, `_dlt_list_idx`, and dlt's own row hash."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
from dlt.common.normalizers.json.helpers import get_nested_row_hash
from dlt.common.schema.typing import TTableSchemaColumns

from sources.common.arrow_items import row_key

ACCOUNTS_TABLE = "highlevel_csv_uploads__account_ids"
ACCOUNT_COLUMNS: TTableSchemaColumns = {
    "value": {"data_type": "text"},
    "_dlt_parent_id": {"data_type": "text", "nullable": False},
    "_dlt_root_id": {"data_type": "text", "nullable": False},
    "_dlt_list_idx": {"data_type": "bigint", "nullable": False},
    "_dlt_id": {"data_type": "text", "nullable": False},
}
ACCOUNT_SCHEMA = pa.schema([
    pa.field("value", pa.string()), pa.field("_dlt_parent_id", pa.string(), False),
    pa.field("_dlt_root_id", pa.string(), False), pa.field("_dlt_list_idx", pa.int64(), False),
    pa.field("_dlt_id", pa.string(), False)])


def import_key(csv_id: str) -> str:
    """The `_dlt_id` of an import's row: fixed per import, so its accounts can point at it."""
    return row_key("highlevel", csv_id)


def account_rows(imports: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Columns of the account rows of `imports` (those whose `accountIds` is a list), each
    import carrying its `_dlt_id` (`import_key`)."""
    columns: dict[str, list[Any]] = {name: [] for name in ACCOUNT_SCHEMA.names}
    for record in imports:
        accounts = record.get("accountIds")
        if not isinstance(accounts, list):
            continue  # absent, or not a list: then it stays a column of the import itself
        parent = record["_dlt_id"]
        for index, account in enumerate(accounts):
            columns["value"].append(account if isinstance(account, str) or account is None
                                    else json.dumps(account, sort_keys=True))
            columns["_dlt_parent_id"].append(parent)
            columns["_dlt_root_id"].append(parent)
            columns["_dlt_list_idx"].append(index)
            columns["_dlt_id"].append(get_nested_row_hash(parent, ACCOUNTS_TABLE, index))
    return columns
