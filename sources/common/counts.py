"""The run's counters, as the summary shows them. They are for people: no decision is taken
by reading one (a listing that lost a page says so itself, `TolerantClient.pages_not_read`)."""

from __future__ import annotations

from enum import Enum


class Counted(str, Enum):
    """Counter keys: a provider package may declare its own (its listing's pages, say)."""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # a counter dict prints as the summary names it
        return repr(self.value)


class Count(Counted):
    """What every provider's run counts."""

    JOBS_SEEN = "jobs seen"
    POLLED = "polled"
    NEW = "new"
    CHANGED = "changed"
    UNFINISHED = "unfinished"
    REGISTERED = "registered"
    UNTRACKED = "untracked (not polled)"
    BAD_INPUT = "bad input"
    POLL_ERRORS = "poll errors"
    WAITING = "waiting for the next run"  # not polled: the run's budget or the API ran out
    BACKING_OFF = "failing, retried later"  # failed runs in a row: waiting out its interval
    PAGES_NOT_READ = "listing pages not read"  # not JSON or over a bound: the listing stopped
    KEPT_VERBATIM = "fields kept verbatim (wrong type)"
    CREDENTIALS_MASKED = "credentials masked in answers"
    STRINGS_CUT = "long strings cut"


def rejected(reason: str) -> str:
    """The counter of records or answers rejected for `reason`."""
    return f"rejected: {reason}"
