"""Unit tests of pure pieces: status mapping, the skip/limit paginator, failure messages."""

from __future__ import annotations

import json

import pytest
import requests

from pipelines.errors import describe_failure, redact
from sources.common.paginators import SkipLimitPaginator
from sources.highlevel import PROVIDER


def _response(body: dict, status: int = 200, url: str = "http://x/social-media-posting/l/csv"
              ) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.url = url
    return response


@pytest.mark.parametrize(("native", "canonical", "terminal"), [
    ("pending", "pending", False), ("in_review", "pending", False),
    ("in_progress", "running", False), ("importing", "running", False),
    ("completed", "succeeded", True), ("failed", "failed", True),
    ("deleted", "cancelled", True), ("paused", "unknown", False), (None, "unknown", False),
    (42, "unknown", False),
])
def test_highlevel_status_map(native, canonical, terminal):
    assert PROVIDER.canonical(native) == canonical
    assert PROVIDER.is_terminal(native) is terminal


@pytest.mark.parametrize(("total", "pages", "expected_skips"), [
    (23, [10, 10, 3], [10, 20]),      # full pages until the total
    (23, [5, 5, 5, 5, 3], [5, 10, 15, 20]),  # server cap below the limit
    (20, [10, 10], [10]),             # exact multiple: stop without an empty page
    (0, [0], []),                     # empty
    (50, [10, 0], [10]),              # total overstated: an empty page stops it
])
def test_skip_limit_paginator_advances_by_rows_received(total, pages, expected_skips):
    paginator = SkipLimitPaginator(limit=10)
    skips = []
    for n in pages:
        paginator.update_state(_response({"results": {"count": total}}), [{}] * n)
        if not paginator.has_next_page:
            break
        skips.append(paginator.current_value)
    assert skips == expected_skips
    assert not paginator.has_next_page


def test_redact_hides_every_occurrence():
    assert redact("a sekret-123 b sekret-123", ["sekret-123", None, ""]) == "a *** b ***"


def test_auth_failure_message_names_provider_and_key_not_secret():
    response = _response({"statusCode": 401, "message": "Invalid token: sekret-123"}, 401)
    error = requests.HTTPError("401", response=response)
    try:
        raise RuntimeError("extract failed") from error
    except RuntimeError as exc:
        text = describe_failure(PROVIDER, exc, ["sekret-123"])
    assert text.startswith("highlevel:")
    assert "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in text
    assert "sekret-123" not in text
