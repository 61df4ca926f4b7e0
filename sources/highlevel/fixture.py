"""HighLevel Social Planner CSV import endpoints, as documented (seeds 000/002, OpenAPI spec)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from simulator.server import LoggedRequest, Reply, Route, SimRequest
from sources.highlevel.oauth_fixture import OAuthApp

VERSION = "2021-07-28"
UNFINISHED = ("pending", "in_review", "in_progress", "importing")
FINISHED = ("completed", "failed", "deleted")
# how an unfinished import moves on when the simulator advances
NEXT_STATUS = {"pending": "in_progress", "in_review": "in_progress", "in_progress": "importing"}
POST_ERRORS = (
    "Account is disconnected, please reconnect",
    "Media URL is not reachable",
    "Image is larger than 10MB",
    "Schedule date is in the past",
    "Text exceeds the platform character limit",
)
_LOC = r"/social-media-posting/(?P<location_id>[^/]+)/csv"
RATE_WINDOW_S = 10.0
RATE_MAX = 100


def _iso(dt: datetime) -> str:
    utc = dt.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class HighLevelFixture:
    """Seeded synthetic CSV imports per location, newest first, whose statuses can advance.

    `page_cap` caps rows per page below the requested `limit` (as a server may);
    `csvs_as_object` answers `results.csvs` as one object per page, as the official schema types
    it (an empty page is still `[]`). More than `rate_max` requests for one location within
    `rate_window` seconds are answered 429, as the documented burst limit is.
    """

    name = "highlevel"
    # the documented statuses (seed 002) and what they mean; `deleted` is what an import
    # removed from the listing becomes (`gone`)
    contract = {"pending": "pending", "in_review": "pending", "in_progress": "running",
                "importing": "running", "completed": "succeeded", "failed": "failed"}
    finished = frozenset({"completed", "failed"})
    gone = ("deleted", "cancelled")

    def __init__(
        self,
        locations: dict[str, int] | None = None,
        token: str = "sim-highlevel-token",
        seed: int = 7,
        page_cap: int | None = None,
        csvs_as_object: bool = False,
        now: datetime | None = None,
        unfinished_share: float = 0.25,
        failure_share: float = 0.2,
        rate_max: int = RATE_MAX,
        rate_window: float = RATE_WINDOW_S,
        reported_count: int | None = None,
        location_tokens: dict[str, str] | None = None,
        oauth: OAuthApp | None = None,
    ) -> None:
        self.token = token  # accepted for every location (an agency-wide test token)
        # sub-account tokens (Private Integration Tokens): each accepted for its location only
        self.location_tokens = dict(location_tokens or {})
        self.oauth = oauth  # an agency's Marketplace app: its OAuth endpoints and tokens
        # Social Planner requests (counted from 1) before which every OAuth token expires
        self.expire_tokens_after: set[int] = set()
        self.refused_locations: set[str] = set()  # 403 for every token (no access granted)
        # location -> requests answered before `X-RateLimit-Daily-Remaining: 0`
        self.daily_quota: dict[str, int] = {}
        self._served = 0
        self._served_per_location: dict[str, int] = {}
        self.reported_count = reported_count  # a `count` that lies (hostile mode)
        self.rate_max = rate_max
        self.rate_window = rate_window
        self.page_cap = page_cap
        self.csvs_as_object = csvs_as_object
        self.failure_share = failure_share
        self.now = now or datetime.now(timezone.utc).replace(microsecond=0)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._hits: dict[str, list[float]] = {}
        self.imports: dict[str, list[dict[str, Any]]] = {}
        self._scripted: dict[str, list[str]] = {}  # import -> its statuses still to come
        for location, n in (locations or {"loc_demo_1": 25}).items():
            self.imports[location] = []
            self.add_imports(location, n, unfinished_share=unfinished_share, spread_days=30)

    # --- data -------------------------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        """Generate from `seed` from now on (other ids than before)."""
        self._rng.seed(seed)

    def add_imports(self, location: str, n: int, unfinished_share: float = 1.0,
                    spread_days: float = 0.0) -> list[dict[str, Any]]:
        """Create `n` imports at `location`, newest first, and return them."""
        rng = self._rng
        created = []
        with self._lock:
            existing = self.imports.setdefault(location, [])
            newest = (datetime.fromisoformat(existing[0]["createdAt"].replace("Z", "+00:00"))
                      if existing else self.now - timedelta(days=spread_days))
            step = timedelta(days=spread_days) / max(n, 1) if spread_days else timedelta(minutes=1)
            for i in range(n):
                at = newest + step * (i + 1)
                if rng.random() < unfinished_share:
                    status = rng.choice(UNFINISHED)
                else:
                    status = "failed" if rng.random() < self.failure_share else "completed"
                user = f"usr{rng.randrange(16**8):08x}"
                created.append({
                    "_id": f"{rng.randrange(16**24):024x}",
                    "locationId": location,
                    "fileName": f"campaign-{at:%Y%m%d}-{i:03d}.csv",
                    "accountIds": [f"acc_{location}_{rng.randrange(10**6):06d}"
                                   for _ in range(rng.randint(1, 3))],
                    "file": f"https://storage.example.invalid/{location}/csv/{i}.csv",
                    "status": status,
                    "count": rng.randint(1, 12),
                    "createdBy": user,
                    "traceId": f"trace{rng.randrange(16**12):012x}",
                    "originId": f"origin{rng.randrange(16**8):08x}",
                    "approver": user,
                    "createdAt": _iso(at),
                })
            existing[:0] = reversed(created)  # the listing is newest first
        return created

    def find(self, csv_id: str) -> dict[str, Any] | None:
        for rows in self.imports.values():
            for row in rows:
                if row.get("_id") == csv_id:
                    return row
        return None

    def set_status(self, csv_id: str, status: str) -> None:
        row = self.find(csv_id)
        if row is None:
            raise KeyError(csv_id)
        row["status"] = status

    # --- facts (simulator.facts.ListedFacts) -------------------------------------------------
    def scope(self) -> str:
        location = f"loc_facts_{len(self.imports) + 1}"
        self.imports[location] = []
        return location

    def item(self, scope: str, steps: list[str], rows: int = 3) -> str:
        (row,) = self.add_imports(scope, 1, unfinished_share=0.0)
        row.update(status=steps[0], count=rows)
        self._scripted[row["_id"]] = list(steps[1:])
        return row["_id"]

    def delete(self, item: str) -> None:
        with self._lock:
            for rows in self.imports.values():
                rows[:] = [r for r in rows if r.get("_id") != item]

    def unknown_scope(self) -> str:
        self.refused_locations.add("loc_no_access")
        return "loc_no_access"

    def read(self, request: LoggedRequest) -> tuple[str, str] | None:
        parts = [unquote(p) for p in request.path.split("/")]
        if request.provider != self.name or len(parts) < 4 or parts[1:4:2] != [
                "social-media-posting", "csv"] or request.method != "GET":
            return None
        return ("listing", parts[2]) if len(parts) == 4 else ("children", parts[4])

    def advance(self) -> None:
        with self._lock:
            for rows in self.imports.values():
                for row in rows:
                    status = row["status"]
                    if (steps := self._scripted.get(row.get("_id"))) is not None:
                        if steps:
                            row["status"] = steps.pop(0)
                    elif status == "importing":
                        failed = self._rng.random() < self.failure_share
                        row["status"] = "failed" if failed else "completed"
                    elif status in NEXT_STATUS:
                        row["status"] = NEXT_STATUS[status]

    def posts(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The posts of one import, derived from its id so repeated reads agree."""
        rng = random.Random(row.get("_id"))
        try:  # a test may have broken the stored record on purpose
            created = datetime.fromisoformat(str(row.get("createdAt")).replace("Z", "+00:00"))
        except ValueError:
            created = self.now
        count = row.get("count")
        out = []
        for i in range(count if isinstance(count, int) else 0):
            post: dict[str, Any] = {
                "accountIds": row["accountIds"][: rng.randint(1, len(row["accountIds"]))],
                "medias": [{"url": f"https://media.example.invalid/{row['_id']}/{i}.png",
                            "type": "image/png", "size": rng.randint(10_000, 900_000)}],
                "scheduleDate": _iso(created + timedelta(days=1, hours=i)),
                "summary": f"Post {i + 1} of {row['fileName']}",
                "type": "post",
            }
            if row["status"] == "failed" and rng.random() < 0.7:
                post["errorMessage"] = rng.choice(POST_ERRORS)
            out.append(post)
        return out

    # --- HTTP -------------------------------------------------------------------------------
    def routes(self) -> Iterable[Route]:
        return [
            Route("GET", _LOC, self._list),
            Route("GET", _LOC + r"/(?P<csv_id>[^/]+)", self._get_posts),
            Route("DELETE", _LOC + r"/(?P<csv_id>[^/]+)", self._delete),
            # the app may be swapped (a re-authorization): looked up on every request
            *(Route(route.method, route.pattern, self._oauth_route(index))
              for index, route in enumerate(OAuthApp().routes())),
        ]

    def _oauth_route(self, index: int) -> Any:
        def handle(req: SimRequest) -> Reply:
            if self.oauth is None:
                return Reply(404, {"statusCode": 404, "message": "Not Found"})
            return self.oauth.routes()[index].handler(req)
        return handle

    def _auth_refusal(self, req: SimRequest, location_id: str) -> Reply | None:
        """The refusal of a request's token for this location, None if it may go on: agency
        OAuth tokens expired, for another location or without the scope; sub-account tokens
        of another location; the locations that refuse every token."""
        sent = (req.header("Authorization") or "").removeprefix("Bearer ")
        with self._lock:
            self._served += 1
            expire = self._served in self.expire_tokens_after
        if self.oauth is not None and expire:
            self.oauth.expire_all()
        if location_id in self.refused_locations:
            return Reply(403, {"statusCode": 403, "message":
                               "The token does not have access to this location."})
        if self.oauth is not None and self.oauth.knows(sent):
            return self.oauth.check(sent, location_id, write=req.method == "DELETE")
        bound = {t: loc for loc, t in self.location_tokens.items()}
        if sent in bound and bound[sent] != location_id:
            return Reply(401, {"statusCode": 401, "error": "Unauthorized",
                               "message": "This location is not accessible from this token."})
        if sent != self.token and sent not in bound:
            return Reply(401, {"statusCode": 401, "error": "Unauthorized",
                               "message": "Invalid token: access token is invalid"})
        return None

    def _guard(self, req: SimRequest, location_id: str) -> Reply | dict[str, str]:
        """Auth, Version header, rate limit and location checks shared by every endpoint: the
        error reply, or the rate-limit headers of a request that may go on."""
        if (refusal := self._auth_refusal(req, location_id)) is not None:
            return refusal
        if req.header("Version") != VERSION:
            return Reply(400, {"statusCode": 400, "message": "Bad Request"})
        headers = self._rate_headers(location_id)
        if headers is None:
            return Reply(429, {"statusCode": 429, "message": "Too Many Requests"},
                         self._headers(location_id, 0))
        if location_id not in self.imports:
            return _unprocessable(f"location {location_id} not found")
        return headers

    def _rate_headers(self, location_id: str) -> dict[str, str] | None:
        """Counts a request in the location's window; None when it is over the limit."""
        now = time.monotonic()
        with self._lock:
            hits = [t for t in self._hits.get(location_id, []) if now - t < self.rate_window]
            if len(hits) >= self.rate_max:
                self._hits[location_id] = hits
                return None
            hits.append(now)
            self._hits[location_id] = hits
        return self._headers(location_id, self.rate_max - len(hits))

    def _headers(self, location_id: str, remaining: int) -> dict[str, str]:
        with self._lock:
            used = self._served_per_location[location_id] = \
                self._served_per_location.get(location_id, 0) + 1
        quota = self.daily_quota.get(location_id)
        daily = 199_000 if quota is None else max(quota - used, 0)
        return {
            "X-RateLimit-Max": str(self.rate_max),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Interval-Milliseconds": str(int(self.rate_window * 1000)),
            "X-RateLimit-Limit-Daily": "200000",
            "X-RateLimit-Daily-Remaining": str(daily),
        }

    def _paged(self, req: SimRequest, location_id: str
               ) -> tuple[int, int, dict[str, str]] | Reply:
        """The shared checks, then skip/limit with the page cap applied."""
        headers = self._guard(req, location_id)
        if isinstance(headers, Reply):
            return headers
        try:
            skip = int(req.query.get("skip", "0"))
            limit = int(req.query.get("limit", "10"))
        except ValueError:
            return _unprocessable("skip and limit must be numeric strings")
        if skip < 0 or limit < 1:
            return _unprocessable("skip must be >= 0 and limit >= 1")
        if self.page_cap:
            limit = min(limit, self.page_cap)
        return skip, limit, headers

    def _list(self, req: SimRequest, location_id: str) -> Reply:
        page = self._paged(req, location_id)
        if isinstance(page, Reply):
            return page
        skip, limit, headers = page
        with self._lock:
            rows = self.imports[location_id]
            total = len(rows)
            if self.csvs_as_object:
                chunk = [dict(r) for r in rows[skip: skip + 1]]
                # no object can stand for "nothing" (the schema requires _id): an empty page is []
                csvs: Any = chunk[0] if chunk else []
            else:
                csvs = [dict(r) for r in rows[skip: skip + limit]]
        return Reply(200, {"success": True, "statusCode": 200,
                           "message": "Fetched CSV Upload Status",
                           "results": {"csvs": csvs, "count": total
                                       if self.reported_count is None
                                       else self.reported_count}},
                     headers)

    def _get_posts(self, req: SimRequest, location_id: str, csv_id: str) -> Reply:
        page = self._paged(req, location_id)
        if isinstance(page, Reply):
            return page
        skip, limit, headers = page
        row = next((r for r in self.imports[location_id] if r.get("_id") == csv_id), None)
        if row is None:
            return _unprocessable(f"csv {csv_id} not found")
        posts = self.posts(row)
        return Reply(200, {"success": True, "statusCode": 200, "message": "Fetched CSV Post",
                           "results": {"csv": dict(row), "count": len(posts),
                                       "posts": posts[skip: skip + limit]}},
                     headers)

    def _delete(self, req: SimRequest, location_id: str, csv_id: str) -> Reply:
        headers = self._guard(req, location_id)
        if isinstance(headers, Reply):
            return headers
        with self._lock:
            rows = self.imports[location_id]
            row = next((r for r in rows if r.get("_id") == csv_id), None)
            if row is None:
                return _unprocessable(f"csv {csv_id} not found")
            rows.remove(row)
        # the documented DELETE answer drops _id and createdAt
        csv = {k: v for k, v in row.items() if k not in ("_id", "createdAt")}
        return Reply(200, {"success": True, "statusCode": 200, "message": "Deleted Post",
                           "results": {"csv": csv}}, headers)


def _unprocessable(reason: str) -> Reply:
    return Reply(422, {"statusCode": 422, "message": [reason], "error": "Unprocessable Entity"})


FIXTURE = HighLevelFixture
