"""Destination and local state disagree: found at the start of a run, the destination wins.

The local pipeline folder is a cache of the state dlt stores in the destination with every
load. It can be ahead of it (the dataset restored from an older backup), behind it (another
machine ran, or the folder was lost and dlt restored the wrong version: it takes the state of
the newest load id, and load ids are wall-clock times, so a clock that went back makes an older
state look newer), or know tables the destination lost (a table dropped by hand: dlt would
neither recreate it nor poll its finished jobs again). Each is found here and repaired so the
run re-reads what it needs instead of trusting the state.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.pipeline.state_sync import decompress_state, migrate_state_to_current

from pipelines.destinations.dlt_private import restoring_state


def newest_stored_state(pipeline: dlt.Pipeline) -> dict[str, Any] | None:
    """The pipeline's state with the highest version the destination holds (loaded packages
    only), None if it holds none or cannot be asked."""
    with pipeline.destination_client() as client:
        if not isinstance(client, SqlJobClientBase):
            return None  # file destinations: dlt's own restore
        sql = client.sql_client
        state = sql.make_qualified_table_name(client.schema.state_table_name)
        loads = sql.make_qualified_table_name(client.schema.loads_table_name)
        first, last = sql._limit_clause_sql(1)
        try:
            rows = sql.execute_sql(
                f"SELECT {first} s.state FROM {state} AS s JOIN {loads} AS l ON l.load_id = "
                f"s._dlt_load_id WHERE s.pipeline_name = %s AND l.status = 0 "
                f"ORDER BY s.version DESC, l.load_id DESC {last}", pipeline.pipeline_name)
        except DestinationUndefinedEntity:
            return None
    if not rows:
        return None
    return dict(migrate_state_to_current(pipeline.pipeline_name, decompress_state(rows[0][0])))


def reconcile_state(pipeline: dlt.Pipeline) -> str | None:
    """Make the local state the destination's newest when the two differ (and no package is
    pending, which carries a state of its own); returns what was found, None if they agree."""
    if pipeline.has_pending_data:
        return None
    newest = newest_stored_state(pipeline)
    if newest is None:
        return None
    local = pipeline.state
    if (newest["_state_version"] == local["_state_version"]
            and newest["_version_hash"] == local.get("_version_hash")):
        return None
    fresh = local["_state_version"] == 0
    how = ("missing" if fresh else
           "ahead of" if local["_state_version"] > newest["_state_version"] else "behind")
    pipeline.drop()  # the same object, its folder emptied: nothing pending was in it
    # dlt's sync would take the state of the newest load id; ours is the highest version
    with restoring_state(pipeline, newest):
        pipeline.sync_destination()
    if fresh:
        return None  # a new local folder: restoring it is the normal case
    return (f"the local state (version {local['_state_version']}) was {how} the destination's "
            f"(version {newest['_state_version']}): restored from the destination")


def missing_tables(pipeline: dlt.Pipeline, schema_name: str) -> list[str]:
    """Tables of a provider that hold data by its schema but are gone from the destination,
    and dlt's own tables (dropped, each fails every load)."""
    schema = pipeline.schemas.get(schema_name) if schema_name in pipeline.schema_names else None
    if schema is None:
        return []
    names = list(schema.data_table_names(seen_data_only=True))
    if not names:
        return []
    names += [schema.loads_table_name, schema.version_table_name]
    if schema.state_table_name in schema.tables:  # the schema that carries the state
        names.append(schema.state_table_name)
    with pipeline.destination_client(schema_name) as client:
        if not isinstance(client, SqlJobClientBase):
            return []
        try:
            found = {name for name, columns in client.get_storage_tables(names) if columns}
        except DestinationUndefinedEntity:
            found = set()
    return [n for n in names if n not in found]


def forget_stored_schema(pipeline: dlt.Pipeline, schema_name: str) -> None:
    """Make dlt compare the schema with the tables the destination really has on the next load
    (and create the missing ones): it skips that when it finds the schema's hash stored."""
    with pipeline.destination_client(schema_name) as client:
        if isinstance(client, SqlJobClientBase):
            sql = client.sql_client
            table = sql.make_qualified_table_name(client.schema.version_table_name)
            with suppress(DestinationUndefinedEntity):  # the whole dataset is gone: nothing to
                sql.execute_sql(f"DELETE FROM {table} WHERE schema_name = %s",  # forget
                                schema_name)
