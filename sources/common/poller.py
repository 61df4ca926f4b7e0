"""The concurrent status poller: one request per job, answers read in order into rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.utils import join_url

from sources.common import responses
from sources.common.bad_input import count_misfits, reject, reject_response
from sources.common.columns import ColumnBudget
from sources.common.config_checks import MAX_STATUS_LENGTH, Bounds
from sources.common.counts import Count
from sources.common.http_actions import BODY, FAIL, RETRY
from sources.common.http_actions import NOT_FOUND as GONE
from sources.common.http_guard import AnswerRefused, ForeignOrigin, RunDeadlinePassed
from sources.common.job_refs import JobRef
from sources.common.polled_provider import Observation, PolledProvider
from sources.common.redaction import redact
from sources.common.scopes import Scope, mark
from sources.common.stats import ProviderStats
from sources.common.status import NOT_FOUND, PENDING
from sources.common.tracking import StatusTracker

DEFAULT_CONCURRENCY = 16
# failing answers in a row (server errors, refusals, no answer) that mean the API is down rather
# than one job being bad: polling stops there and the jobs not polled wait for the next run
OUTAGE_STREAK = 5

class NotSent(requests.RequestException):
    """A request not sent: the answers arriving just before all failed (an outage); the job
    waits for the next run."""


Answer = requests.Response | requests.RequestException  # a response, or why none came


class Poller:
    """Asks for one job's status and turns the answer into a row, counting what happened.

    A job whose request fails (a 5xx or 401/403 after dlt's retries, no answer at all) fails on
    its own when other jobs of the run answer: a reject row and an error line name it, it is
    polled again next run (with a growing interval once it failed `FREE_RETRIES` runs in a row,
    `failing_units`). `OUTAGE_STREAK` such failures in a row end the polling of this run: when
    nothing answered at all the provider failed (`ProviderStats.down`), else it partly failed.
    At most `max_polls_per_run` jobs are polled, and none after the run deadline: the rest wait
    for the next run, which polls the least recently polled first.
    """

    def __init__(self, provider: PolledProvider, client: RESTClient, tracker: StatusTracker,
                 stats: ProviderStats, bounds: Bounds) -> None:
        self.provider = provider
        self.client = client
        self.tracker = tracker
        self.stats = stats
        self.columns = ColumnBudget(provider.jobs_table, bounds.max_columns,
                                    provider.env_key("max_columns"))
        self.rejects: list[dict[str, Any]] = []  # answers kept verbatim, loaded by the caller
        self.budget = bounds.max_polls_per_run
        self._streak: list[tuple[JobRef, Answer, str]] = []  # failures since the last answer
        self.stopped: str | None = None  # why no further job is polled this run
        self._budget_spent = False
        self._refused = 0  # 429s in a row
        self._failing_now = 0  # failures in a row as answers arrive, on any thread
        self._warned_status = False  # the missing-status-field warning, once a run
        self._template = client.session.prepare_request(requests.Request(
            "GET", client.base_url, headers=client.headers, auth=client.auth))

    @property
    def polled_at(self) -> Any:
        return self.tracker.observed_at  # read at extraction, when the state is the run's

    def _job_error(self, ref: JobRef, answer: Answer, message: str) -> None:
        # the job stays unfinished and is polled again next run; the others go on
        self.stats.counts[Count.POLL_ERRORS] += 1
        message = redact(message)
        self.stats.unit_failed(f"job {ref.ref}: {message}")
        if isinstance(answer, requests.Response):
            self.rejects.append(reject_response(self.stats, answer, message, ref.ref,
                                                self.polled_at))
        else:
            path = self.provider.status_request(ref)[0]
            self.rejects.append(reject(self.stats, message, "", path, None, ref.ref,
                                       self.polled_at))
        self.tracker.failing.failed("job", ref.ref, message, ref.scope_id)

    def fetch(self, ref: JobRef) -> Answer:
        """One status request (thread-safe: the session, its retries and rate limit are).

        Sent through the client's session (dlt's retries, the rate limit, the counting) as a
        copy of one prepared request with only the URL changed: a provider's polls differ in
        nothing else, and preparing each anew (settings, headers, auth) costs CPU."""
        if self._failing_now >= OUTAGE_STREAK:  # answers failing as they come: not sent
            return NotSent()
        path, params = self.provider.status_request(ref)
        request = mark(self._template.copy(), Scope(ref.scope_id, "status")
                       if ref.scope_id else None)
        url = join_url(self.client.base_url, path)
        request.url = f"{url}?{urlencode(params)}" if params else url
        try:
            answer: Answer = self.client.session.send(request)
        except AnswerRefused as exc:  # over a bound: this job's answer is rejected, not retried
            answer = exc.marked_response()
        except (ForeignOrigin, requests.TooManyRedirects):
            raise  # the configured origin is wrong: the provider fails
        except requests.RequestException as exc:  # no answer after dlt's retries, the deadline
            answer = exc
        # in the order answers come (threads): bounds what an outage costs before it is read
        self._failing_now = self._failing_now + 1 if self._failure(answer) else 0
        return answer

    def poll_all(self, refs: Sequence[JobRef], concurrency: int) -> list[dict[str, Any]]:
        """Rows of every job in `refs` that answered; requests run `concurrency` at a time
        (inside the provider's rate limit), answers are read here, in order."""
        rows = self._poll(self._within_budget(refs), concurrency)
        if self.stats.answered:  # siblings answered: the failures so far were the jobs' own
            self._settle()
        return rows

    def _poll(self, refs: Sequence[JobRef], concurrency: int) -> list[dict[str, Any]]:
        if concurrency <= 1 or len(refs) <= 1:
            return self._read_all(refs, (self.fetch(ref) for ref in refs))
        pool = ThreadPoolExecutor(max_workers=min(concurrency, len(refs)),
                                  thread_name_prefix=f"poll-{self.provider.name}")
        futures = [pool.submit(self.fetch, ref) for ref in refs]
        interrupted = False
        try:
            return self._read_all(refs, (f.result() for f in futures))
        except KeyboardInterrupt:  # a stopping run does not wait for requests in flight
            interrupted = True
            raise
        finally:  # once polling stopped, the requests not started are dropped
            pool.shutdown(wait=not interrupted, cancel_futures=True)

    def _within_budget(self, refs: Sequence[JobRef]) -> Sequence[JobRef]:
        if self.stopped is not None:
            self._wait(len(refs))
            return []
        if len(refs) > self.budget:
            self._wait(len(refs) - self.budget)
            refs = refs[:self.budget]
            if not self._budget_spent:
                self._budget_spent = True
                self._warn_stop(f"{self.provider.env_key('max_polls_per_run')} reached")
        self.budget -= len(refs)
        return refs

    def _stop(self, reason: str) -> None:
        """No further job is polled this run, by design (a deadline): the rest wait."""
        self.stopped = reason
        self._warn_stop(reason)

    def _warn_stop(self, reason: str) -> None:
        self.stats.warnings.append(f"{self.provider.name}: polling stopped, {reason}; the jobs "
                                   "not polled wait for the next run, least recently polled "
                                   "first")

    def _wait(self, jobs: int) -> None:
        if jobs:
            self.stats.counts[Count.WAITING] += jobs

    def _read_all(self, refs: Sequence[JobRef], answers: Iterable[Answer]
                  ) -> list[dict[str, Any]]:
        rows = []
        for i, (ref, answer) in enumerate(zip(refs, answers, strict=False)):
            if self._stops(answer):
                if self.stopped is not None:
                    self._wait(len(refs) - i)
                    break
                self._wait(1)
                continue
            self.tracker.to_back(ref.ref)
            if (failure := self._failure(answer)) is not None:
                self._failed(ref, answer, failure)
                if self.stopped is not None:
                    self._wait(len(refs) - i - 1)
                    break
                continue
            self._answered()
            if (row := self.read(ref, answer)) is not None:
                self.tracker.failing.ended("job", ref.ref, "answered")
                rows.append(row)
        return rows

    def _stops(self, answer: Answer) -> bool:
        """True if this job is not read (it waits for the next run), and after it none."""
        if self.stopped is not None or isinstance(answer, NotSent):
            return True
        if isinstance(answer, RunDeadlinePassed):
            self._stop(f"{answer} ({self.provider.env_key('run_deadline_seconds')})")
            return True
        if isinstance(answer, requests.Response) and \
                self.provider.codes.of(answer.status_code) == RETRY:
            # the provider's limit, not the job's fault: it waits; a run of them ends polling
            self._refused += 1
            if self._refused >= OUTAGE_STREAK:
                why = "too many requests" if answer.status_code == 429 else "retry later"
                self.stopped = (f"{OUTAGE_STREAK} jobs in a row answered "
                                f"{answer.status_code} ({why}) after retries")
                self.stats.failed_parts.append(f"{self.stopped}; the jobs not polled wait "
                                               "for the next run")
            return True
        self._refused = 0
        return False

    def _failure(self, answer: Answer) -> str | None:
        """Why the request got no answer about its job (None: it got one)."""
        if isinstance(answer, requests.RequestException):
            return f"no answer ({type(answer).__name__}: {str(answer)[:200]})"
        code = answer.status_code
        if self.provider.codes.of(code) == FAIL:
            return f"HTTP {code}: {answer.text[:200].strip()}"
        return None

    def _failed(self, ref: JobRef, answer: Answer, reason: str) -> None:
        self.stats.counts[Count.POLLED] += 1
        self._streak.append((ref, answer, reason))
        if self._known_poison():  # failed alone before: it fails alone again
            self._settle()
            return
        if not self.stats.answered and self.stats.down is None:
            self.stats.down = _as_exception(answer)
        if len(self._streak) >= OUTAGE_STREAK:  # the API is down, not these jobs
            self.stopped = f"{OUTAGE_STREAK} jobs in a row got no answer ({reason})"
            if self.stats.answered:
                self.stats.failed_parts.append(
                    f"the API stopped answering after {self.stats.answered} jobs answered: "
                    f"{self.stopped}; the jobs not polled wait for the next run")
            self._wait(len(self._streak))
            self._streak.clear()

    def _known_poison(self) -> bool:
        """True if every failure of the streak is a job that failed alone in an earlier run
        (its siblings answered then): the last jobs left may all be such, with none to compare."""
        failing = self.tracker.failing
        return all(f"job:{ref.ref}" in failing for ref, _, _ in self._streak)

    def _answered(self) -> None:
        self.stats.answered += 1
        self.stats.down = None

    def _settle(self) -> None:
        for ref, answer, reason in self._streak:
            self._job_error(ref, answer, reason)
        self._streak.clear()

    def read(self, ref: JobRef, response: requests.Response) -> dict[str, Any] | None:
        """The row one status answer gives, None if it gives none (the job stays unfinished)."""
        code = response.status_code
        self.stats.counts[Count.POLLED] += 1
        if (refusal := getattr(response, "refusal", None)) is not None:
            self._job_error(ref, response, f"HTTP {code}: {refusal}" if code else refusal)
            return None
        action = self.provider.codes.of(code)
        if action not in (BODY, GONE):
            self._job_error(ref, response, f"HTTP {code}: {response.text[:200].strip()}")
            return None
        try:
            answer = responses.body(response)
        except ValueError as exc:
            if action == GONE:  # gone whatever the body says
                answer = {}
            else:
                reason = responses.reason_not_read(exc, "a body that is not JSON")
                self._job_error(ref, response, f"HTTP {code} with {reason}")
                return None
        observation = self.provider.read(ref, code, answer)
        if observation.lacks_status:
            self._lacks_status(ref, response)
            return None
        if observation.status == NOT_FOUND and self.tracker.not_due(ref.ref):
            observation = not_yet_created(observation)
        native = observation.native_status
        if native is not None and len(native) > MAX_STATUS_LENGTH:
            self._job_error(ref, response, f"HTTP {code} with a status of {len(native)} "
                            f"characters (over {MAX_STATUS_LENGTH})")
            return None
        if (over := self.columns.admit(observation.record)) is not None:
            self._job_error(ref, response, f"HTTP {code}: {over}")
            return None
        count_misfits(self.stats, observation.record, self.provider.columns)
        self.tracker.observe(ref.job_id, observation.native_status, ref.scope_id,
                             observation.status, ref.ref)
        return {**observation.record, "polled_at": self.polled_at}

    def _lacks_status(self, ref: JobRef, response: requests.Response) -> None:
        """A status answer without the declared status field: a reject row, and a warning
        naming the field (a misspelled path would otherwise leave every job `unknown`)."""
        path = self.provider.status_field
        reason = f"HTTP {response.status_code} without the status field {path!r}"
        self.rejects.append(reject_response(self.stats, response, reason, ref.ref,
                                            self.polled_at))
        with self.stats.lock:
            warned, self._warned_status = self._warned_status, True
        if not warned:
            self.stats.warnings.append(
                f"{self.provider.name}: a status answer has no field {path!r} (the declared "
                "status path); such answers are kept as rejects and their jobs polled again "
                "next run: check the answer in the rejects table against the declaration")


def not_yet_created(observation: Observation) -> Observation:
    """A "not found" for a job scheduled later: pending until its time (a scheduled post is
    created when it runs)."""
    record = {**observation.record, "canonical_status": PENDING, "is_terminal": False,
              "status_override": PENDING}
    return Observation(observation.native_status, PENDING, record)


def _as_exception(answer: Answer) -> BaseException:
    """The failure as the error a raising client gives (for the provider's error line)."""
    if isinstance(answer, requests.Response):
        return requests.HTTPError(f"HTTP {answer.status_code}", response=answer)
    return answer
