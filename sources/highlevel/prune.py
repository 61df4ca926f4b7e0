"""Deleting HighLevel CSV import records (`DELETE .../csv/{id}`), and recording what was deleted.

Which imports go is decided from a fresh read of the location's listing: an import is deleted
only if it matches every filter given (status, age). Deletions are loaded under the HighLevel
source's own name, so its state learns them: each deleted import gets a `cancelled` history row
(native status `deleted`) and is final; the job views read `highlevel_csv_deletions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import dlt
from dlt.common.configuration.inject import with_config
from dlt.common.typing import TSecretStrValue, TSecretValue
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient

from sources.common.config_checks import bounds_for, checked_origin
from sources.common.redaction import redact
from sources.common.scopes import Scope, ScopedAuth
from sources.common.session import counting_session
from sources.common.stats import ProviderStats, current_stats
from sources.common.throttle import RateLimit
from sources.common.tracking import HISTORY_HINTS, StatusTracker
from sources.highlevel.credentials import (
    LocationBearerAuth,
    LocationCredentials,
    location_credentials,
)
from sources.highlevel.listing import created_at, listing_pages, listing_path
from sources.highlevel.oauth import AgencyOAuthCredentials, agency_settings, agency_tokens
from sources.highlevel.settings import API_VERSION, DELETION_COLUMNS, PROVIDER, RATE_LIMIT

DELETED = "deleted"  # HighLevel's own word, mapped to cancelled
def is_gone(response: Any) -> bool:
    """The import no longer exists: a 404, or the 422 HighLevel answers with "csv ... not
    found" (another 422, "Csv is being processed" say, means it still exists)."""
    if response.status_code == 404:
        return True
    return response.status_code == 422 and "not found" in response.text.lower()

@with_config(sections=("sources", PROVIDER.name))
def prune_client(location: str, stats: ProviderStats, base_url: str = PROVIDER.base_url,
                 access_token: TSecretStrValue | None = None,
                 location_tokens: TSecretValue | None = None,
                 oauth: AgencyOAuthCredentials | None = None,
                 limit: RateLimit | None = RATE_LIMIT) -> tuple[RESTClient, LocationCredentials]:
    """The client prune uses for `location`, with the credentials a run would read it with
    (configuration injected as for the source); `ConfigProblem` / `NotConfigured` for a
    credential or base URL it must not or cannot use."""
    base_url = checked_origin(PROVIDER, base_url)
    session = counting_session(stats, base_url, bounds_for(PROVIDER), limit=limit)
    agency = agency_tokens(agency_settings(oauth), session, base_url)
    _, credentials = location_credentials(access_token, location_tokens, [location], agency)
    client = RESTClient(base_url=base_url, headers={"Version": API_VERSION},
                        auth=LocationBearerAuth(credentials), session=session)
    return client, credentials


def matching_imports(client: RESTClient, location: str, statuses: Sequence[str],
                     older_than_days: float | None, now: datetime, page_size: int = 100
                     ) -> list[dict[str, Any]]:
    """Imports of `location` matching every filter; an import whose age cannot be read never
    matches an age filter."""
    cutoff = None if older_than_days is None else now - timedelta(days=older_than_days)
    found = []
    for page in listing_pages(client, location, page_size):
        for record in page:
            if not isinstance(record, dict) or not record.get("_id"):
                continue
            if statuses and record.get("status") not in statuses:
                continue
            created = created_at(record)
            if cutoff is not None and (created is None or created >= cutoff):
                continue
            found.append(record)
    return found


def delete_imports(client: RESTClient, location: str, imports: Sequence[dict[str, Any]],
                   at: datetime, refused: list[str]) -> list[dict[str, Any]]:
    """One DELETE per import; a row per import with the answer (errors included). The first
    401/403 ends the deletions (the token cannot delete: `refused` gets the server's reason),
    the rows of those done before it are returned."""
    rows = []
    for record in imports:
        csv_id = str(record["_id"])
        response = client.request(f"{listing_path(location)}/{quote(csv_id, safe='')}",
                                  method="DELETE",
                                  auth=ScopedAuth(Scope(location, "delete"), client.auth))
        code = response.status_code
        if code in (401, 403):
            refused.append(f"HTTP {code}: {redact(response.text[:200].strip())}")
            break
        outcome = ("deleted" if 200 <= code < 300 else "already gone" if is_gone(response)
                   else f"failed: HTTP {code}: {redact(response.text[:200].strip())}")
        rows.append({"csv_id": csv_id, "location_id": location,
                     "file_name": record.get("fileName"), "status_before": record.get("status"),
                     "created_at": record.get("createdAt"), "http_status": code,
                     "outcome": outcome, "deleted_at": at})
    return rows


def deletions_source(rows: Sequence[dict[str, Any]]) -> Any:
    """Loads the deletions that took effect, and their `cancelled` status changes, into the
    HighLevel source's tables and state."""
    done = [r for r in rows if not r["outcome"].startswith("failed")]

    @dlt.source(name=PROVIDER.name)
    def highlevel_deletions() -> Iterator[DltResource]:
        tracker = StatusTracker(PROVIDER, current_stats(PROVIDER.name), compact_finished=True)

        @dlt.resource(name="highlevel_csv_deletions", primary_key="csv_id",
                      write_disposition="merge", columns=DELETION_COLUMNS)
        def deletions() -> Iterator[list[dict[str, Any]]]:
            if done:
                yield list(done)

        @dlt.transformer(data_from=deletions, name="highlevel_status_history", **HISTORY_HINTS)
        def cancelled(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
            changes = [tracker.observe(r["csv_id"], DELETED, r["location_id"]) for r in rows]
            tracker.save()
            if found := [c for c in changes if c is not None]:
                yield found

        yield deletions
        yield cancelled

    return highlevel_deletions()
