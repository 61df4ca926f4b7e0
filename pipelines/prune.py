"""`upload-status highlevel-prune`: delete HighLevel CSV import records that match every filter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import dlt
from requests import HTTPError, RequestException

from pipelines.errors import describe_failure
from pipelines.runner import UsageError, loader_file_format, make_pipeline
from sources.common.polling import InvalidJobRef, check_id
from sources.common.stats import collecting
from sources.highlevel.prune import (
    delete_imports,
    deletions_source,
    matching_imports,
    prune_client,
)
from sources.highlevel.settings import PROVIDER


@dataclass
class PruneResult:
    location: str
    matches: list[dict[str, Any]]
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # empty on a dry run

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o["outcome"].startswith("failed")]


def prune(location: str, statuses: Sequence[str], older_than_days: float | None, yes: bool,
          destination: str | None = None, dataset: str | None = None,
          now: datetime | None = None) -> PruneResult:
    if not statuses and older_than_days is None:
        raise UsageError("give at least one filter (--status or --older-than): pruning every "
                         "import of a location is not something to do by accident")
    if older_than_days is not None and older_than_days < 0:
        raise UsageError("--older-than must be a number of days >= 0")
    try:
        check_id(location, "location id")
    except InvalidJobRef as exc:
        raise UsageError(str(exc)) from None
    token = dlt.secrets.get("sources.highlevel.access_token")
    if not token:
        raise UsageError(f"missing configuration {PROVIDER.secret_env_key}")
    base_url = dlt.config.get("sources.highlevel.base_url") or PROVIDER.base_url
    now = now or datetime.now(timezone.utc)
    with collecting(PROVIDER.name) as stats:
        client = prune_client(str(token), str(base_url), stats)
        try:
            matches = matching_imports(client, location, statuses, older_than_days, now)
            result = PruneResult(location, matches)
            if not yes or not matches:
                return result
            result.outcomes = delete_imports(client, location, matches, now)
        except (HTTPError, RequestException) as exc:
            raise UsageError(describe_failure(PROVIDER, exc, stats.secrets)) from None
        pipeline = make_pipeline(destination, dataset)
        pipeline.run(deletions_source(result.outcomes),
                     loader_file_format=loader_file_format(pipeline))
    return result
