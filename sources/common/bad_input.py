"""Answers and records that cannot be loaded as they are: kept verbatim in `<provider>_rejects`,
counted in the run summary, and never a reason to lose the other records of the run.

- An answer whose body is not JSON (an HTML error page sent with 200, a truncated body) is
  retried by dlt's client like a 5xx; if it stays unreadable its raw text becomes a reject row
  and the page counts as empty.
- A record that cannot be merged (no id, not an object) becomes a reject row.
- A field whose value does not fit its declared type (a count of "twelve", an unparsable
  timestamp) is kept: dlt stores it verbatim in a variant column (e.g. `count__v_text`); the
  summary counts such fields.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import dlt
import pendulum
from dlt.common import logger as dlt_logger
from dlt.common.data_types import coerce_value
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.items import DataItemWithMeta
from dlt.sources.helpers.rest_client import RESTClient
from requests import PreparedRequest, Request, Response

from sources.common.columns import normalized
from sources.common.counts import Count, rejected
from sources.common.http_guard import AnswerRefused, AnswerRejected
from sources.common.paginators import ListingStopped
from sources.common.redaction import redact
from sources.common.responses import body, keep_body, reason_not_read, select
from sources.common.stats import ProviderStats

UNREADABLE_BODY = "unreadable body"  # the reason given to answers that are not JSON
RAW_LIMIT = 20_000  # characters of a rejected body kept; enough to see what the server sent
_CHECKED_TYPES = frozenset({"bigint", "double", "bool", "timestamp", "date"})

REJECT_COLUMNS: TTableSchemaColumns = {
    "reject_key": {"data_type": "text", "nullable": False},
    "provider": {"data_type": "text"},
    "endpoint": {"data_type": "text"},  # request path, no query (never a credential)
    "job_ref": {"data_type": "text", "nullable": True},  # a listing's rejects have none
    "reason": {"data_type": "text"},
    "http_status": {"data_type": "bigint"},
    "raw": {"data_type": "text"},
    "rejected_at": {"data_type": "timestamp"},
}


def rejects_table(provider: str) -> str:
    return f"{provider}_rejects"


def reject(stats: ProviderStats, reason: str, raw: Any, endpoint: str = "",
           http_status: int | None = None, job_ref: str | None = None,
           at: pendulum.DateTime | None = None) -> dict[str, Any]:
    """One reject row; counted in the summary (and one line of it kept for the error list)."""
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str, sort_keys=True)
    text = redact(text[:RAW_LIMIT + 1000])[:RAW_LIMIT]  # a secret cut at the limit is masked too
    reason = redact(reason)
    stats.counts[Count.BAD_INPUT] += 1
    stats.counts[rejected(reason)] += 1
    at = at or pendulum.now("UTC")
    key = hashlib.sha256("\x1f".join(
        [stats.provider, endpoint, job_ref or "", reason, text, at.isoformat()]).encode())
    return {"reject_key": key.hexdigest()[:32], "provider": stats.provider,
            "endpoint": endpoint, "job_ref": job_ref, "reason": reason,
            "http_status": http_status, "raw": text, "rejected_at": at}


def reject_response(stats: ProviderStats, response: Response, reason: str,
                    job_ref: str | None = None, at: pendulum.DateTime | None = None
                    ) -> dict[str, Any]:
    return reject(stats, reason, response.text, urlsplit(response.url).path,
                  response.status_code, job_ref, at)


def page_not_read(stats: ProviderStats, response: Response, reason: str, at: Any
                  ) -> dict[str, Any]:
    """The reject row of a listing page that could not be read (the listing stops there),
    counted in the run's summary, with a line naming the page."""
    stats.counts[Count.PAGES_NOT_READ] += 1
    parts = urlsplit(response.url)
    page = f"{parts.path}?{parts.query}" if parts.query else parts.path
    stats.unit_failed(redact(f"listing page {page}: {reason}; read again next run"))
    return reject_response(stats, response, reason, at=at)


def record_not_read(stats: ProviderStats, response: Response, record: Any, reason: str,
                    at: Any, unit: str = "record") -> dict[str, Any]:
    """The reject row of one listed record over a bound (its siblings load), with a line
    naming it (`unit` and its id) and its page."""
    name = record.get("_id") or record.get("id") if isinstance(record, dict) else None
    path = urlsplit(response.url).path
    stats.unit_failed(redact(f"{unit} {name if name is not None else '(no id)'} listed by "
                             f"{path}: {reason}"))
    return reject(stats, reason, record, path, response.status_code, at=at)


