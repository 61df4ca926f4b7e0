"""Job-status polling for providers that only answer "what is the status of job X?".

A polled provider is declared as data (`PolledProvider`): origin, auth header, status endpoint
template, native-to-canonical map, which HTTP codes carry a status body. `polled_resources`
turns that declaration into the same four dlt resources for every provider:

- `<provider>_jobs` (not loaded): the jobs to look at this run, as "sightings": ids from config,
  registered jobs from source state that are not finished, and whatever the provider discovers
  (Upload-Post's history listing);
- `<provider>_tracked_jobs`: one row per job the first time it is followed, and by what;
- the provider's jobs table (e.g. `lobstr_upload_tasks`): every field of the latest status answer
  of each polled job, merged on `job_ref`;
- `<provider>_status_history`: one row per observed status change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any
from urllib.parse import quote, urlencode

import dlt
import requests
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.common.typing import TDataItems
from dlt.extract.hints import make_nested_hints
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.utils import join_url

from sources.common import responses
from sources.common.analytics import job_rows_sql
from sources.common.arrow_items import history_arrow, load_id_on_arrow_items
from sources.common.bad_input import (
    PAGES_NOT_READ,
    TolerantClient,
    as_rejects,
    count_misfits,
    is_reject,
    reject_response,
)
from sources.common.columns import ColumnBudget
from sources.common.config_checks import (
    MAX_STATUS_LENGTH,
    Bounds,
    bounds_for,
    checked_origin,
    checked_secret,
)
from sources.common.http_guard import AnswerRefused
from sources.common.provider import Provider
from sources.common.redaction import redact
from sources.common.stats import ProviderStats, counting_session, current_stats
from sources.common.status import NOT_FOUND, TERMINAL
from sources.common.throttle import RateLimit
from sources.common.tracking import HISTORY_HINTS, StatusTracker, history_table

# sightings per feed page: bounds memory, keeps polled rows flowing to the loader, and gives the
# concurrent poller full waves (256 = 16 waves of the default 16 workers)
PAGE = 256
DEFAULT_CONCURRENCY = 16
_MAX_ERROR_LINES = 20  # per-job error lines kept for the summary; the count is always exact
_BAD_ID_CHARS = frozenset("\r\n\t\x00")

# columns every polled jobs table gets besides the fields of the API's answer
POLL_COLUMNS: TTableSchemaColumns = {
    "job_ref": {"data_type": "text", "nullable": False},
    "tracked_id": {"data_type": "text"},
    "scope_id": {"data_type": "text"},
    "native_status": {"data_type": "text"},
    "canonical_status": {"data_type": "text"},
    "status_override": {"data_type": "text"},  # see HISTORY_COLUMNS
    "is_terminal": {"data_type": "bool"},
    "http_status": {"data_type": "bigint"},
    "polled_at": {"data_type": "timestamp"},
}

TRACKED_COLUMNS: TTableSchemaColumns = {
    "job_ref": {"data_type": "text", "nullable": False},
    "tracked_id": {"data_type": "text"},
    "scope_id": {"data_type": "text"},
    "kind": {"data_type": "text"},
    "registered_by": {"data_type": "text"},  # config | track | history
    "registered_at": {"data_type": "timestamp"},
}


class InvalidJobRef(ValueError):
    """A job id from config, a file or `track` that cannot be a job of this provider."""


@dataclass(frozen=True)
class JobRef:
    """One job to follow, as written in config and `track` (`ref`) and split into its parts."""

    ref: str
    job_id: str
    scope_id: str | None = None  # ClearTax taxable entity
    kind: str | None = None  # Upload-Post: request | job

    def fields(self) -> dict[str, str]:
        return {"job_id": self.job_id, "scope_id": self.scope_id or "", "kind": self.kind or ""}


def check_id(value: str, what: str = "id") -> str:
    """An id part as given, or InvalidJobRef if it is empty or holds line breaks/controls."""
    if not value or not value.strip():
        raise InvalidJobRef(f"empty {what}")
    if value != value.strip() or any(c in value for c in _BAD_ID_CHARS):
        raise InvalidJobRef(f"{what} {value!r} has surrounding spaces or control characters")
    if value in (".", ".."):
        # even percent-encoded, a dot segment may be resolved by a proxy into another path
        raise InvalidJobRef(f"{what} {value!r} is a relative path segment")
    return value


def simple_ref(text: str) -> JobRef:
    """A provider whose jobs are identified by one id."""
    return JobRef(ref=check_id(text), job_id=text)


@dataclass(frozen=True)
class Observation:
    native_status: str | None
    status: str  # canonical
    record: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class PolledProvider(Provider):
    jobs_table: str
    status_path: str  # template over JobRef.fields(); values are percent-encoded whole
    status_field: str  # field of the answer holding the native status
    parse_ref: Callable[[str], JobRef] = simple_ref
    status_params: Mapping[str, str] = field(default_factory=dict)  # keys and values templated
    auth_header: str = "Authorization"
    auth_scheme: str | None = None  # e.g. "Token": the header is "<scheme> <secret>"
    body_codes: frozenset[int] = frozenset({200})  # HTTP codes whose body is a job status
    # fields set from the reference when the answer lacks them (a 404 body names no job)
    id_fields: Mapping[str, str] = field(default_factory=dict)
    columns: TTableSchemaColumns = field(default_factory=dict)
    nested_columns: Mapping[str, TTableSchemaColumns] = field(default_factory=dict)
    # canonical status from the whole answer, when the native status alone does not decide it
    refine: Callable[[str, dict[str, Any]], str] | None = None
    # columns derived from the whole answer and its canonical status, added to the row
    derive: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    # expressions over the jobs table (alias `{j}`) for the views' job facts: submitted_at,
    # items_total, items_succeeded, items_failed, error_message
    job_facts: Mapping[str, str] = field(default_factory=dict)

    def declared_tables(self) -> Mapping[str, TTableSchemaColumns]:
        return {self.jobs_table: {**POLL_COLUMNS, **self.columns},
                **{f"{self.jobs_table}__{path}": columns
                   for path, columns in self.nested_columns.items()},
                f"{self.name}_tracked_jobs": TRACKED_COLUMNS}

    def jobs_sql(self) -> str:
        j = f"j_{self.name}"
        exprs = {"job_ref": f"{j}.job_ref", "job_id": f"{j}.tracked_id",
                 "scope_id": f"{j}.scope_id", "native_status": f"{j}.native_status",
                 "status_override": f"{j}.status_override", "last_seen_at": f"{j}.polled_at",
                 **{k: v.format(j=j) for k, v in self.job_facts.items()}}
        return job_rows_sql(self.name, f"{{ds}}.{self.jobs_table} AS {j}", exprs)

    def auth(self, secret: str) -> APIKeyAuth:
        value = f"{self.auth_scheme} {secret}" if self.auth_scheme else secret
        return APIKeyAuth(name=self.auth_header, api_key=value, location="header")

    def status_request(self, ref: JobRef) -> tuple[str, dict[str, str]]:
        encoded = {k: quote(v, safe="") for k, v in ref.fields().items()}
        path = self.status_path.format(**encoded)
        params = {k.format(**ref.fields()): v.format(**ref.fields())
                  for k, v in self.status_params.items()}
        return path, params

    def read(self, ref: JobRef, http_status: int, body: Any) -> Observation:
        """The observation one status answer (or a 404) amounts to."""
        record: dict[str, Any] = dict(body) if isinstance(body, dict) else {"body": body}
        for key in [k for k, v in record.items() if v is None]:
            # a null object whose fields are declared columns (Lobstr's `meta` while running):
            # those columns already hold "no value", and a null-only column would be untyped
            if any(column.startswith(f"{key}__") for column in self.columns):
                del record[key]
        native = record.get(self.status_field)
        native = native if native is None or isinstance(native, str) else str(native)
        if http_status == 404:
            native = native or f"HTTP {http_status}"
            status = NOT_FOUND
        else:
            status = self.canonical(native)
            if self.refine is not None:
                status = self.refine(status, record)
        if self.derive is not None:
            record.update(self.derive(record, status))
        for key, template in self.id_fields.items():
            name = key.format(**ref.fields())
            if record.get(name) is None:
                record[name] = template.format(**ref.fields())
        record.update(job_ref=ref.ref, tracked_id=ref.job_id, scope_id=ref.scope_id,
                      native_status=native, canonical_status=status,
                      status_override=self.override(native, status),
                      is_terminal=status in TERMINAL, http_status=http_status)
        return Observation(native, status, record)


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
        self._template = client.session.prepare_request(requests.Request(
            "GET", client.base_url, headers=client.headers, auth=client.auth))

    @property
    def polled_at(self) -> Any:
        return self.tracker.observed_at  # read at extraction, when the state is the run's

    def _job_error(self, ref: JobRef, response: requests.Response, message: str) -> None:
        # the job stays unfinished and is polled again next run; the others go on
        self.stats.counts["poll errors"] += 1
        message = redact(message)
        if self.stats.counts["poll errors"] <= _MAX_ERROR_LINES:
            self.stats.errors.append(f"{self.provider.name} {ref.ref}: {message}")
        self.rejects.append(reject_response(self.stats, response, message, ref.ref,
                                            self.polled_at))

    def fetch(self, ref: JobRef) -> requests.Response:
        """One status request (thread-safe: the session, its retries and rate limit are).

        Sent through the client's session (dlt's retries, the rate limit, the counting) as a
        copy of one prepared request with only the URL changed: preparing each request anew
        (merging session settings, headers, auth) was half of a poll's CPU, and a provider's
        polls differ in nothing else."""
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
        self.stats.counts["polled"] += 1
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


Sighting = dict[str, Any]
# provider-specific discovery: given the client, the tracker and the `sight` function, yields
# pages of sightings (Upload-Post attaches the history event each job was seen in)
Discover = Callable[[RESTClient, StatusTracker, Callable[..., Sighting]], Iterator[list[Sighting]]]


def _chunks(items: Iterable[Any], size: int = PAGE) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def split_refs(provider: PolledProvider, texts: Iterable[str]) -> tuple[list[JobRef], str]:
    """The valid ids parsed, and a message naming each invalid one ("" when none is)."""
    refs, bad = [], []
    for text in texts:
        try:
            refs.append(provider.parse_ref(text))
        except InvalidJobRef as exc:
            bad.append(f"{text!r} ({exc})")
    return refs, f"invalid {provider.name} job ids: {'; '.join(bad)}" if bad else ""


def parse_refs(provider: PolledProvider, texts: Iterable[str]) -> list[JobRef]:
    """Every id parsed; InvalidJobRef naming each bad one (so one message fixes them all)."""
    refs, bad = split_refs(provider, texts)
    if bad:
        raise InvalidJobRef(bad)
    return refs


def _feed(provider: PolledProvider, tracker: StatusTracker, refs: Sequence[JobRef],
          registered_by: str, client: RESTClient | None, full_refresh: bool,
          discover: Discover | None, unreadable: list[dict[str, Any]] | None = None
          ) -> DltResource:
    """The sightings resource: what to register and what to poll this run."""
    seen: set[str] = set()

    def sight(ref: JobRef, by: str, **extra: Any) -> Sighting:
        is_new = tracker.register(ref.ref)
        poll = client is not None and ref.ref not in seen and (
            full_refresh or not tracker.is_finished(ref.ref))
        seen.add(ref.ref)
        if is_new:
            tracker.stats.counts["registered"] += 1
        return {"job_ref": ref.ref, "tracked_id": ref.job_id, "scope_id": ref.scope_id,
                "kind": ref.kind, "registered_by": by, "is_new": is_new, "poll": poll, **extra}

    @dlt.resource(name=f"{provider.name}_jobs", selected=False)
    def jobs() -> Iterator[list[Sighting]]:
        given = {r.ref for r in refs}
        for chunk in _chunks(refs):
            yield [sight(r, registered_by) for r in chunk]
        if client is None:
            return
        # followed jobs not named in config: the unfinished ones (every one on a full refresh)
        followed = tracker.followed() if full_refresh else tracker.unfinished()
        pending = (provider.parse_ref(r) for r in followed if r not in given)
        for chunk in _chunks(pending):
            yield [sight(r, "state") for r in chunk]
        if discover is not None:
            for page in discover(client, tracker, sight):
                # pages the discovery could not read travel on as sightings to be loaded
                yield page + [{"reject": r} for r in unreadable]
                unreadable.clear()
            if unreadable:
                yield [{"reject": r} for r in unreadable]

    return jobs


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
    full_refresh: bool = False,
    discover: Discover | None = None,
    limit: RateLimit | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[DltResource, ...]:
    """The feed, tracked-jobs, jobs and history resources of one polled provider.

    Configured ids that cannot be job ids are skipped and reported as configuration errors.
    """
    stats = current_stats(provider.name)
    secret = checked_secret(secret, provider.secret_env_key)
    base_url = checked_origin(provider, base_url)
    bounds = bounds_for(provider)
    refs, bad = split_refs(provider, config_ids)
    if bad:  # the valid ones still load; the run ends with the configuration error (exit 2)
        stats.config_errors.append(f"{bad} (skipped; fix them in the configuration)")
    tracker = StatusTracker(provider, stats)
    unreadable: list[dict[str, Any]] = []
    client = TolerantClient(
        base_url=base_url, auth=provider.auth(secret),
        session=counting_session(stats, base_url, bounds, limit=limit),
        on_unreadable=lambda r, reason: unreadable.append(
            not_read(stats, r, reason, tracker.observed_at)),
        max_pages=bounds.max_pages)
    poller = Poller(provider, client, tracker, stats, bounds)
    feed = _feed(provider, tracker, refs, "config", client, full_refresh, discover, unreadable)

    @dlt.transformer(data_from=feed, name=provider.jobs_table, primary_key="job_ref",
                     write_disposition="merge", columns={**POLL_COLUMNS, **provider.columns},
                     nested_hints={path: make_nested_hints(columns=columns)
                                   for path, columns in provider.nested_columns.items()})
    def job_statuses(sightings: TDataItems) -> Iterator[Any]:
        """The latest status answer of every job polled (unfinished ones only); answers that
        cannot be read go to the rejects table."""
        poller.rejects.extend(s["reject"] for s in sightings if s.get("reject"))
        refs = [JobRef(s["job_ref"], s["tracked_id"], s["scope_id"], s["kind"])
                for s in sightings if s.get("poll")]
        rows = poller.poll_all(refs, concurrency)
        if poller.rejects:
            yield as_rejects(provider.name, list(poller.rejects),
                             {**POLL_COLUMNS, **provider.columns})
            poller.rejects.clear()
        if rows:
            yield rows

    @dlt.transformer(data_from=job_statuses, name=history_table(provider),
                     **HISTORY_HINTS)
    def status_history(records: TDataItems) -> Iterator[list[dict[str, Any]]]:
        """One row per job whose status is new or changed since the last run."""
        rows = tracker.take_changes(r["job_ref"] for r in records
                                    if not is_reject(r) and r.get("job_ref"))
        if rows:
            yield history_arrow(rows)

    load_id_on_arrow_items()
    return feed, _tracked_jobs(provider, feed, tracker), job_statuses, status_history


def not_read(stats: ProviderStats, response: requests.Response, reason: str, at: Any
             ) -> dict[str, Any]:
    """The reject row of a listing page that could not be read (the listing stops there)."""
    stats.counts[PAGES_NOT_READ] += 1
    return reject_response(stats, response, reason, at=at)


def registration_source(provider: PolledProvider, refs: Sequence[JobRef]) -> Any:
    """A source that only registers `refs` in the provider's state (as `track` does).

    It carries the provider's own name, so it writes the same source state and schema the
    provider's source reads; no credential is needed as nothing is requested.
    """

    @dlt.source(name=provider.name)
    def registrations() -> tuple[DltResource, ...]:
        tracker = StatusTracker(provider, current_stats(provider.name))
        feed = _feed(provider, tracker, refs, "track", None, False, None)
        return feed, _tracked_jobs(provider, feed, tracker)

    return registrations()
