"""The scope of a request travels with it as data: the token, the rate-limit bucket and the
page counters follow the scope it was sent for, whatever its path says."""

from __future__ import annotations

from requests import Request, Session

from sources.common.scopes import Scope, ScopedAuth, scope_of
from sources.highlevel import location_of
from sources.highlevel.credentials import LocationBearerAuth, LocationCredentials

CREDENTIALS = LocationCredentials(own={"loc-a": "tok-a", "loc-b": "tok-b"}, shared="tok-shared")


def _prepared(path: str, scope: Scope | None):
    auth = LocationBearerAuth(CREDENTIALS)
    return Session().prepare_request(Request(
        "GET", f"https://api.example{path}",
        auth=auth if scope is None else ScopedAuth(scope, auth)))


def test_the_token_and_bucket_follow_the_scope_not_the_path():
    # a new endpoint whose path names no location, or another one's
    for path in ("/v2/locations/loc-b/imports", "/social-media-posting/loc-b/csv", "/x"):
        request = _prepared(path, Scope("loc-a", "listing"))
        assert request.headers["Authorization"] == "Bearer tok-a"
        assert scope_of(request) == Scope("loc-a", "listing")
        assert location_of(request) == "location loc-a"


def test_a_request_for_no_location_gets_the_shared_token_and_bucket():
    request = _prepared("/social-media-posting/loc-b/csv", None)
    assert request.headers["Authorization"] == "Bearer tok-shared"
    assert scope_of(request) is None and location_of(request) == "highlevel"
