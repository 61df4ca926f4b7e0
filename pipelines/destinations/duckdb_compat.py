"""dlt 1.31 reads a whole DuckDB result as Arrow with `fetch_arrow_table`, which DuckDB 2.0
renamed `to_arrow_table`: without this, `pipeline.dataset()[...].arrow()` fails. Applied when
this package is imported, and only where DuckDB lacks the old name."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import duckdb
from dlt.destinations.impl.duckdb.sql_client import DuckDBDBApiCursorImpl


def _iter_arrow(self: DuckDBDBApiCursorImpl, chunk_size: int) -> Iterator[Any]:
    if chunk_size:
        yield from _dlt_iter_arrow(self, chunk_size)
        return
    with warnings.catch_warnings():  # DuckDB warns that a DB-API result is copied once
        warnings.simplefilter("ignore", UserWarning)
        yield self.native_cursor.to_arrow_table()


_dlt_iter_arrow = DuckDBDBApiCursorImpl.iter_arrow
if not hasattr(duckdb.DuckDBPyConnection, "fetch_arrow_table"):
    DuckDBDBApiCursorImpl.iter_arrow = _iter_arrow  # type: ignore[method-assign]
