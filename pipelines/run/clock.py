"""Observation times come from each run's clock, and none is later than a later run's.

A run whose clock ran ahead (3 days, say) stamped its observations in the future; keeping
later runs' times after it (the old rule: never before the last observation) dated every
change at that future moment until real time caught up. Instead each run trusts its own
clock, and before a provider runs, its history rows stamped later than now are capped to just
before now: times stay in the order the runs happened, and none lies in the future of the
newest run's clock. A run whose own clock is set back caps the earlier rows likewise (the
newest clock is trusted; the order of the runs is kept either way).
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta, timezone

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.job_client_impl import SqlJobClientBase

from sources.common.provider import Provider
from sources.common.tracking import history_table, observation_time

_JUST_BEFORE = timedelta(microseconds=1)


def cap_future_observations(pipeline: dlt.Pipeline, provider: Provider) -> int:
    """Cap the provider's history rows stamped after now (see the module); returns how many
    were, 0 without touching the destination when its state's last stamp is not ahead."""
    state = pipeline.state.get("sources", {}).get(provider.name, {})
    last = state.get("observed_until")
    now = datetime.fromisoformat(observation_time().astimezone(timezone.utc).isoformat())
    if not last or datetime.fromisoformat(last) <= now:
        return 0
    if provider.name not in pipeline.schema_names:
        return 0
    capped = now - _JUST_BEFORE
    with pipeline.destination_client(provider.name) as client:
        if not isinstance(client, SqlJobClientBase):
            return 0  # Delta tables: rewritten only by their own loads
        sql = client.sql_client
        table = sql.make_qualified_table_name(history_table(provider))
        if pipeline.destination.destination_name == "sqlalchemy":  # SQLite, MySQL: naive UTC
            now, capped = now.replace(tzinfo=None), capped.replace(tzinfo=None)
        with suppress(DestinationUndefinedEntity):
            found = sql.execute_sql(f"SELECT COUNT(*) FROM {table} WHERE observed_at > %s",
                                    now)
            if found and found[0][0]:
                with sql.begin_transaction():
                    sql.execute_sql(f"UPDATE {table} SET observed_at = %s WHERE "
                                    "observed_at > %s", capped, now)
                return int(found[0][0])
    return 0
