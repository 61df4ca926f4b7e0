"""The HighLevel simulator answers as HighLevel's official OpenAPI description says.

The spec (tests/openapi/highlevel, copied unchanged from GoHighLevel/highlevel-api-docs) contradicts
itself in three places, corrected here in memory and nowhere else:
- `results.csvs` of get-upload-status is typed as ONE import although the call lists many: an array
  of imports is accepted as well as the single object;
- `CSVPostSchema.type` and `CsvResponse.status` are typed `object` while their own examples (and the
  documented status values) are strings.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from simulator import Fault, Simulator
from sources.highlevel.fixture import HighLevelFixture

SPEC_DIR = Path(__file__).parent / "openapi" / "highlevel" / "apps"
OFFICIAL_ORIGIN = "https://services.leadconnectorhq.com"
TOKEN = "sim-token-openapi"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Version": "2021-07-28"}


def _corrected_spec() -> dict:
    spec = json.loads((SPEC_DIR / "social-media-posting.json").read_text())
    schemas = spec["components"]["schemas"]
    one = copy.deepcopy(schemas["GetUploadStatusResponseSchema"]["properties"]["csvs"])
    schemas["GetUploadStatusResponseSchema"]["properties"]["csvs"] = {
        "oneOf": [one, {"type": "array", "items": {"$ref": "#/components/schemas/CSVImportSchema"}}]
    }
    schemas["CSVPostSchema"]["properties"]["type"]["type"] = "string"
    schemas["CsvResponse"]["properties"]["status"]["type"] = "string"
    return spec


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    # the spec's bearer scheme carries `name`/`in`, which strict spec validation rejects; the
    # response schemas are what is checked here
    return OpenAPI.from_dict(_corrected_spec(), base_uri=(SPEC_DIR / "x.json").as_uri(),
                             config=Config(spec_validator_cls=None))


@pytest.fixture
def sim():
    fixture = HighLevelFixture(locations={"loc1": 7, "empty": 0}, token=TOKEN, page_cap=3)
    with Simulator(fixture) as running:
        yield running


def _check(openapi: OpenAPI, response: requests.Response) -> None:
    # the spec's server is the official origin: ask it about the same path there
    request = response.request
    request.url = request.url.replace(response.url.split("/social-media-posting")[0],
                                      OFFICIAL_ORIGIN)
    openapi.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response))


def _get(sim: Simulator, path: str, headers=HEADERS, method="GET", **params) -> requests.Response:
    return requests.request(method, sim.base_url + path, headers=headers, params=params,
                            timeout=10)


@pytest.mark.parametrize("csvs_as_object", [False, True])
def test_listing_pages_match_the_spec(openapi, sim, csvs_as_object):
    sim.fixtures["highlevel"].csvs_as_object = csvs_as_object
    for skip in range(0, 8, 3):
        response = _get(sim, "/social-media-posting/loc1/csv", skip=str(skip), limit="10")
        assert response.status_code == 200
        _check(openapi, response)
    empty = _get(sim, "/social-media-posting/empty/csv")
    assert empty.json()["results"]["count"] == 0
    _check(openapi, empty)


def test_posts_and_delete_match_the_spec(openapi, sim):
    csv_id = sim.fixtures["highlevel"].imports["loc1"][0]["_id"]
    posts = _get(sim, f"/social-media-posting/loc1/csv/{csv_id}", skip="0", limit="2")
    assert posts.status_code == 200 and len(posts.json()["results"]["posts"]) <= 2
    _check(openapi, posts)
    deleted = _get(sim, f"/social-media-posting/loc1/csv/{csv_id}", method="DELETE")
    assert deleted.status_code == 200
    _check(openapi, deleted)
    again = _get(sim, f"/social-media-posting/loc1/csv/{csv_id}", method="DELETE")
    assert again.status_code == 422


def test_error_bodies_match_the_spec(openapi, sim):
    bad_token = _get(sim, "/social-media-posting/loc1/csv",
                     headers={**HEADERS, "Authorization": "Bearer wrong"})
    assert bad_token.status_code == 401
    assert bad_token.json() == {"statusCode": 401, "error": "Unauthorized",
                                "message": "Invalid token: access token is invalid"}
    _check(openapi, bad_token)
    no_version = _get(sim, "/social-media-posting/loc1/csv",
                      headers={"Authorization": HEADERS["Authorization"]})
    assert no_version.status_code == 400
    _check(openapi, no_version)
    bad_location = _get(sim, "/social-media-posting/nowhere/csv")
    assert bad_location.status_code == 422
    _check(openapi, bad_location)


def test_rate_limit_headers_and_injected_429(sim):
    first = _get(sim, "/social-media-posting/loc1/csv")
    assert first.headers["X-RateLimit-Max"] == "100"
    assert int(first.headers["X-RateLimit-Remaining"]) == 99
    assert first.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
    sim.inject(Fault(429, r".*/csv", retry_after="2"))
    limited = _get(sim, "/social-media-posting/loc1/csv")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert _get(sim, "/social-media-posting/loc1/csv").status_code == 200


def test_responses_are_not_stalled_by_nagle(sim):
    """Keep-alive responses must not wait ~40 ms each for a delayed ACK."""
    import time

    session = requests.Session()
    session.headers.update(HEADERS)
    url = sim.base_url + "/social-media-posting/loc1/csv"
    session.get(url, timeout=10)
    started = time.perf_counter()
    for _ in range(20):
        session.get(url, timeout=10)
    per_request = (time.perf_counter() - started) / 20
    assert per_request < 0.02, f"{per_request * 1000:.1f} ms per keep-alive request"


def test_a_simulator_started_twice_leaves_no_serving_thread_behind():
    """`with Simulator(...).start()` starts it twice: one loop serves, and stop() ends it (a
    second loop outlived shutdown() and spun on the closed socket for the whole session)."""
    import threading
    import time

    from simulator import Simulator

    def serving() -> int:
        return sum(1 for t in threading.enumerate() if "serve_forever" in t.name)

    before = serving()
    with Simulator().start() as sim:
        assert serving() == before + 1 and sim.base_url.startswith("http://127.0.0.1:")
    deadline = time.monotonic() + 5
    while serving() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert serving() == before