def as_rejects(provider: str, rows: list[dict[str, Any]],
               resource_columns: TTableSchemaColumns) -> DataItemWithMeta:
    """Reject rows routed to the provider's rejects table from the resource that found them."""
    return routed(rejects_table(provider), "reject_key", REJECT_COLUMNS, rows, resource_columns)


def routed(table: str, key: str, columns: TTableSchemaColumns, rows: list[dict[str, Any]],
           resource_columns: TTableSchemaColumns) -> DataItemWithMeta:
    """`rows` routed to `table` (merged on `key`) from a resource loading another table.

    dlt starts a table variant from the resource's own hints: its required columns (an id a
    routed row may lack) are relaxed for that table.
    """
    relaxed: TTableSchemaColumns = {
        name: {"name": name, "nullable": True, "primary_key": False}
        for name, column in resource_columns.items() if column.get("nullable") is False}
    merged = {**relaxed, **{name: {**relaxed.get(name, {}), **column}
                            for name, column in columns.items()}}  # per column: both kept
    hints = dlt.mark.make_hints(table_name=table, write_disposition="merge",
                                primary_key=key, columns=merged)
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)


def is_reject(item: Any) -> bool:
    return isinstance(item, dict) and "reject_key" in item and "raw" in item


def misfit_fields(record: Mapping[str, Any], columns: TTableSchemaColumns,
                  prefix: str = "") -> list[str]:
    """Declared typed columns whose value in `record` does not fit the type (kept by dlt in a
    variant column, so they are counted, not dropped); nested objects are checked as dlt
    flattens them (`meta.valid` is column `meta__valid`)."""
    misfits = []
    for key, value in record.items():
        name = prefix + normalized(key)
        if isinstance(value, dict):
            misfits.extend(misfit_fields(value, columns, name + "__"))
            continue
        column = columns.get(name)
        data_type = column.get("data_type") if column else None
        if value is None or data_type not in _CHECKED_TYPES or _fits_fast(data_type, value):
            continue
        try:
            coerce_value(data_type, _py_type(value), value)
        except (ValueError, TypeError, OverflowError):
            misfits.append(key)
    return misfits


def count_misfits(stats: ProviderStats, record: Mapping[str, Any],
                  columns: TTableSchemaColumns) -> bool:
    """Count a record with fields of the wrong type (kept verbatim) in the run summary; True if
    it has any."""
    if misfits := misfit_fields(record, columns):
        stats.counts[Count.BAD_INPUT] += 1
        stats.counts[Count.KEPT_VERBATIM] += len(misfits)
    return bool(misfits)


def _fits_fast(data_type: str, value: Any) -> bool:
    """The common, well-formed cases without dlt's general coercion (every record passes)."""
    if data_type == "bigint":
        return isinstance(value, int) and not isinstance(value, bool)
    if data_type == "timestamp" and isinstance(value, datetime):
        return True
    if data_type == "timestamp" and isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False  # dlt's parser decides (it also reads other forms)
        return True
    return False


class _Parsed:
    """A response whose `json()` is an already parsed body (for dlt's selector guess)."""

    def __init__(self, response: Response, parsed: Any) -> None:
        self._response, self._parsed = response, parsed

    def json(self) -> Any:
        return self._parsed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


def cut_records(parsed: Any, violations: list[tuple[tuple[Any, ...], str]]
                ) -> list[tuple[Any, str]] | None:
    """Remove from `parsed` (in place) each list item holding a part over a bound, the
    outermost list on its path (a listing's record); the items and their reasons, or None if a
    part over a bound is in no list (the envelope)."""
    records: dict[tuple[Any, ...], str] = {}
    for path, reason in violations:
        index = next((i for i, step in enumerate(path) if isinstance(step, int)), None)
        if index is None:
            return None
        records.setdefault(path[:index + 1], reason)
    cut = []
    for path in sorted(records, key=lambda p: (p[:-1], -p[-1])):  # later items first
        parent = parsed
        for step in path[:-1]:
            parent = parent[step]
        cut.append((parent.pop(path[-1]), records[path]))
    return cut[::-1]


def _plain_get(request: Request) -> bool:
    """A GET with no body, cookies or files, to a URL without a query of its own."""
    return (request.method.upper() == "GET" and not request.data and request.json is None
            and not request.files and not request.cookies and "?" not in request.url
            and isinstance(request.params, dict))


def _py_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, dict | list):
        return "json"
    return "text"


