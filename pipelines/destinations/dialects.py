"""SQL written once in DuckDB's dialect, for the destination at hand: which sqlglot dialect it
speaks, and what sqlglot's transpiling leaves for us to mend (time zones, SQLite's timestamps)."""

from __future__ import annotations

from datetime import datetime, timezone

import dlt
from sqlglot import exp

# SQLAlchemy dialect names -> sqlglot's, for dlt's `sqlalchemy` destination (which names no
# sqlglot dialect: it reaches many databases)
_SQLALCHEMY_DIALECTS = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql",
                        "postgresql": "postgres", "mssql": "tsql", "oracle": "oracle",
                        "duckdb": "duckdb", "trino": "trino", "snowflake": "snowflake"}


# databases whose timestamps have no zone (dlt stores them in UTC): `x AT TIME ZONE 'UTC'` is
# `x` there, and they have no such syntax
_NAIVE_UTC = {"sqlite", "mysql"}


_T = exp.DataType.Type
_TEMPORAL = {_T.TIMESTAMP, _T.TIMESTAMPTZ, _T.TIMESTAMPNTZ, _T.TIMESTAMPLTZ, _T.DATETIME,
             _T.TIMESTAMP_S, _T.TIMESTAMP_MS, _T.TIMESTAMP_NS}


def render(tree: exp.Expression, dialect: str) -> str:
    """A parsed DuckDB-dialect statement as SQL of `dialect`."""
    if dialect in _NAIVE_UTC:
        for node in list(tree.find_all(exp.AtTimeZone)):
            zone = node.args.get("zone")
            if isinstance(zone, exp.Literal) and zone.this.upper() == "UTC":
                node.replace(node.this)
        for cast in list(tree.find_all(exp.Cast)):
            if cast.to.this not in _TEMPORAL:
                continue
            if isinstance(cast.this, exp.Literal) and cast.this.is_string:  # a moment we wrote
                cast.this.replace(exp.Literal.string(_utc_text(cast.this.this)))
            if dialect == "sqlite":
                # timestamps are text there, as dlt writes them (UTC, `YYYY-MM-DD
                # HH:MM:SS.ffffff`, which sorts as time does); SQLite's CAST(... AS TIMESTAMP)
                # would keep the year only
                cast.replace(cast.this)
    return tree.sql(dialect=dialect)


def _utc_text(iso: str) -> str:
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def sql_dialect(pipeline: dlt.Pipeline) -> str:
    """The sqlglot dialect of the pipeline's destination: dlt's for it, the engine's for
    `sqlalchemy`, else DuckDB's."""
    dialect = pipeline.destination.capabilities().sqlglot_dialect
    if dialect:
        return dialect
    if pipeline.destination.destination_name == "sqlalchemy":
        with pipeline.sql_client() as client:
            return _SQLALCHEMY_DIALECTS.get(client.dialect_name, client.dialect_name)
    return "duckdb"
