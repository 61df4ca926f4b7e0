"""Batches of records as Arrow tables, so dlt writes them straight to parquet instead of
normalizing every row as JSON.

A batch becomes Arrow only when the result is exactly what dlt's row-by-row path would store:
every value fits the column's type as the schema already knows it (or, for a new column, a type
dlt would also infer). Anything else (a nested object, a value dlt would keep in a variant column,
a string dlt would detect as a timestamp, two keys with one normalized name) returns None, and the
caller yields that batch as dicts for dlt to handle as always.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from itertools import chain
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.schema import Schema
from dlt.common.schema.detections import is_iso_timestamp
from dlt.common.schema.typing import TTableSchemaColumns

from sources.common.tracking import HISTORY_COLUMNS, HistoryRow

_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
# the types dlt infers for new columns from Python values (strings are checked separately: dlt
# may detect them as timestamps)
_INFERRED: dict[type, str] = {str: "text", int: "bigint", float: "double", bool: "bool"}
_NONE = type(None)
_BY_INFERENCE = {"text", "bigint", "double", "bool"}


def with_load_id(table: pa.Table) -> pa.Table:
    """`table` with dlt's `_dlt_load_id` column (the extracting package's load id), as dlt's
    row path adds to every row: dlt adds it to Arrow items only under a process-wide setting
    (`normalize.parquet_normalizer.add_dlt_load_id`), which a source must not flip, and a
    table fed both ways would otherwise hold rows without one (its column is NOT NULL)."""
    from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable

    try:
        load_id = dlt.current.load_package_state()["load_id"]
    except CurrentLoadPackageStateNotAvailable:  # not extracting (a unit test)
        return table
    return table.append_column(pa.field("_dlt_load_id", pa.string(), nullable=False),
                               pa.repeat(pa.scalar(load_id, pa.string()), table.num_rows))


def known_columns(schema: Schema, table: str, declared: TTableSchemaColumns
                  ) -> TTableSchemaColumns:
    """The columns `schema` holds for `table` (types seen in earlier loads), else those
    declared: what `to_arrow` types a batch by."""
    return schema.tables.get(table, {}).get("columns") or declared


def arrow_schema(columns: TTableSchemaColumns) -> pa.Schema:
    """The Arrow schema of declared dlt columns (types and required-ness), in their order."""
    return pa.schema([pa.field(name, _ARROW_TYPES[column["data_type"]],
                               nullable=column.get("nullable", True))
                      for name, column in columns.items()])


def to_arrow(rows: Sequence[Mapping[str, Any]], columns: TTableSchemaColumns,
             naming: NamingConvention, unnested: Collection[str] = ()) -> pa.Table | None:
    """`rows` as one Arrow table typed by `columns` (normalized names), or None when dlt's
    row path must take them (see the module docstring). Lists under the keys in `unnested`
    are left out, as dlt moves them to nested tables (the caller builds those)."""
    keys = dict.fromkeys(chain.from_iterable(rows))  # in first-seen order
    names = {key: naming.normalize_identifier(key) for key in keys}  # -> column name
    if len(set(names.values())) != len(names):
        return None
    arrays, fields = [], []
    for key, name in names.items():
        values = [row.get(key) for row in rows]
        if key in unnested:
            values = [None if isinstance(v, list) else v for v in values]
        column = columns.get(name, {})
        array = _column(values, column.get("data_type"))
        if array is None:
            return None
        if array.type == pa.null():
            continue  # dlt creates no column from null values alone
        arrays.append(array)
        # a required column stays required (dlt warns when Arrow and its schema disagree)
        required = column.get("nullable") is False and array.null_count == 0
        fields.append(pa.field(key, array.type, nullable=not required))
    return with_load_id(pa.Table.from_arrays(arrays, schema=pa.schema(fields)))


def _column(values: list[Any], data_type: str | None) -> pa.Array | None:
    if data_type in _BY_INFERENCE:
        # Arrow's own inference is as strict as dlt about these types (mixed kinds fail; bytes
        # for text or floats for integers infer another type), and one pass instead of two
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError):
            return None
        arrow_type = _ARROW_TYPES[data_type]
        if array.type == arrow_type:
            return array
        if array.type == pa.null():
            return pa.nulls(len(values), arrow_type)
        if data_type == "double" and array.type == pa.int64():
            return array.cast(arrow_type)
        return None
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if not kinds:
        return pa.array(values, _ARROW_TYPES[data_type]) if data_type in _ARROW_TYPES else \
            pa.nulls(len(values))
    if data_type is None:
        if len(kinds) != 1 or (kind := next(iter(kinds))) not in _INFERRED:
            return None
        if kind is str and any(_looks_like_timestamp(v) for v in values if v is not None):
            return None
        data_type = _INFERRED[kind]
    arrow_type = _ARROW_TYPES.get(data_type)
    if arrow_type is None or not _fits(kinds, data_type):
        return None
    try:
        if data_type == "timestamp" and kinds == {str}:
            return pc.cast(pa.array(values, pa.string()), arrow_type)
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError):
        return None


def _fits(kinds: set[type], data_type: str) -> bool:
    if data_type == "text":
        return kinds == {str}
    if data_type == "bigint":
        return kinds == {int}
    if data_type == "double":
        return kinds <= {float, int}
    if data_type == "bool":
        return kinds == {bool}
    # timestamp: ISO strings (cast by Arrow, which refuses what it cannot read) or datetimes
    return len(kinds) == 1


def _looks_like_timestamp(value: str) -> bool:
    # dlt's default schema detects ISO timestamps in new text columns
    return is_iso_timestamp(str, value) is not None


_HISTORY_SCHEMA = arrow_schema(
    {**HISTORY_COLUMNS, "_dlt_id": {"data_type": "text", "nullable": False}})


def history_arrow(rows: Sequence[HistoryRow]) -> pa.Table:
    """History rows (all values made by the tracker, so they always fit) as Arrow; `_dlt_id`
    is the change key, one per row by construction."""
    columns = [pa.array(values, field.type) for values, field in zip(
        zip(*rows, strict=True), _HISTORY_SCHEMA, strict=False)]
    return with_load_id(pa.Table.from_arrays([*columns, columns[0]], schema=_HISTORY_SCHEMA))
