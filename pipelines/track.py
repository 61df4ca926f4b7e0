"""`upload-status track`: register jobs to follow, durably (in the pipeline state that dlt keeps
in the destination)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dlt

from pipelines.destination import loader_file_format, make_pipeline, writing
from pipelines.lakehouse import for_destination
from pipelines.reconcile import reconcile_state
from pipelines.usage import UsageError
from sources import providers
from sources.common.counts import Count
from sources.common.polled_provider import PolledProvider
from sources.common.polled_resources import registration_source
from sources.common.stats import collecting


@dataclass
class TrackResult:
    provider: str
    given: int
    registered: int  # newly followed
    invalid: str = ""  # the ids that were not registered, and why

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
    if column is None:
        return [line for line in text.splitlines() if line.strip()]
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


def track_jobs(name: str, ids: Sequence[str], destination: str | None = None,
               dataset: str | None = None, pipeline: dlt.Pipeline | None = None,
               wait: float = 0, on_wait: Callable[[str], None] | None = None) -> TrackResult:
    provider = polled_provider(name)
    if not ids:
        raise UsageError("no ids given: pass them as arguments or with --from-file")
    refs, invalid = provider.split_refs(ids)
    if not refs:
        raise UsageError(invalid)
    unique = list({r.ref: r for r in refs}.values())
    pipeline = pipeline or make_pipeline(destination, dataset)
    with writing(pipeline, wait, on_wait), collecting(name) as stats:
        reconcile_state(pipeline)  # register on top of what the destination holds
        pipeline.run(for_destination(registration_source(provider, unique), pipeline),
                     loader_file_format=loader_file_format(pipeline))
    return TrackResult(name, len(unique), stats.counts[Count.REGISTERED], invalid)