class TolerantClient(RESTClient):
    """A RESTClient whose pages with an unreadable body (after dlt's retries) or one over a
    bound (`http_guard`) count as empty pages: the body and the reason are handed to
    `on_unreadable` (a reject row) and paging of that listing stops there; the other listings
    go on. A listing with more than `max_pages` pages ends with `ListingStopped`."""

    def __init__(self, *args: Any, on_unreadable: Any, max_pages: int = 20_000,
                 on_record_rejected: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_unreadable = on_unreadable
        # (response, record, reason) of a listed record over a bound, rejected alone
        self._on_record_rejected = on_record_rejected
        self.max_pages = max_pages
        self._lost = threading.local()
        self._template: PreparedRequest | None = None

    @property
    def pages_not_read(self) -> int:
        """Pages this thread could not read: a listing (read by one thread) that lost a page
        must not move its mark."""
        return getattr(self._lost, "pages", 0)

    def _not_read(self, response: Response, reason: str) -> None:
        self._lost.pages = self.pages_not_read + 1
        self._on_unreadable(response, reason)

    def _send_request(self, request: Any, **kwargs: Any) -> Response:
        try:
            if _plain_get(request) and not kwargs:
                prepared = self._prepared(request)
                if dlt_logger.isEnabledFor(logging.INFO):  # as dlt logs them (redacted)
                    self._log_request(request, prepared.url or "")
                return self.session.send(prepared)
            return super()._send_request(request, **kwargs)
        except AnswerRefused as exc:  # never retried; an error status still counts as one
            response = exc.marked_response()
            response.raise_for_status()
            return response

    def _prepared(self, request: Request) -> PreparedRequest:
        """A listing page's GET as `session.prepare_request` would make it, from a copy of one
        prepared at the start: a page's request differs only in its URL and auth (preparing
        each anew was a third of a page's CPU at many locations, bench/RESULTS.md)."""
        if self._template is None:
            self._template = self.session.prepare_request(Request("GET", request.url))
        prepared = self._template.copy()
        query = urlencode(request.params, doseq=True)
        prepared.url = f"{request.url}?{query}" if query else request.url
        prepared.headers.update(request.headers)
        prepared.hooks = {"response": []}
        auth = request.auth or self.auth
        if auth is not None:  # before the request's hooks, as requests orders them
            prepared = auth(prepared)
        prepared.hooks["response"].extend(request.hooks.get("response", []))
        return prepared

    def detect_data_selector(self, response: Response) -> str:
        """dlt's guess at where a page's records are, but the root of an answer that is
        refused or not JSON, which `extract_response` then rejects (dlt's would raise)."""
        if getattr(response, "refusal", None) is not None:
            return "$"
        try:
            body(response)
        except AnswerRejected as exc:
            return "$" if exc.parsed is None or isinstance(exc.parsed, list) else \
                super().detect_data_selector(_Parsed(response, exc.parsed))
        except ValueError:
            return "$"
        return super().detect_data_selector(response)

    def _without_records(self, response: Response, exc: AnswerRejected, data_selector: Any
                         ) -> Any:
        """The page's data without the records over a bound, each handed to
        `on_record_rejected`; None when the page itself is over one (or no handler)."""
        if self._on_record_rejected is None or exc.parsed is None:
            return None
        cut = cut_records(exc.parsed, exc.violations)
        if cut is None:
            return None
        for record, reason in cut:
            self._on_record_rejected(response, record, reason)
        response.records_rejected = len(cut)  # type: ignore[attr-defined]  # the page's length
        # like a page not read, it keeps the listing's mark: the next run reads it again
        self._lost.pages = self.pages_not_read + 1
        keep_body(response, exc.parsed)
        return select(data_selector, response)

    def paginate(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, page in enumerate(super().paginate(*args, **kwargs), 1):
            yield page
            if number >= self.max_pages and page.paginator.has_next_page:
                raise ListingStopped(f"more than {self.max_pages} pages in one run (max_pages)")

    def extract_response(self, response: Response, data_selector: Any) -> list[Any]:
        # as dlt's, but the body is parsed once and the selector compiled once (responses.py)
        if (refusal := getattr(response, "refusal", None)) is not None:
            self._not_read(response, refusal)
            return []
        try:
            data = select(data_selector, response)
        except AnswerRejected as exc:
            if (data := self._without_records(response, exc, data_selector)) is None:
                self._not_read(response, exc.reason)
                return []
        except ValueError as exc:
            self._not_read(response, reason_not_read(exc, UNREADABLE_BODY))
            return []
        data = data[0] if isinstance(data, list) and len(data) == 1 else data
        if data is None:
            return []
        return data if isinstance(data, list) else [data]  # a single object is a page of one
