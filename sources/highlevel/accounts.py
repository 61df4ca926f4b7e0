"""The accounts of each import (`accountIds`), shaped as dlt unnests a list of strings into the
nested table `highlevel_csv_uploads__account_ids`, but built here as Arrow: `value`, the import's
`_dlt_id` as `_dlt_parent_id` and `_dlt_root_id`, `_dlt_list_idx`, and a row id."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema.typing import TTableSchemaColumns

from sources.common.arrow_items import arrow_schema, with_load_id

ACCOUNTS_TABLE = "highlevel_csv_uploads__account_ids"
ACCOUNT_COLUMNS: TTableSchemaColumns = {
    "value": {"data_type": "text"},
    "_dlt_parent_id": {"data_type": "text", "nullable": False},
    "_dlt_root_id": {"data_type": "text", "nullable": False},
    "_dlt_list_idx": {"data_type": "bigint", "nullable": False},
    "_dlt_id": {"data_type": "text", "nullable": False},
}
ACCOUNT_SCHEMA = arrow_schema(ACCOUNT_COLUMNS)


def import_key(csv_id: str) -> str:
    """The `_dlt_id` of an import's row: fixed per import, so its accounts can point at it.
    Its `_id` itself: unique in the table (its primary key), and no digest to compute."""
    return csv_id


def account_table(imports: Iterable[Mapping[str, Any]]) -> pa.Table | None:
    """The account rows of `imports` (those whose `accountIds` is a list), each import carrying
    its `_dlt_id` (`import_key`); None if there are none."""
    values: list[str | None] = []
    parents: list[str] = []
    positions: list[int] = []
    for record in imports:
        accounts = record.get("accountIds")
        if not isinstance(accounts, list):
            continue  # absent, or not a list: then it stays a column of the import itself
        parent = record["_dlt_id"]
        for index, account in enumerate(accounts):
            values.append(account if isinstance(account, str) or account is None
                          else json.dumps(account, sort_keys=True))
            parents.append(parent)
            positions.append(index)
    if not values:
        return None
    parent_ids = pa.array(parents, pa.string())
    list_idx = pa.array(positions, pa.int64())
    # unique per (import, position) like dlt's own nested row hash, built by Arrow in one go
    row_ids = pc.binary_join_element_wise(parent_ids, pc.cast(list_idx, pa.string()), "_")
    return with_load_id(pa.Table.from_arrays([pa.array(values, pa.string()), parent_ids,
                                              parent_ids, list_idx, row_ids],
                                             schema=ACCOUNT_SCHEMA))
