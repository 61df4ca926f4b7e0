"""What a provider's session lets through: requests only to its own origin (redirects included),
before its run deadline; answers read within a size and a time bound; parsed answers within a
depth, with long strings cut and any credential masked.

requests has no body-size or total-time limit and strips only `Authorization` on redirects to
another host, so these are enforced here, in the transport adapter every attempt passes through.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

from sources.common import hostile_values
from sources.common.config_checks import Bounds, origin_of, origin_text
from sources.common.counts import Count
from sources.common.errors import ProviderError
from sources.common.redaction import contains_secret, mask

MAX_REDIRECTS = 3  # same-origin hops followed (a trailing-slash or version redirect)
_CHUNK = 64 * 1024
KEPT_OF_REFUSED = 64 * 1024  # bytes of a refused answer kept for its reject row
TRUNCATED = " [cut: {n} characters in all]"


class ForeignOrigin(requests.RequestException):
    """A request (a redirect's target) to another origin than the provider's: never sent."""

    def __init__(self, target: str, origin: str) -> None:
        super().__init__(f"redirected to {target}, another origin than {origin}; "
                         "nothing was sent there")
        self.target = target


class RunDeadlinePassed(requests.RequestException):
    """The provider's run went past its deadline: no further request is made."""


class AnswerRefused(requests.RequestException):
    """An answer over a bound (size, time): `response` holds its first bytes; never retried."""

    def __init__(self, reason: str, response: requests.Response) -> None:
        super().__init__(reason, response=response)
        self.reason = reason

    def marked_response(self) -> requests.Response:
        """The answer, carrying the reason as `refusal`, for the caller to reject it."""
        self.response.refusal = self.reason  # type: ignore[union-attr]
        return self.response  # type: ignore[return-value]


Path = tuple[Any, ...]  # keys and list indexes from an answer's root


class AnswerRejected(ProviderError, ValueError):
    """A parsed answer over a bound (depth, shape): the job or page it was for is rejected,
    unless every part over a bound lies inside an item of a list (a listing's record): then
    `parsed` and `violations` (path, reason) let the reader reject those items alone."""

    def __init__(self, reason: str, violations: list[tuple[Path, str]] | None = None,
                 parsed: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.violations = violations or []
        self.parsed = parsed


class RequestDeadlinePassed(ProviderError):
    """No status line and headers within the request's deadline (a server trickling them):
    the connection was cut; like an answer over a bound, never retried. Not an OSError, so
    neither urllib3 nor dlt take it for a connection error to retry."""


# the deadline of the request this thread is sending (set by the adapter, read while waiting
# for the headers, where no read of ours could check it)
_sending = threading.local()


class _Watchdog:
    """One thread running the actions whose deadline passed (cutting a connection): a timer
    thread per request cost a thread start on every poll."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, action: Callable[[], None]) -> int:
        with self._cond:
            token = next(self._ids)
            heapq.heappush(self._heap, (deadline, token, action))
            self._live.add(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="request-deadlines",
                                                daemon=True)
                self._thread.start()
            if self._heap[0][1] == token:
                self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._live.discard(token)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # disarmed: the request ended in time
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, token, action = self._heap[0]
                if (wait := deadline - time.monotonic()) > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
                with contextlib.suppress(Exception):
                    action()


_watchdog = _Watchdog()


class _WatchedConnection:
    """A urllib3 connection that is cut when the headers have not all arrived by the deadline
    of the request being sent: each byte arriving in time keeps a plain socket timeout from
    firing, so only a watchdog can bound the wait as a whole."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        deadline = getattr(_sending, "deadline", None)
        if deadline is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        fired = threading.Event()

        def cut() -> None:
            fired.set()
            with contextlib.suppress(OSError, AttributeError):
                self.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]

        token = _watchdog.arm(deadline, cut)
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        except Exception:
            if fired.is_set():
                raise RequestDeadlinePassed("no complete answer headers within the request "
                                            "deadline (request_deadline_seconds)") from None
            raise
        finally:
            _watchdog.disarm(token)


def watch(pool: Any) -> Any:
    """`pool` (a urllib3 connection pool) making watched connections from now on."""
    base = pool.ConnectionCls
    if not issubclass(base, _WatchedConnection):
        pool.ConnectionCls = type(f"Watched{base.__name__}", (_WatchedConnection, base), {})
    return pool


@contextlib.contextmanager
def sending(deadline: float) -> Any:
    """The request this thread sends within the block must have its headers by `deadline`."""
    _sending.deadline = deadline
    try:
        yield
    finally:
        _sending.deadline = None


@dataclass
class Guard:
    """The bounds of one provider's session; `counts` is the run summary's counter."""

    origin: tuple[str, str, int]
    bounds: Bounds
    counts: Counter[str] = field(default_factory=Counter)
    deadline: float = 0.0  # time.monotonic() after which no request starts

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.bounds.run_deadline_seconds

    def check_request(self, url: str) -> None:
        """Refuse a request to another origin (scheme, host and port) or past the deadline."""
        try:
            target = origin_of(url)
        except ValueError:
            target = ("?", url[:100], 0)
        if target != self.origin:
            raise ForeignOrigin(origin_text(target) if target[0] != "?" else "?",
                                origin_text(self.origin))
        if time.monotonic() > self.deadline:
            raise RunDeadlinePassed(
                f"the run passed its deadline of {self.bounds.run_deadline_seconds:g} s")

    def read_body(self, response: requests.Response, started: float) -> str | None:
        """Read the streamed body into `response.content`, decompressed, within
        `max_body_bytes` and `request_deadline_seconds` from `started`; the reason when it is
        over one (the connection is then closed and the first bytes kept)."""
        limit, seconds = self.bounds.max_body_bytes, self.bounds.request_deadline_seconds
        raw, chunks, size, reason = response.raw, [], 0, None
        try:
            while chunk := raw.read1(_CHUNK, decode_content=True):
                size += len(chunk)
                chunks.append(chunk)  # at most one chunk past the limit is held
                if size > limit:
                    reason = f"answer larger than {limit} bytes (max_body_bytes)"
                elif time.monotonic() - started > seconds:
                    reason = (f"answer not complete after {seconds:g} s "
                              "(request_deadline_seconds)")
                if reason:
                    break
        except ProtocolError as exc:
            raise ChunkedEncodingError(exc) from None
        except DecodeError as exc:
            raise ContentDecodingError(exc) from None
        except ReadTimeoutError as exc:
            raise requests.ConnectionError(exc) from None
        except SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None
        body = b"".join(chunks)
        if reason is None:
            raw.release_conn()
        else:
            response.close()  # the rest is never read; the connection is not reused
            body = body[:KEPT_OF_REFUSED]
        response._content = body
        response._content_consumed = True
        return reason

    def checked(self, parsed: Any, content: bytes, exact: bool = False) -> Any:
        """A parsed answer within the depth and width bounds, long strings cut, secrets masked,
        destination-hostile values made loadable (`hostile_values`). `exact`: parsed by
        Python's parser, which reads every integer exactly (orjson does not beyond 64 bits)."""
        if contains_secret(content):
            parsed = mask(parsed)
            self.counts[Count.CREDENTIALS_MASKED] += 1
        if isinstance(parsed, dict | list):
            counted: Counter[str] = Counter()  # kept only if this walk is the last
            walk = _Walk(self.bounds, counted, len(content) > self.bounds.max_text_length,
                         hostile_values.suspects(content), exact)
            walk.walk(parsed, 1)
            if walk.inexact:  # a number beyond int64 read by orjson: read it all again exactly
                return self.checked(hostile_values.parse_leniently(content), content, True)
            self.counts.update(counted)
            if walk.violations:
                raise AnswerRejected(walk.violations[0][1], walk.violations, parsed)
        return parsed


class _Walk:
    """One pass over a parsed answer: depth and object width checked (a part over a bound is
    noted with its path and not walked), strings over `max_text_length` cut, and the values
    `hostile_values` names made loadable, all in place."""

    def __init__(self, bounds: Bounds, counts: Counter[str], long_strings: bool,
                 suspects: hostile_values.Suspects, exact: bool) -> None:
        self.bounds, self.counts, self.long_strings = bounds, counts, long_strings
        self.suspects, self.exact = suspects, exact
        self.inexact = False  # a number beyond int64 that orjson may have rounded
        self.trail: list[Any] = []
        self.violations: list[tuple[Path, str]] = []

    def _violation(self, reason: str) -> None:
        self.violations.append((tuple(self.trail), reason))

    def walk(self, value: dict[str, Any] | list[Any], depth: int) -> None:
        bounds = self.bounds
        if depth > bounds.max_json_depth:
            self._violation(f"answer nested deeper than {bounds.max_json_depth} levels "
                            "(max_json_depth)")
            return
        suspects, exact = self.suspects, self.exact
        if isinstance(value, dict):
            if len(value) > bounds.max_columns:
                self._violation(f"an object in the answer has {len(value)} fields, over "
                                f"{bounds.max_columns} (max_columns)")
                return
            if suspects.keys:
                hostile_values.rename_blank_keys(value, self.counts)
            # a key may move in an exact pass (`fix_number`): iterate over a copy then
            items: Any = list(value.items()) if exact else value.items()
        else:
            items = enumerate(value)
        limit, long_strings = bounds.max_text_length, self.long_strings
        fix_values, fix_moments = suspects.values, suspects.moments  # locals: read per value
        low, high = hostile_values.INT64_MIN, hostile_values.INT64_MAX
        for key, item in items:
            kind = type(item)
            if kind is str:
                if long_strings and len(item) > limit:
                    item = value[key] = item[:limit] + TRUNCATED.format(n=len(item))
                    self.counts[Count.STRINGS_CUT] += 1
                if fix_values:
                    hostile_values.fix_text(value, key, item, self.counts)
                if fix_moments:
                    hostile_values.fix_moment(value, key, value[key])
            elif kind is dict or kind is list:
                self.trail.append(key)
                self.walk(item, depth + 1)
                self.trail.pop()
            elif (kind is int or kind is float) and not low <= item <= high:
                if not exact:
                    self.inexact = True  # orjson may have rounded it: read again exactly
                    return
                hostile_values.fix_number(value, key, item, self.counts)
