"""The dlt resources of a polled provider, the same four for every one:

- `<provider>_jobs` (not loaded): the jobs to look at this run, as "sightings": ids from config,
  registered jobs from source state that are not finished, and whatever the provider discovers
  (a history listing, say);
- `<provider>_tracked_jobs`: one row per job the first time it is followed, and by what;
- the provider's jobs table: every field of the latest status answer of each polled job,
  merged on `job_ref`; the same resource writes `<provider>_status_history`, one row per
  observed status change (a table variant: the rows come from the answers it reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

import dlt
from dlt.common.typing import TDataItems
from dlt.extract.hints import make_nested_hints
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient

from sources.common.arrow_items import history_arrow
from sources.common.bad_input import (
    TolerantClient,
    as_rejects,
    page_not_read,
    record_not_read,
    routed,
)
from sources.common.config_checks import (
    NotConfigured,
    bounds_for,
    checked_origin,
    checked_secret,
    unless_placeholder,
)
from sources.common.counts import Count
from sources.common.job_refs import JobRef
from sources.common.polled_provider import (
    POLL_COLUMNS,
    TRACKED_COLUMNS,
    UNTRACKED_COLUMNS,
    PolledProvider,
    untracked_table,
)
from sources.common.poller import DEFAULT_CONCURRENCY, Poller
from sources.common.session import counting_session
from sources.common.stats import current_stats
from sources.common.throttle import RateLimit
from sources.common.tracking import HISTORY_COLUMNS, StatusTracker, history_table

# sightings per feed page: bounds memory, keeps polled rows flowing to the loader, and gives the
# concurrent poller full waves (256 = 16 waves of the default 16 workers)
PAGE = 256

Sighting = dict[str, Any]
# provider-specific discovery: given the client, the tracker and the `sight` function, yields
# pages of sightings (a history listing attaches the event each job was seen in)
Discover = Callable[[RESTClient, StatusTracker, Callable[..., Sighting]], Iterator[list[Sighting]]]


def _chunks(items: Iterable[Any], size: int = PAGE) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class Feed:
    """The jobs one run registers and polls: configured ids, followed unfinished jobs (every
    followed job on a full refresh) and what `discover` finds; with no client it registers
    only (`track`)."""

    provider: PolledProvider
    tracker: StatusTracker
    refs: Sequence[JobRef]
    registered_by: str
    client: RESTClient | None = None
    full_refresh: bool = False
    discover: Discover | None = None
    # reject rows of pages the discovery could not read, loaded with the next sightings
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # jobs this run polls (or would)
    counted: set[str] = field(default_factory=set)  # untracked jobs counted in the summary

    def sight(self, ref: JobRef, by: str, poll: bool = True, **extra: Any) -> Sighting:
        """Register a sighting of `ref`; it is polled (once a run) when `poll`, the run has a
        client, the job is followed and unfinished and not waiting out a failure interval."""
        if by == "track" and self.tracker.is_untracked(ref.ref):
            extra["followed_again"] = True
        is_new = self.tracker.register(ref.ref, explicit=by == "track")
        untracked = self.tracker.is_untracked(ref.ref)
        if untracked and ref.ref not in self.counted:
            self.tracker.stats.counts[Count.UNTRACKED] += 1
            self.counted.add(ref.ref)
        poll = poll and self.client is not None and ref.ref not in self.seen and \
            not untracked and (self.full_refresh or not self.tracker.is_finished(ref.ref))
        if poll:
            self.seen.add(ref.ref)
            if not self.tracker.failing.is_due(f"job:{ref.ref}"):
                self.tracker.stats.counts[Count.BACKING_OFF] += 1
                poll = False
        if is_new:
            self.tracker.stats.counts[Count.REGISTERED] += 1
        return {"ref": ref, "job_ref": ref.ref, "tracked_id": ref.job_id, "scope_id": ref.scope_id,
                "kind": ref.kind, "registered_by": by, "is_new": is_new, "poll": poll, **extra}

    def sightings(self) -> Iterator[list[Sighting]]:
        # configured ids are registered first and polled in the followed jobs' order (least
        # recently polled first), so a budget shorter than the work reaches every job in turn
        for chunk in _chunks(self.refs):
            yield [self.sight(r, self.registered_by, poll=self.client is None) for r in chunk]
        if self.client is None:
            return
        tracker = self.tracker
        given = {r.ref: r for r in self.refs}
        followed = chain(tracker.unfinished(), given, stored_job_refs(self.provider)) \
            if self.full_refresh else tracker.unfinished()
        pending = (given.get(r) or self.provider.parse_ref(r) for r in followed)
        for chunk in _chunks(pending):
            yield [self.sight(r, "state") for r in chunk]
        if self.discover is not None:
            for page in self.discover(self.client, tracker, self.sight):
                yield page + self._unreadable()
            if self.unreadable:
                yield self._unreadable()

    def _unreadable(self) -> list[Sighting]:
        rows = [{"reject": r} for r in self.unreadable]
        self.unreadable.clear()
        return rows

    def resource(self) -> DltResource:
        @dlt.resource(name=f"{self.provider.name}_jobs", selected=False)
        def jobs() -> Iterator[list[Sighting]]:
            """Sightings: not loaded, read by the transformers."""
            yield from self.sightings()

        return jobs


def stored_job_refs(provider: PolledProvider) -> Iterator[str]:
    """Every job the destination holds a status of: the finished jobs a full refresh polls
    again (the state keeps them as digests, which cannot be listed)."""
    pipeline = dlt.current.pipeline()
    try:
        rows = pipeline.dataset()[provider.jobs_table].select("job_ref").fetchall()
    except Exception:  # nothing loaded yet: no table, or no dataset
        return
    yield from (ref for (ref,) in rows if ref)


def _tracked_jobs(provider: PolledProvider, feed: DltResource, tracker: StatusTracker
                  ) -> DltResource:
    @dlt.transformer(data_from=feed, name=f"{provider.name}_tracked_jobs",
                     primary_key="job_ref", write_disposition="merge", columns=TRACKED_COLUMNS)
    def tracked_jobs(sightings: TDataItems) -> Iterator[list[dict[str, Any]]]:
        """One row per job, written when it is first followed."""
        at = tracker.observed_at
        rows = [{k: s[k] for k in TRACKED_COLUMNS if k in s} | {"registered_at": at}
                for s in sightings if s.get("is_new") and s.get("job_ref")]
        if rows:
            yield rows

    return tracked_jobs


def polled_resources(
    provider: PolledProvider,
    secret: str,
    base_url: str,
    config_ids: Iterable[str],
    *,
    full_refresh: bool = False,
    discover: Discover | None = None,
    limit: RateLimit | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    ids_key: str = "",
) -> tuple[DltResource, ...]:
    """The feed, tracked-jobs, jobs and history resources of one polled provider.

    Configured ids that cannot be job ids are skipped and reported as configuration errors
    naming `ids_key` (the setting that holds them).
    """
    stats = current_stats(provider.name)
    if unless_placeholder(secret, provider.secret_env_key, stats.warnings) is None:
        raise NotConfigured([provider.secret_env_key])
    secret = checked_secret(secret, provider.secret_env_key)
    base_url = checked_origin(provider, base_url)
    bounds = bounds_for(provider)
    refs, bad = provider.split_refs(config_ids)
    if bad:  # the valid ones still load; the run ends with the configuration error (exit 2)
        stats.config_error(f"{bad} (skipped; fix them in the configuration)", ids_key)
    tracker = StatusTracker(provider, stats, compact_finished=True)
    unreadable: list[dict[str, Any]] = []
    client = TolerantClient(
        base_url=base_url, auth=provider.auth(secret),
        session=counting_session(stats, base_url, bounds, limit=limit),
        on_unreadable=lambda r, reason: unreadable.append(
            page_not_read(stats, r, reason, tracker.observed_at)),
        on_record_rejected=lambda r, record, reason: unreadable.append(
            record_not_read(stats, r, record, reason, tracker.observed_at)),
        max_pages=bounds.max_pages)
    feed = Feed(provider, tracker, refs, "config", client, full_refresh, discover,
                unreadable).resource()
    statuses = _job_statuses(provider, feed, Poller(provider, client, tracker, stats, bounds),
                             concurrency)
    return feed, _tracked_jobs(provider, feed, tracker), statuses


def _job_statuses(provider: PolledProvider, feed: DltResource, poller: Poller,
                  concurrency: int) -> DltResource:
    @dlt.transformer(data_from=feed, name=provider.jobs_table, primary_key="job_ref",
                     write_disposition="merge", columns={**POLL_COLUMNS, **provider.columns},
                     nested_hints={path: make_nested_hints(columns=columns)
                                   for path, columns in provider.nested_columns.items()})
    def job_statuses(sightings: TDataItems) -> Iterator[Any]:
        """The latest status answer of every job polled (unfinished ones only); answers that
        cannot be read go to the rejects table."""
        poller.rejects.extend(s["reject"] for s in sightings if s.get("reject"))
        refs = [s["ref"] for s in sightings if s.get("poll")]  # parsed once, when sighted
        rows = poller.poll_all(refs, concurrency)
        columns = {**POLL_COLUMNS, **provider.columns}
        tracker = poller.tracker
        if changes := tracker.take_changes(r["job_ref"] for r in rows):
            yield routed(history_table(provider), "change_key", HISTORY_COLUMNS,
                         history_arrow(changes), columns)
        tracker.save_if_changed()  # finished jobs as compact digests (`FinishedJobs`)
        if poller.rejects:
            yield as_rejects(provider.name, list(poller.rejects), columns)
            poller.rejects.clear()
        if (failing := poller.tracker.failing.take_rows(provider.name, columns)) is not None:
            yield failing
        if rows:
            yield rows

    return job_statuses


def registration_source(provider: PolledProvider, refs: Sequence[JobRef]) -> Any:
    """A source that only registers `refs` in the provider's state (as `track` does).

    It carries the provider's own name, so it writes the same source state and schema the
    provider's source reads; no credential is needed as nothing is requested.
    """

    @dlt.source(name=provider.name)
    def registrations() -> tuple[DltResource, ...]:
        tracker = StatusTracker(provider, current_stats(provider.name), compact_finished=True)
        feed = Feed(provider, tracker, refs, "track").resource()
        return feed, _tracked_jobs(provider, feed, tracker), _followed_again(provider, feed)

    return registrations()


_UNTRACKED_HINTS: dict[str, Any] = {
    "primary_key": "job_ref", "columns": UNTRACKED_COLUMNS,
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"}}


def _followed_again(provider: PolledProvider, feed: DltResource) -> DltResource:
    @dlt.transformer(data_from=feed, name=untracked_table(provider), **_UNTRACKED_HINTS)
    def followed_again(sightings: TDataItems) -> Iterator[list[dict[str, Any]]]:
        """Jobs `track` follows again after an untrack: their untracked row is deleted."""
        rows = [{"job_ref": s["job_ref"], "followed_again": True}
                for s in sightings if s.get("followed_again")]
        if rows:
            yield rows

    return followed_again


def untrack_source(provider: PolledProvider, refs: Sequence[JobRef],
                   outcomes: dict[str, list[str]]) -> Any:
    """A source that stops following `refs` (their history stays) and records when in the
    untracked table; `outcomes` gets each ref's `StatusTracker.untrack` answer, by answer."""

    @dlt.source(name=provider.name)
    def untracking() -> DltResource:
        tracker = StatusTracker(provider, current_stats(provider.name), compact_finished=True)

        @dlt.resource(name=untracked_table(provider), **_UNTRACKED_HINTS)
        def untracked_jobs() -> Iterator[list[dict[str, Any]]]:
            rows = []
            for ref in refs:
                outcome = tracker.untrack(ref.ref)
                outcomes.setdefault(outcome, []).append(ref.job_id)
                if outcome == "untracked":
                    rows.append({"job_ref": ref.ref, "tracked_id": ref.job_id,
                                 "scope_id": ref.scope_id, "untracked_at": tracker.observed_at,
                                 "followed_again": False})
            if rows:
                yield rows
            if (failing := tracker.failing.take_rows(provider.name, UNTRACKED_COLUMNS)
                    ) is not None:
                yield failing

        return untracked_jobs

    return untracking()
