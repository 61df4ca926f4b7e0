"""The scope a request is about (a tenant, an account, an entity its jobs belong to) and what
it reads there, carried with the request as data: the auth picks the scope's credential by it,
the rate limiter its bucket, the counters their unit. Never parsed back out of a URL, so no
endpoint path can make two scopes share a token or a bucket."""

from __future__ import annotations

from dataclasses import dataclass

from requests import PreparedRequest
from requests.auth import AuthBase

_ATTRIBUTE = "upload_status_scope"


@dataclass(frozen=True)
class Scope:
    id: str
    reads: str = ""  # what the request reads there: "listing", "children", "status"


def scope_of(request: PreparedRequest | None) -> Scope | None:
    """The scope a prepared request was sent for, None when it has none."""
    return getattr(request, _ATTRIBUTE, None)


def mark(request: PreparedRequest, scope: Scope | None) -> PreparedRequest:
    """`request` marked with `scope` (a copied request loses the mark: mark the copy)."""
    setattr(request, _ATTRIBUTE, scope)
    return request


class ScopedAuth(AuthBase):
    """Marks every request with its scope, then applies the client's own auth (which may
    choose a credential by it)."""

    def __init__(self, scope: Scope, inner: AuthBase | None) -> None:
        self.scope, self.inner = scope, inner

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        mark(request, self.scope)
        return self.inner(request) if self.inner is not None else request
