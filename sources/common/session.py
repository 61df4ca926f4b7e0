"""The HTTP session every provider's requests go through: dlt's retries, one origin only,
bounded answers (`http_guard`), the rate limit (`throttle`), every response counted."""

from __future__ import annotations

import time
from collections.abc import Callable
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
from sources.common.stats import ProviderStats
from sources.common.throttle import RateLimit, RateLimiter


class _CountingAdapter(HTTPAdapter):
    """Sees every HTTP attempt, retries and redirects included (dlt retries above the
    adapter), so the rate limit also spaces out retries and the guard sees every target."""

    def __init__(self, on_response: Callable[[requests.Response], Any],
                 limiter: RateLimiter, key_of: Callable[[requests.PreparedRequest], str],
                 guard: Guard) -> None:
        super().__init__(pool_maxsize=64)
        self._on_response = on_response
        self._limiter = limiter
        self._key_of = key_of
        self.guard = guard  # `responses.body` finds it as `response.connection.guard`

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             **kwargs: Any) -> requests.Response:
        self.guard.check_request(request.url or "")
        key = self._key_of(request)
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
                     key_of: Callable[[requests.PreparedRequest], str] | None = None
                     ) -> requests.Session:
    """dlt's retrying session (backoff, Retry-After, RUNTIME__REQUEST_* settings) for requests to
    `base_url` (a checked origin, `config_checks.checked_origin`) only, within `bounds`
    (`http_guard`), that keeps to `limit` per rate-limit key (`key_of(request)`: from its
    scope, `sources.common.scopes`; the provider by
    default), counts every response in `stats` and hands it to `on_response`."""
    client = Client(raise_for_status=False, retry_condition=is_unreadable)
    client.configure()
    session = client.session
    # requests would read proxy and CA settings from the environment on every request; every
    # request of this session goes to one origin, so they are read once
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
    adapter = _CountingAdapter(count, RateLimiter(limit),
                               key_of or (lambda request: stats.provider), guard)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = MAX_REDIRECTS
    return session
