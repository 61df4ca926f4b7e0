"""`upload-status track`: register jobs to follow, durably (in the pipeline state that dlt keeps
in the destination)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt

from pipelines.common.usage import UsageError
from pipelines.destinations.destination import loader_file_format, make_pipeline, writing
from pipelines.destinations.lakehouse import for_destination
from pipelines.run.reconcile import reconcile_state
from pipelines.run.runner import views_after_write
from sources import providers
from sources.common.counts import Count
from sources.common.job_refs import JobRef
from sources.common.polled_provider import PolledProvider
from sources.common.polled_resources import registration_source, untrack_source
from sources.common.stats import collecting


@dataclass
class TrackResult:
    provider: str
    given: int
    registered: int  # newly followed

    @property
    def already_followed(self) -> int:
        return self.given - self.registered


def read_id_file(path: Path, column: str | None = None) -> list[str]:
    """Ids from a file: one per line, or with `column` the named column of a CSV with a header.

    Lines are kept as written (only the line break is dropped), so an id with stray spaces is
    reported as invalid instead of silently becoming another id.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    if column is None:
        lines = [line for line in text.splitlines() if line.strip()]
        several = next((line for line in lines if any(c in line for c in ",;\t")), None)
        if path.suffix.lower() in (".csv", ".tsv") or several is not None:
            raise UsageError(f"{path} looks like a table with several columns: name the column "
                             "holding the ids with --column (the first row is its header)")
        return lines
    reader = csv.DictReader(text.splitlines())
    if column not in (reader.fieldnames or []):
        raise UsageError(f"{path} has no column {column!r}; columns: "
                         f"{', '.join(reader.fieldnames or [])}")
    return [row[column] for row in reader if (row.get(column) or "").strip()]


def polled_provider(name: str) -> PolledProvider:
    packages = providers()
    if name not in packages:
        raise UsageError(f"unknown provider {name}; known: {', '.join(packages)}")
    provider = packages[name].provider
    if not isinstance(provider, PolledProvider):
        raise UsageError(f"{name} jobs are listed from the API, not registered: nothing to track")
    return provider


def _unique_refs(provider: PolledProvider, ids: Sequence[str], nothing_done: str
                 ) -> list[JobRef]:
    """The ids as job refs, each once; UsageError (ending `nothing_done`) when none is given or
    any is invalid: all or nothing, a half-registered file is harder to fix than a refused one."""
    if not ids:
        raise UsageError("no ids given: pass them as arguments or with --from-file")
    refs, invalid = provider.split_refs(ids)
    if invalid:
        raise UsageError(f"{invalid}; {nothing_done}")
    return list({r.ref: r for r in refs}.values())


def _load_locked(pipeline: dlt.Pipeline, source: Any, wait: float,
                 on_wait: Callable[[str], None] | None) -> None:
    """Load `source` (it only changes the provider's state) on top of what the destination
    holds, under the run lock."""
    with writing(pipeline, wait, on_wait):
        reconcile_state(pipeline)
        pipeline.run(for_destination(source, pipeline),
                     loader_file_format=loader_file_format(pipeline))
        views_after_write(pipeline)


def track_jobs(name: str, ids: Sequence[str], destination: str | None = None,
               dataset: str | None = None, pipeline: dlt.Pipeline | None = None,
               wait: float = 0, on_wait: Callable[[str], None] | None = None) -> TrackResult:
    provider = polled_provider(name)
    unique = _unique_refs(provider, ids, "nothing was registered")
    with collecting(name) as stats:
        _load_locked(pipeline or make_pipeline(destination, dataset),
                     registration_source(provider, unique), wait, on_wait)
    return TrackResult(name, len(unique), stats.counts[Count.REGISTERED])


def untrack_jobs(name: str, ids: Sequence[str], destination: str | None = None,
                 dataset: str | None = None, pipeline: dlt.Pipeline | None = None,
                 wait: float = 0, on_wait: Callable[[str], None] | None = None
                 ) -> dict[str, list[str]]:
    """Stop following jobs (their history stays; `upload_jobs.untracked_at` says when):
    the ids by outcome (`untracked`, `not followed`, `already finished`, `already
    untracked`). Nothing changes when any id is invalid."""
    provider = polled_provider(name)
    unique = _unique_refs(provider, ids, "nothing was untracked")
    outcomes: dict[str, list[str]] = {}
    with collecting(name):
        _load_locked(pipeline or make_pipeline(destination, dataset),
                     untrack_source(provider, unique, outcomes), wait, on_wait)
    return outcomes
