"""A fixed-window rate limit as some providers announce theirs: `X-RateLimit-Limit`,
`-Remaining` and `-Reset` (unix time) on every answer, 429 with `Retry-After` beyond."""

from __future__ import annotations

import math
import threading
import time

from simulator.server import Reply


class WindowLimit:
    def __init__(self, requests: int, seconds: float) -> None:
        self.requests, self.seconds = requests, seconds
        self._lock = threading.Lock()
        self._start = 0.0
        self._used = 0
        self.refused = 0  # 429s answered

    def take(self) -> tuple[dict[str, str], Reply | None]:
        """The headers for this request, and a 429 reply when none is left in the window."""
        now = time.time()
        with self._lock:
            if now - self._start >= self.seconds:
                self._start, self._used = now, 0
            reset = self._start + self.seconds
            allowed = self._used < self.requests
            self._used += allowed
            remaining = self.requests - self._used
            self.refused += not allowed
        headers = {"X-RateLimit-Limit": str(self.requests),
                   "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": f"{reset:.3f}"}
        if allowed:
            return headers, None
        wait = str(max(1, math.ceil(reset - now)))
        return headers, Reply(429, {"error": "Rate limit exceeded", "type": "RateLimitExceeded",
                                    "code": 429}, {**headers, "Retry-After": wait})
