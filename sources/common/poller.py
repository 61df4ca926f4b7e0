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
from sources.common.bad_input import count_misfits, reject_response
from sources.common.columns import ColumnBudget
from sources.common.config_checks import MAX_STATUS_LENGTH, Bounds
from sources.common.counts import Count
from sources.common.http_guard import AnswerRefused
from sources.common.job_refs import JobRef
from sources.common.polled_provider import PolledProvider
from sources.common.redaction import redact
from sources.common.stats import ProviderStats
from sources.common.tracking import StatusTracker

DEFAULT_CONCURRENCY = 16
_MAX_ERROR_LINES = 20  # per-job error lines kept for the summary; the count is always exact


class Poller:
    """Asks for one job's status and turns the answer into a row, counting what happened."""

    def __init__(self, provider: PolledProvider, client: RESTClient, tracker: StatusTracker,
                 stats: ProviderStats, bounds: Bounds) -> None:
        self.provider = provider
        self.client = client
        self.tracker = tracker
        self.stats = stats
        self.columns = ColumnBudget(provider.jobs_table, bounds.max_columns,
                                    provider.env_key("max_columns"))
        self.rejects: list[dict[str, Any]] = []  # answers kept verbatim, loaded by the caller
        self.errors_seen = 0
        self._template = client.session.prepare_request(requests.Request(
            "GET", client.base_url, headers=client.headers, auth=client.auth))

    @property
    def polled_at(self) -> Any:
        return self.tracker.observed_at  # read at extraction, when the state is the run's

    def _job_error(self, ref: JobRef, response: requests.Response, message: str) -> None:
        # the job stays unfinished and is polled again next run; the others go on
        self.stats.counts[Count.POLL_ERRORS] += 1
        message = redact(message)
        self.errors_seen += 1
        if self.errors_seen <= _MAX_ERROR_LINES:
            self.stats.errors.append(f"{self.provider.name} {ref.ref}: {message}")
        self.rejects.append(reject_response(self.stats, response, message, ref.ref,
                                            self.polled_at))

    def fetch(self, ref: JobRef) -> requests.Response:
        """One status request (thread-safe: the session, its retries and rate limit are).

        Sent through the client's session (dlt's retries, the rate limit, the counting) as a
        copy of one prepared request with only the URL changed: a provider's polls differ in
        nothing else, and preparing each anew (settings, headers, auth) costs CPU."""
        path, params = self.provider.status_request(ref)
        request = self._template.copy()
        url = join_url(self.client.base_url, path)
        request.url = f"{url}?{urlencode(params)}" if params else url
        try:
            return self.client.session.send(request)
        except AnswerRefused as exc:  # over a bound: this job's answer is rejected, not retried
            return exc.marked_response()

    def poll_all(self, refs: Sequence[JobRef], concurrency: int) -> list[dict[str, Any]]:
        """Rows of every job in `refs` that answered; requests run `concurrency` at a time
        (inside the provider's rate limit), answers are read here, in order."""
        if concurrency <= 1 or len(refs) <= 1:
            return self._read_all(refs, map(self.fetch, refs))
        pool = ThreadPoolExecutor(max_workers=min(concurrency, len(refs)),
                                  thread_name_prefix=f"poll-{self.provider.name}")
        futures = [pool.submit(self.fetch, ref) for ref in refs]
        interrupted = False
        try:
            return self._read_all(refs, (f.result() for f in futures))
        except KeyboardInterrupt:  # a stopping run does not wait for requests in flight
            interrupted = True
            raise
        finally:  # after a provider-ending answer the requests not started are dropped
            pool.shutdown(wait=not interrupted, cancel_futures=True)

    def _read_all(self, refs: Sequence[JobRef], responses: Iterable[requests.Response]
                  ) -> list[dict[str, Any]]:
        rows = []
        for ref, response in zip(refs, responses, strict=True):
            if (row := self.read(ref, response)) is not None:
                rows.append(row)
        return rows

    def read(self, ref: JobRef, response: requests.Response) -> dict[str, Any] | None:
        """The row one status answer gives, None if it gives none (the job stays unfinished)."""
        code = response.status_code
        self.stats.counts[Count.POLLED] += 1
        if (refusal := getattr(response, "refusal", None)) is not None:
            self._job_error(ref, response, f"HTTP {code}: {refusal}" if code else refusal)
            return None
        if code in (401, 403, 429) or code >= 500:
            # a rejected credential, or a limit/outage dlt's retries did not get past: this
            # provider's run ends here and nothing of it is committed, so nothing is lost
            response.raise_for_status()
        if code != 404 and code not in self.provider.body_codes:
            self._job_error(ref, response, f"HTTP {code}: {response.text[:200].strip()}")
            return None
        try:
            answer = responses.body(response)
        except ValueError as exc:
            reason = responses.reason_not_read(exc, "a body that is not JSON")
            self._job_error(ref, response, f"HTTP {code} with {reason}")
            return None
        observation = self.provider.read(ref, code, answer)
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
