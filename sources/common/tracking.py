"""Job status change detection and job registrations, backed by dlt source state.

Per job reference the source state's `jobs` holds `None` (registered, never observed yet) or
the index of its last observation, a `[native_status, canonical_status]` pair, in the state's
`job_statuses` list (a few distinct pairs per provider). A dict of strings to small ints is
about half the memory of one holding a list per job, and Python's garbage collector does not
track it, so its full collections do not walk every job ever seen. dlt commits that state in
the same load package as the data and restores it from the destination when the local pipeline
folder is gone, so registrations and the "already finished" knowledge survive a wiped folder. A
job whose status pair differs from the remembered one (or that is new) yields one history row.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, NamedTuple

import dlt
import pendulum
from dlt.common.schema.typing import TTableSchemaColumns

from sources.common.counts import Count
from sources.common.failing_units import FailingUnits
from sources.common.finished_jobs import FinishedJobs
from sources.common.provider import Provider
from sources.common.stats import ProviderStats
from sources.common.status import TERMINAL

# one row per observed status change, the same shape for every provider
HISTORY_COLUMNS: TTableSchemaColumns = {
    # one observation of one job, unique (also its `_dlt_id`): the rows of a load package
    # loaded twice after a crash are found by it
    "change_key": {"data_type": "text", "nullable": False},
    "provider": {"data_type": "text", "nullable": False},
    "job_id": {"data_type": "text", "nullable": False},
    "job_ref": {"data_type": "text"},
    "scope_id": {"data_type": "text"},
    "native_status": {"data_type": "text"},
    "status": {"data_type": "text", "nullable": False},
    # set only where the canonical status is not the status map's word for the native one
    # (partial, a 404): the views map native statuses through the map and keep these as they are
    "status_override": {"data_type": "text"},
    "previous_native_status": {"data_type": "text"},
    "observed_at": {"data_type": "timestamp", "nullable": False},
}

HISTORY_FIELDS = tuple(HISTORY_COLUMNS)
# one history row: its values in HISTORY_FIELDS order
HistoryRow = tuple[str, str, str, str, str | None, str | None, str, str | None, str | None,
                   datetime]

# merged on change_key, so a status change is one row whatever loads it again (a resumed or
# replayed package): dlt's delete-insert deduplicates the staging rows by the key and replaces
# what the table holds.
HISTORY_HINTS: dict[str, Any] = {
    "columns": HISTORY_COLUMNS, "primary_key": "change_key",
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"}}


_ABSENT = object()  # a job the state's `jobs` does not hold


class Observed(list[dict[str, Any]]):
    """Records handed down dlt's pipe with the history rows of the status changes observing
    them made (`history`), so the resource loading the records loads those rows too."""

    history: list[HistoryRow]

    def __init__(self, records: Iterable[dict[str, Any]] = (),
                 history: list[HistoryRow] | None = None) -> None:
        super().__init__(records)
        self.history = history or []


class Sightings(NamedTuple):
    """What `StatusTracker.observe_many` found in a page of sightings, as positions in it."""

    changed: list[int]  # status new or changed: a history row waits in `changes`
    known: list[int]  # the job had a status before (in a first run: seen earlier this run)


_clock: ContextVar[pendulum.DateTime | None] = ContextVar("upload_status_clock", default=None)


@contextmanager
def observing_at(moment: pendulum.DateTime) -> Iterator[None]:
    """Stamp observations made inside with `moment` instead of the wall clock: for replaying
    a recorded period (the demo's month) with believable first-seen and finished times."""
    token = _clock.set(moment)
    try:
        yield
    finally:
        _clock.reset(token)


def observation_time() -> pendulum.DateTime:
    return _clock.get() or pendulum.now("UTC")


def history_table(provider: Provider) -> str:
    return f"{provider.name}_status_history"


class StatusTracker:
    """What a source knows of its jobs' statuses (see the module docstring).

    With `compact_finished`, finished jobs leave `jobs` for the state's `finished_jobs`
    (`FinishedJobs`: 10 bytes a job instead of about 100, but their references cannot be listed
    again, so `followed` is not available); the source then calls `save` once it has made its
    last observation of the run.
    """

    def __init__(self, provider: Provider, stats: ProviderStats,
                 observed_at: datetime | None = None,
                 compact_finished: bool = False) -> None:
        self.provider = provider
        self.compact_finished = compact_finished
        self.stats = stats
        # a stdlib datetime: Arrow converts it faster than pendulum's, and every history row and
        # listing record carries it
        self._observed_at = datetime.fromisoformat(
            (observed_at or observation_time()).astimezone(timezone.utc).isoformat())
        # job ref -> history row not yet loaded: taken by the history resource, so a run
        # holds only the rows of the page in flight, not one per change of the whole run
        self.changes: dict[str, HistoryRow] = {}
        # earlier rows of a job that changed again before its row was taken (rare: a job
        # named twice in one run), so no change is lost
        self._earlier: dict[str, list[HistoryRow]] = {}
        self._state_jobs: dict[str, int | None] | None = None
        self._state: dict[str, Any] = {}  # the source state, once `_jobs` has read it
        self._pairs: list[list[str | None]] = []  # the state's job_statuses
        self._codes: dict[tuple[str | None, str], int] = {}  # pair -> its index there
        self._overrides: dict[int, str | None] = {}  # pair index -> its status_override
        self._finished: FinishedJobs | None = None
        self._failing: FailingUnits | None = None
        # change_key: this tracker's random prefix and the count of its changes so far, unique
        # without hashing each row (a job seen A, B, A in one run gets two keys); the key is
        # written once into the load package, so loading that package again repeats it
        self._key_prefix = secrets.token_hex(8)
        self._recorded = 0

    def _jobs(self) -> dict[str, int | None]:
        # looked up once: dlt's source_state() costs ~50 us a call, and a run asks per job
        if self._state_jobs is None:
            state = self._state = dlt.current.source_state()
            jobs = state.setdefault("jobs", {})
            self._pairs = state.setdefault("job_statuses", [])
            if jobs and not self._pairs:
                _from_lists(jobs, self._pairs)
            self._codes = {(native, status): i for i, (native, status) in enumerate(self._pairs)}
            if self.compact_finished:
                self._finished = FinishedJobs(state.get("finished_jobs"))
                moved = 0
                for job_ref, code in list(jobs.items()):  # kept there before compact_finished
                    if code is not None and self._pairs[code][1] in TERMINAL:
                        self._finished.add(job_ref, code)
                        del jobs[job_ref]
                        moved += 1
                if moved:  # stored at once: a run that observes nothing must not lose them
                    self.save()
            self._state_jobs = jobs
        return self._state_jobs

    @property
    def observed_at(self) -> datetime:
        """When this run observes: its own clock's time (a stored observation later than it
        is capped before the run, `pipelines.run.clock`). Read it during extraction only."""
        self._jobs()
        return self._observed_at

    @property
    def failing(self) -> FailingUnits:
        """The provider's units failing on their own (`failing_units`)."""
        if self._failing is None:
            self._jobs()
            self._failing = FailingUnits(self._state, self._observed_at)
        return self._failing

    def expect_at(self, job_ref: str, when: datetime) -> None:
        """The job is not due before `when` (a scheduled post): until then a "not found"
        answer means "not created yet", and the job stays pending."""
        self._jobs()
        self._state.setdefault("not_before", {})[job_ref] = when.isoformat()

    def not_due(self, job_ref: str) -> bool:
        """True while the job is expected later than this run's observation time."""
        self._jobs()
        when = (self._state.get("not_before") or {}).get(job_ref)
        return when is not None and datetime.fromisoformat(when) > self._observed_at

    def to_back(self, job_ref: str) -> None:
        """Move a followed job to the end of the polling order: `unfinished` yields the least
        recently polled first, so a run whose budget ends early leaves the rest for the next
        one. Polling every job in that order leaves the order (and the state) as it was."""
        jobs = self._jobs()
        if job_ref in jobs:
            jobs[job_ref] = jobs.pop(job_ref)

    def _last_code(self, job_ref: str) -> int | None:
        jobs = self._jobs()
        code = jobs.get(job_ref)
        if code is None and self._finished is not None and job_ref not in jobs:
            code = self._finished.get(job_ref)
        return code

    def _last(self, job_ref: str) -> list[str | None] | None:
        """The last observation of a job as `[native, canonical]`, None if never observed."""
        code = self._last_code(job_ref)
        return None if code is None else self._pairs[code]

    def save(self) -> None:
        """Write the finished jobs of a compact tracker to the source state (a no-op else)."""
        if self._finished is not None:
            self._state["finished_jobs"] = self._finished.stored()

    def save_if_changed(self) -> None:
        """`save`, when jobs finished (or finished ones came back) since it was last called."""
        if self._finished is not None and self._finished.changed:
            self.save()

    def _code(self, native: str | None, status: str) -> int:
        code = self._codes.get((native, status))
        if code is None:
            code = self._codes[(native, status)] = len(self._pairs)
            self._pairs.append([native, status])
        if code not in self._overrides:
            self._overrides[code] = self.provider.override(native, status)
        return code

    def is_known(self, job_ref: str) -> bool:
        return job_ref in self._jobs() or (
            self._finished is not None and self._finished.get(job_ref) is not None)

    def is_finished(self, job_ref: str) -> bool:
        last = self._last(job_ref)
        return last is not None and last[1] in TERMINAL

    def register(self, job_ref: str, explicit: bool = False) -> bool:
        """Follow a job from now on; False if it was already followed, or was untracked and
        this is not an `explicit` registration (`track` follows it again)."""
        untracked = self._untracked()
        if job_ref in untracked:
            if not explicit:
                return False
            del untracked[job_ref]
        if self.is_known(job_ref):
            return False
        self._jobs()[job_ref] = None
        return True

    def _untracked(self) -> dict[str, str]:
        """job ref -> when it was untracked (the state's `untracked`, made on first use)."""
        self._jobs()
        return self._state.get("untracked", {})

    def is_untracked(self, job_ref: str) -> bool:
        return job_ref in self._untracked()

    def untrack(self, job_ref: str) -> str:
        """Stop following a job (its history stays): `untracked`, or why not (`not followed`,
        `already finished`, `already untracked`)."""
        if self.is_untracked(job_ref):
            return "already untracked"
        if not self.is_known(job_ref):
            return "not followed"
        if self.is_finished(job_ref):
            return "already finished"
        self._jobs().pop(job_ref, None)
        self._state.setdefault("untracked", {})[job_ref] = self.observed_at.isoformat()
        self.failing.ended("job", job_ref, "untracked")
        return "untracked"

    def unfinished(self) -> Iterator[str]:
        """Every followed job that is not known to be terminal, least recently polled first
        (`to_back`; registration order among those never polled)."""
        jobs = self._jobs()  # first: it reads the pairs from the state
        unfinished = {i for i, (_, status) in enumerate(self._pairs) if status not in TERMINAL}
        for job_ref, code in list(jobs.items()):
            if code is None or code in unfinished:
                yield job_ref

    def followed(self) -> Iterator[str]:
        if self.compact_finished:
            raise TypeError("a compact tracker cannot list its finished jobs")
        yield from list(self._jobs())

    def observe(self, job_id: str, native_status: Any, scope_id: str | None = None,
                status: str | None = None, job_ref: str | None = None
                ) -> dict[str, Any] | None:
        """Record one sighting; return the history row if the status is new or changed.

        `status` is the canonical status when it depends on more than the native one (e.g. a
        finished request with some failed parts is `partial`).
        """
        status = status or self.provider.canonical(native_status)
        native = native_status if native_status is None else str(native_status)
        self._jobs()
        _, rows = self._apply([job_id], [job_ref or job_id], [scope_id],
                              [self._code(native, status)])
        return dict(zip(HISTORY_FIELDS, rows[0], strict=True)) if rows else None

    def observe_many(self, job_ids: Sequence[str], native_statuses: Sequence[Any],
                     scope_ids: Sequence[str | None]) -> Sightings:
        """`observe` for a page of sightings (job_id = job_ref): which positions have a status
        that is new or changed (their history rows waiting in `changes` as `observe`'s do) and
        which name a job observed before. Native statuses are mapped once per distinct value."""
        self._jobs()
        mapped: dict[str, int] = {}  # native status -> its pair's index
        codes = []
        for native in native_statuses:
            code = mapped.get(native) if type(native) is str else None
            if code is None:
                code = self._code(None if native is None else str(native),
                                  self.provider.canonical(native))
                if type(native) is str:
                    mapped[native] = code
            codes.append(code)
        if len(set(job_ids)) == len(job_ids):
            return self._apply(job_ids, job_ids, scope_ids, codes)[0]
        changed, known = [], []  # one job twice: each sighting sees the one before
        for i, (job_id, scope_id, code) in enumerate(zip(job_ids, scope_ids, codes,
                                                         strict=True)):
            one = self._apply([job_id], [job_id], [scope_id], [code])[0]
            changed += [i] if one.changed else []
            known += [i] if one.known else []
        return Sightings(changed, known)

    def _apply(self, job_ids: Sequence[str], job_refs: Sequence[str],
               scope_ids: Sequence[str | None], codes: Sequence[int]
               ) -> tuple[Sightings, list[HistoryRow]]:
        """The status-change rule, the one place it is: a job whose status pair differs from
        the last one remembered (or that has none) gets a history row. Distinct `job_refs`;
        finished jobs are looked up in one search (`FinishedJobs.get_many`)."""
        jobs = self._jobs()
        befores = [jobs.get(job_ref, _ABSENT) for job_ref in job_refs]
        absent = [i for i, before in enumerate(befores) if before is _ABSENT]
        if absent:
            found = (self._finished.get_many([job_refs[i] for i in absent])
                     if self._finished is not None else [None] * len(absent))
            for i, before in zip(absent, found, strict=True):
                befores[i] = before
        counts = self.stats.counts
        counts[Count.JOBS_SEEN] += len(job_refs)
        unfinished = {code for code, (_, status) in enumerate(self._pairs)
                      if status not in TERMINAL}
        counts[Count.UNFINISHED] += sum(code in unfinished for code in codes)
        changed = [i for i, (code, before) in enumerate(zip(codes, befores, strict=True))
                   if code != before]
        new = sum(befores[i] is None for i in changed)
        rows = [self._record(job_ids[i], job_refs[i], scope_ids[i], codes[i], befores[i])
                for i in changed]
        if new:
            counts[Count.NEW] += new
        if len(changed) > new:
            counts[Count.CHANGED] += len(changed) - new
        return Sightings(changed, [i for i, before in enumerate(befores)
                                   if before is not None]), rows

    def _record(self, job_id: str, job_ref: str, scope_id: str | None, code: int,
                before: int | None) -> HistoryRow:
        """Remember a job's new status pair `code` (it was `before`) and its history row."""
        native, status = self._pairs[code]
        previous = None if before is None else self._pairs[before]
        jobs = self._state_jobs
        assert jobs is not None
        if status in TERMINAL and job_ref in (self._state.get("not_before") or {}):
            del self._state["not_before"][job_ref]
        if self._finished is None:
            jobs[job_ref] = code
        elif status in TERMINAL:
            jobs.pop(job_ref, None)
            self._finished.add(job_ref, code)
        else:
            if before is not None and job_ref not in jobs:  # finished before: not any more
                self._finished.drop(job_ref)
            jobs[job_ref] = code
        if not self._recorded:  # stored with the first change: a run without one leaves the
            self._state["observed_until"] = self._observed_at.isoformat()  # state (no load)
        self._recorded += 1
        # in HISTORY_FIELDS order: a tuple, far cheaper than a dict per change
        row = (f"{self._key_prefix}{self._recorded:08x}", self.provider.name, job_id,
               job_ref, scope_id, native, status, self._overrides[code],
               None if previous is None else previous[0], self._observed_at)
        if job_ref in self.changes:
            self._earlier.setdefault(job_ref, []).append(self.changes[job_ref])
        self.changes[job_ref] = row
        return row

    def take_changes(self, job_refs: Iterable[str]) -> list[HistoryRow]:
        """The history rows of `job_refs` that changed, handed over once, in order."""
        rows = []
        for ref in job_refs:
            row = self.changes.pop(ref, None)
            if row is not None:
                if self._earlier:
                    rows.extend(self._earlier.pop(ref, ()))
                rows.append(row)
        return rows


def forget_statuses(source_state: dict[str, Any]) -> int:
    """Forget every job's last status (the jobs stay followed): each is observed as new on the
    next sighting, and gets a history row again. For a history table lost at the destination.
    Returns how many jobs were forgotten."""
    jobs = source_state.get("jobs") or {}
    finished = FinishedJobs(source_state.get("finished_jobs"))
    for job_ref in jobs:
        jobs[job_ref] = None
    source_state.pop("finished_jobs", None)  # listed again by a full refresh
    return len(jobs) + len(finished)


def _from_lists(jobs: dict[str, Any], pairs: list[list[str | None]]) -> None:
    """Rewrite a state written before `job_statuses` (a `[native, canonical]` list per job)."""
    codes: dict[tuple[str | None, str], int] = {}
    for job_ref, last in jobs.items():
        if last is not None:
            pair = (last[0], last[1])
            if pair not in codes:
                codes[pair] = len(pairs)
                pairs.append(list(pair))
            jobs[job_ref] = codes[pair]
