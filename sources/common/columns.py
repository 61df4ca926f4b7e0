"""How many columns a provider's answers may give one table (and its nested tables): answers
with ever new keys would otherwise widen it past what DuckDB or Postgres accept."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import dlt
from dlt.common.normalizers.naming.snake_case import NamingConvention

_naming = NamingConvention()


@functools.lru_cache(maxsize=8192)
def normalized(key: str) -> str:
    # every record repeats the same few keys; dlt's normalizer costs ~2 us a call
    return _naming.normalize_identifier(key)


def column_paths(record: Mapping[str, Any], table: str = "", prefix: str = "",
                 out: set[str] | None = None) -> set[str]:
    """The columns dlt would make of `record`, as `<nested table>:<column>` (nested dicts are
    flattened into `a__b`, lists become nested tables)."""
    out = set() if out is None else out
    for key, value in record.items():
        name = prefix + normalized(str(key))
        if isinstance(value, dict):
            column_paths(value, table, name + "__", out)
        elif isinstance(value, list):
            child = f"{table}__{name}" if table else name
            for item in value:
                if isinstance(item, dict):
                    column_paths(item, child, "", out)
                else:
                    out.add(f"{child}:value")
        else:
            out.add(f"{table}:{name}")
    return out


class ColumnBudget:
    """At most `cap` columns in `table` and its nested tables together, those the destination
    schema has already included; `admit` says why a record would go over."""

    def __init__(self, table: str, cap: int, key: str) -> None:
        self.table, self.cap, self.key = table, cap, key
        self._known: set[str] | None = None
        self._top: set[str] = set()  # top-level keys of records admitted (`admit_flat`)

    def _seed(self) -> set[str]:
        known: set[str] = set()
        try:
            tables = dlt.current.source_schema().tables
        except Exception:  # outside an extract (a unit test): nothing known yet
            tables = {}
        for name, table in tables.items():
            if name == self.table or name.startswith(self.table + "__"):
                child = name[len(self.table) + 2:]
                known.update(f"{child}:{c}" for c in table.get("columns", {}))
        return known

    def admit(self, record: Mapping[str, Any]) -> str | None:
        """None when the record's columns fit (they are then counted), else the reason."""
        if self._known is None:
            self._known = self._seed()
        new = column_paths(record) - self._known
        if not new:
            return None
        if len(self._known) + len(new) > self.cap:
            return (f"answer would bring {self.table} {len(new)} new columns, over its "
                    f"{self.cap} ({self.key})")
        self._known |= new
        return None

    def admit_flat(self, record: Mapping[str, Any]) -> str | None:
        """`admit` for records of mostly one shape (a listing's): a record with no
        top-level key new to this run is taken as fitting without walking it."""
        if self._top.issuperset(record):
            return None
        reason = self.admit(record)
        if reason is None:
            self._top.update(record)
        return reason
