"""Client-side rate limits: at most N requests in any window of T seconds, per key.

A key is a provider, or a provider's location where the provider limits per location
(some APIs limit each tenant or location on its own). The limiter is shared by every thread of a
provider's run. It also obeys the server: an answer saying no request is left in the current
interval (`X-RateLimit-Remaining: 0` with `X-RateLimit-Interval-Milliseconds` or `-Reset`) pauses
that key for the interval. 429 answers are retried by dlt's client (Retry-After honoured); the
limiter exists so that they are rare.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sources.common.errors import ProviderError

REMAINING_HEADER = "X-RateLimit-Remaining"
DAILY_REMAINING_HEADER = "X-RateLimit-Daily-Remaining"  # 0: nothing more for that key today
INTERVAL_HEADER = "X-RateLimit-Interval-Milliseconds"  # the length of the interval
MAX_HEADER = "X-RateLimit-Max"  # requests allowed per interval
RESET_HEADER = "X-RateLimit-Reset"  # when the window resets (a unix time or seconds)
MAX_PAUSE = 300.0  # seconds; a longer reset is left to the server's 429 and Retry-After
_EPOCH_FROM = 1_000_000_000  # a reset above this is a unix time, below it seconds from now


@dataclass(frozen=True)
class RateLimit:
    requests: int
    period: float  # seconds

    @classmethod
    def of(cls, requests: int | None, period: float | None) -> RateLimit | None:
        """The limit configured by `requests` per `period` seconds; None (no limit) for 0."""
        if not requests or requests <= 0:
            return None
        if not period or period <= 0:
            raise ValueError("a rate limit period must be a positive number of seconds")
        return cls(int(requests), float(period))


class DailyLimitReached(ProviderError):
    """The server said the day's requests for this key are used up: none is sent for it until
    the next run (not a `requests` exception, so no retry waits for it)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.reason = (f"the daily request limit is used up ({DAILY_REMAINING_HEADER}: 0); "
                       "read again next run")
        super().__init__(f"{key}: {self.reason}")


def _is_zero(value: str | None) -> bool:
    try:
        return value is not None and float(value) <= 0
    except ValueError:
        return False


# how often a thread that waits for an in-flight request's answer looks again
IN_FLIGHT_POLL = 0.005


class RateLimiter:
    """Sliding-window limiter: `acquire(key)` blocks until a request may start and returns its
    slot; `release(slot)` when its answer (or error) is back.

    A slot stays in the window until `period` after its request ended, not after it started:
    the server saw the request before the client saw the answer, so the request N places later
    reaches the server more than `period` after it, whatever the network and scheduling delays.
    """

    def __init__(self, limit: RateLimit | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = limit
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # per key, in start order: [end time], math.inf while the request is in flight
        self._slots: dict[str, deque[list[float]]] = {}
        self._paused_until: dict[str, float] = {}
        self.waited = 0.0  # seconds spent waiting, all threads together
        self.spent: set[str] = set()  # keys whose daily quota the server said is used up
        # the limit each key's answers announce (`X-RateLimit-Max` per interval), kept too:
        # with requests in flight, "none remaining" comes too late to hold the others back
        self._announced: dict[str, RateLimit] = {}

    def _wait_needed(self, key: str, now: float) -> float:
        wait = self._paused_until.get(key, 0.0) - now
        limits = self._limits(key)
        # kept while no limit is known too: the first answer may announce one
        slots = self._slots.setdefault(key, deque())
        horizon = max((limit.period for limit in limits), default=MAX_PAUSE)
        while slots and slots[0][0] <= now - horizon:
            slots.popleft()
        for limit in limits:
            window = [slot for slot in slots if slot[0] > now - limit.period]
            if len(window) >= limit.requests:
                ended = window[0][0]
                wait = max(wait, IN_FLIGHT_POLL if ended == math.inf
                           else ended + limit.period - now)
        return wait

    def _limits(self, key: str) -> list[RateLimit]:
        return [limit for limit in (self.limit, self._announced.get(key)) if limit is not None]

    def acquire(self, key: str) -> list[float]:
        while True:
            with self._lock:
                if key in self.spent:
                    raise DailyLimitReached(key)
                now = self._clock()
                wait = self._wait_needed(key, now)
                if wait <= 0:
                    slot = [math.inf]
                    self._slots[key].append(slot)
                    return slot
                self.waited += wait
            self._sleep(wait)

    def release(self, slot: list[float]) -> None:
        with self._lock:
            slot[0] = self._clock()

    def pause(self, key: str, seconds: float) -> None:
        """No request for `key` before `seconds` from now (the server's own accounting)."""
        with self._lock:
            until = self._clock() + seconds
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)

    def _learn(self, key: str, headers: Mapping[str, str]) -> bool:
        """The limit a key's answers announce; and, at its first answer, what the server
        counted that this process did not send (an earlier run's requests) as used slots."""
        maximum, interval = headers.get(MAX_HEADER), headers.get(INTERVAL_HEADER)
        if maximum is None or interval is None:
            return False
        try:
            announced = RateLimit.of(int(maximum), float(interval) / 1000)
            remaining = int(headers.get(REMAINING_HEADER, maximum))
        except ValueError:
            return False
        if announced is None or not 0 < announced.period <= MAX_PAUSE:
            return False
        with self._lock:
            first = key not in self._announced
            self._announced[key] = announced
            slots = self._slots.setdefault(key, deque())
            if first:  # later answers are counted by the server by arrival, ours by end
                now = self._clock()
                mine = sum(1 for slot in slots if slot[0] > now - announced.period)
                for _ in range(min(announced.requests - remaining - mine, announced.requests)):
                    slots.appendleft([now])
        return True

    def observe(self, key: str, headers: Mapping[str, str], now: float | None = None) -> None:
        """Pause `key` when the server says nothing is left in its current interval: for
        the interval's length, or until the announced reset time. An answer that announces
        its limit (`X-RateLimit-Max`) is kept as that limit instead: the window then frees up
        request by request, not all at once an interval after the last one."""
        if _is_zero(headers.get(DAILY_REMAINING_HEADER)):
            with self._lock:
                self.spent.add(key)
        if self._learn(key, headers):
            return
        remaining = headers.get(REMAINING_HEADER)
        interval, reset = headers.get(INTERVAL_HEADER), headers.get(RESET_HEADER)
        if remaining is None or (interval is None and reset is None):
            return
        try:
            if float(remaining) > 0:
                return
            if interval is not None:
                seconds = float(interval) / 1000
            else:
                value = float(reset)  # type: ignore[arg-type]
                now = time.time() if now is None else now
                seconds = value - now if value > _EPOCH_FROM else value
        except ValueError:
            return  # a malformed header is no reason to fail a request that succeeded
        if 0 < seconds <= MAX_PAUSE:
            self.pause(key, seconds)
