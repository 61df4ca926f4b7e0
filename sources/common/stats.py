"""Per-provider run counters that the command line prints as the run summary."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import requests
from dlt.sources.helpers.requests import Client
from requests.adapters import HTTPAdapter

from sources.common.config_checks import Bounds, origin_of
from sources.common.http_guard import (
    MAX_REDIRECTS,
    AnswerRefused,
    Guard,
    RequestDeadlinePassed,
    sending,
    watch,
)
from sources.common.throttle import RateLimit, RateLimiter


@dataclass
class ProviderStats:
    provider: str
    requests: int = 0
    http_status: Counter[int] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    outcome: str = "not run"  # loaded | partly failed | failed | skipped | config error
    # parts of the provider that failed while the rest loaded (a location the API refused)
    failed_parts: list[str] = field(default_factory=list)
    # configuration mistakes that did not stop the run (invalid configured ids, skipped)
    config_errors: list[str] = field(default_factory=list)
    limiter: RateLimiter | None = field(default=None, repr=False)
    # responses arrive on the concurrent poller's threads
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_response(self, response: requests.Response) -> None:
        with self.lock:
            self.requests += 1
            self.http_status[response.status_code] += 1


_current: ContextVar[ProviderStats | None] = ContextVar("upload_status_stats", default=None)


def current_stats(provider: str) -> ProviderStats:
    """The stats being collected for `provider`, or a throwaway object outside a run."""
    stats = _current.get()
    return stats if stats is not None and stats.provider == provider else ProviderStats(provider)


@contextmanager
def collecting(provider: str) -> Iterator[ProviderStats]:
    stats = ProviderStats(provider)
    token = _current.set(stats)
    try:
        yield stats
    finally:
        _current.reset(token)


class _CountingAdapter(HTTPAdapter):
    """Sees every HTTP attempt, retries and redirects included (dlt retries above the
    adapter), so the rate limit also spaces out retries and the guard sees every target."""

    def __init__(self, on_response: Callable[[requests.Response], Any],
                 limiter: RateLimiter, key_of: Callable[[str], str], guard: Guard) -> None:
        super().__init__(pool_maxsize=64)
        self._on_response = on_response
        self._limiter = limiter
        self._key_of = key_of
        self.guard = guard  # `responses.body` finds it as `response.connection.guard`

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             **kwargs: Any) -> requests.Response:
        self.guard.check_request(request.url or "")
        key = self._key_of(request.url or "")
        slot = self._limiter.acquire(key)
        started = time.monotonic()
        try:
            with sending(started + self.guard.bounds.request_deadline_seconds):
                response = super().send(request, stream=True, **kwargs)
            refused = self.guard.read_body(response, started)
        except RequestDeadlinePassed as exc:  # not retried, and rejected like a slow body
            raise AnswerRefused(str(exc), no_answer(request)) from None
        finally:
            self._limiter.release(slot)
        self._limiter.observe(key, response.headers)
        self._on_response(response)
        if refused:
            raise AnswerRefused(refused, response)
        return response

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        return watch(super().get_connection_with_tls_context(*args, **kwargs))


def no_answer(request: requests.PreparedRequest) -> requests.Response:
    """The stand-in for an answer that never came (status 0, no body), for its reject row."""
    response = requests.Response()
    response.status_code, response.url, response.request = 0, request.url or "", request
    response._content = b""
    return response


def is_unreadable(response: requests.Response | None,
                  exception: BaseException | None = None) -> bool:
    """A 2xx answer whose body cannot be JSON (an HTML error page sent with 200, a truncated
    body): retried like a 5xx. Cheap on purpose, every page passes here: JSON ends in } or ]."""
    if response is None or not 200 <= response.status_code < 300 or not response.content:
        return False
    return response.content.rstrip()[-1:] not in (b"}", b"]")


def counting_session(stats: ProviderStats, base_url: str, bounds: Bounds,
                     on_response: Callable[[requests.Response], Any] | None = None,
                     limit: RateLimit | None = None,
                     key_of: Callable[[str], str] | None = None) -> requests.Session:
    """dlt's retrying session (backoff, Retry-After, RUNTIME__REQUEST_* settings) for requests to
    `base_url` (a checked origin, `config_checks.checked_origin`) only, within `bounds`
    (`http_guard`), that keeps to `limit` per rate-limit key (`key_of(url)`, the provider by
    default), counts every response in `stats` and hands it to `on_response`."""
    client = Client(raise_for_status=False, retry_condition=is_unreadable)
    client.configure()
    stats.limiter = RateLimiter(limit)
    session = client.session
    # requests reads proxy and CA settings from the environment on every request, a third of
    # a status poll's CPU; every request of this session goes to one origin, so read them once
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False

    def count(response: requests.Response) -> None:
        stats.count_response(response)
        if on_response is not None:
            with stats.lock:
                on_response(response)

    guard = Guard(origin_of(base_url), bounds, stats.counts)
    adapter = _CountingAdapter(count, stats.limiter, key_of or (lambda url: stats.provider),
                               guard)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = MAX_REDIRECTS
    return session
