"""When a scope's listing fails: the scope's own failure (unknown, no access, its own credential
refused, its daily limit spent), the provider's (a shared credential refused, an outage), or
undecided until a sibling scope answers."""

from __future__ import annotations

from typing import Protocol

from requests import HTTPError

from sources.common.errors import ScopeRefused
from sources.common.listed.counts import ListedCounts
from sources.common.listed.spec import ListedSpec
from sources.common.redaction import redact
from sources.common.stats import ProviderStats
from sources.common.throttle import DailyLimitReached
from sources.common.tracking import StatusTracker

# scopes whose listings failed in a way that may be the provider's (a shared token refused,
# an error after retries) before any answered: the provider's run ends, as for an outage
OUTAGE_SCOPES = 3


class ScopeCredentials(Protocol):
    def refusal(self, scope: str, code: int, body: str) -> str | None:
        """What to tell of a 401/403 that concerns this scope's credential alone (None when
        it is shared: the provider's run ends)."""

    def key_for(self, scope: str) -> str:
        """The configuration key of the credential the scope is read with."""


class ScopeFailures:
    """The failures of one run's scopes: each in the summary once, a failing unit (unless
    it only spent its daily limit); the provider's failure raised."""

    def __init__(self, spec: ListedSpec, tracker: StatusTracker, stats: ProviderStats,
                 credentials: ScopeCredentials) -> None:
        self.spec, self.tracker, self.stats = spec, tracker, stats
        self.credentials, self.counts = credentials, ListedCounts(spec)
        self.spent: set[str] = set()  # scopes whose daily request limit is used up
        self.failed: set[str] = set()  # those with a failure in the summary
        self.answered = False  # a scope's listing answered in this run
        # failures that are the provider's or one scope's, until a sibling answers
        self.undecided: list[tuple[str, BaseException]] = []

    def failed_alone(self, scope: str, error: BaseException) -> None:
        """A scope's listing failed: its own failure, the provider's (raised), or undecided."""
        failure = self.scope_failure(scope, error)
        if failure is None:
            failure = self.alone(scope, error)
        if failure is not None:
            self._scope_failed(scope, failure, error)

    def _scope_failed(self, scope: str, failure: str, error: BaseException) -> None:
        """Its line in the summary; a failing unit unless it only spent its daily limit."""
        self.report_failure(scope, failure)
        if not isinstance(error, DailyLimitReached):
            self.tracker.failing.failed(self.spec.scope_name, scope, failure, scope)

    def alone(self, scope: str, error: BaseException) -> str | None:
        """A failure that is the provider's or one scope's (a shared token refused, an error
        after retries): the scope's alone once another scope answered this run, then
        described; the provider's (raised) when the first `OUTAGE_SCOPES` to end failed so,
        or every one did. None: deferred until a sibling answers."""
        if self.answered:
            return self._described(scope, error)
        self.undecided.append((scope, error))
        if len(self.undecided) >= OUTAGE_SCOPES:
            raise self.undecided[0][1]
        return None

    def sibling_answered(self) -> None:
        """A scope's listing answered: the failures held back were their scopes' own."""
        if self.answered:
            return
        self.answered = True
        for scope, error in self.undecided:
            self._scope_failed(scope, self._described(scope, error), error)
        self.undecided.clear()

    def _described(self, scope: str, error: BaseException) -> str:
        name = self.spec.scope_name
        response = getattr(error, "response", None)
        if not isinstance(error, HTTPError) or response is None:
            return redact(f"{name} {scope}: {type(error).__name__}: {error}; read again next "
                          f"run, the other {name}s loaded")
        code, body = response.status_code, response.text[:200].strip()
        if code in (401, 403):
            return redact(f"{name} {scope}: the API refused the token for this {name} (HTTP "
                          f"{code}: {body}) while it accepted it for others; check that "
                          f"{self.credentials.key_for(scope)} may read it")
        return redact(f"{name} {scope}: HTTP {code} after retries: {body}; read again next "
                      f"run, the other {name}s loaded")

    def report_failure(self, scope: str, failure: str) -> None:
        """One line per failed scope in the run's summary, however often it failed."""
        if scope not in self.failed:
            self.failed.add(scope)
            self.stats.failed_parts.append(failure)

    def scope_failure(self, scope: str, error: BaseException) -> str | None:
        """What to report when `error` costs one scope only (unknown, no access, its own
        token refused, its daily limit spent); None when it ends the provider's run (a shared
        token refused, a limit or an outage, an agency's refresh token rejected)."""
        name = self.spec.scope_name
        if isinstance(error, DailyLimitReached):
            if scope not in self.spent:
                self.spent.add(scope)
                self.stats.counts[self.counts.daily_limit_spent] += 1
            return f"{name} {scope}: {error.reason}"
        if isinstance(error, ScopeRefused):
            return redact(str(error))
        if not isinstance(error, HTTPError):
            return None
        code = error.response.status_code if error.response is not None else 0
        body = error.response.text[:200].strip() if error.response is not None else ""
        if code in (401, 403):
            refusal = self.credentials.refusal(scope, code, body)
            return None if refusal is None else redact(refusal)
        if code == 429 or code >= 500:
            return None
        return redact(f"{name} {scope}: HTTP {code}: {body}")
