"""`upload-status highlevel-prune`: delete HighLevel CSV import records that match every filter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dlt.common.configuration.exceptions import ConfigurationException
from requests import HTTPError, RequestException

from pipelines.common.errors import config_message, describe_failure
from pipelines.common.usage import UsageError
from pipelines.destinations.destination import loader_file_format, make_pipeline, writing
from pipelines.destinations.lakehouse import for_destination
from pipelines.run.reconcile import reconcile_state
from pipelines.run.runner import views_after_write
from sources.common.config_checks import ConfigProblem, NotConfigured
from sources.common.job_refs import InvalidJobRef, check_id
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


def _check_statuses(statuses: Sequence[str]) -> None:
    """UsageError for a --status HighLevel does not have (a typo would match nothing quietly),
    suggesting the nearest one."""
    import difflib

    known = [status for status in PROVIDER.status_map if status != "deleted"]
    for status in statuses:
        if status not in known:
            near = difflib.get_close_matches(status, known, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise UsageError(f"--status {status}: not a HighLevel import status; {hint}"
                             f"known: {', '.join(known)}")


def prune(location: str, statuses: Sequence[str], older_than_days: float | None, yes: bool,
          destination: str | None = None, dataset: str | None = None,
          now: datetime | None = None, wait: float = 0,
          on_wait: Callable[[str], None] | None = None) -> PruneResult:
    if not statuses and older_than_days is None:
        raise UsageError("give at least one filter (--status or --older-than): pruning every "
                         "import of a location is not something to do by accident")
    if older_than_days is not None and older_than_days < 0:
        raise UsageError("--older-than must be a number of days >= 0")
    _check_statuses(statuses)
    try:
        check_id(location, "location id")
    except InvalidJobRef as exc:
        raise UsageError(str(exc)) from None
    now = now or datetime.now(timezone.utc)
    with collecting(PROVIDER.name) as stats:
        pipeline = make_pipeline(destination, dataset)  # the token store may be kept there
        try:
            client, credentials = prune_client(location, stats)
        except NotConfigured as exc:
            raise UsageError(f"missing configuration: {exc}") from None
        except (ConfigProblem, ConfigurationException) as exc:
            raise UsageError(config_message(PROVIDER, exc)) from None
        if not yes:  # a dry run only reads the API
            return PruneResult(location, _matches(client, location, statuses, older_than_days,
                                                  now, stats))
        with writing(pipeline, wait, on_wait):  # its history rows go through the state
            reconcile_state(pipeline)
            result = PruneResult(location, _matches(client, location, statuses,
                                                    older_than_days, now, stats))
            if not result.matches:
                return result
            refused: list[str] = []
            try:
                result.outcomes = delete_imports(client, location, result.matches, now, refused)
            except (HTTPError, RequestException) as exc:
                raise UsageError(describe_failure(PROVIDER, exc)) from None
            finally:
                if credentials.agency is not None:
                    credentials.agency.flush()
            pipeline.run(for_destination(deletions_source(result.outcomes), pipeline),
                         loader_file_format=loader_file_format(pipeline))
            views_after_write(pipeline)
            if refused:  # the deletions made before it are loaded above
                raise UsageError(
                    f"location {location}: the token was refused for DELETE ({refused[0]}): "
                    "deleting needs the socialplanner/csv.write scope; check "
                    f"{credentials.key_for(location)}")
    return result


def _matches(client: Any, location: str, statuses: Sequence[str], older_than_days: float | None,
             now: datetime, stats: Any) -> list[dict[str, Any]]:
    try:
        return matching_imports(client, location, statuses, older_than_days, now)
    except (HTTPError, RequestException) as exc:
        raise UsageError(describe_failure(PROVIDER, exc)) from None
