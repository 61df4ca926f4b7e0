"""Upload-Post status and history endpoints as documented (seed 001, api-notes)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from simulator.jobs import ScriptedJob, ScriptedJobs
from simulator.ratelimit import WindowLimit
from simulator.server import LoggedRequest, Reply, Route, SimRequest

WAITING = ("pending", "queued")
FINISHED = frozenset({"completed", "failed"})
# a finished job with failed platforms is `partial` or `failed` whatever its word (its results)
CONTRACT = {"pending": "pending", "queued": "pending", "processing": "running",
            "in_progress": "running", "completed": "succeeded", "failed": "failed",
            "not_found": "not_found"}
PLATFORMS = ("x", "linkedin", "instagram", "tiktok", "facebook", "youtube", "threads")
PLATFORM_ERRORS = ("Video duration exceeds the platform limit", "Account token expired",
                   "Rate limited by the platform, giving up", "Caption contains a banned hashtag")
STALLED = "Upload appears to have failed (no activity for over 1 hour)"
HISTORY_LIMITS = (10, 20, 50, 100)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class UploadPostFixture:
    """Async uploads (`request`) and scheduled posts (`job`) whose platform results appear as
    their status advances; every result is also an event of the history listing.

    A finished job with some failed platforms reports `completed` (the docs define no word for
    it); a job `stalled` in its last step reports `failed` with no results, as documented.
    """

    name = "upload_post"
    contract = CONTRACT
    finished = FINISHED | {"not_found"}

    def __init__(self, token: str = "sim-upload-post-key", now: datetime | None = None,
                 tick: timedelta = timedelta(minutes=7),
                 rate_limit: WindowLimit | None = None) -> None:
        self.token = token
        self.rate_limit = rate_limit  # none published; a test sets one
        self.now = now or datetime.now(timezone.utc).replace(microsecond=0)
        self.tick = tick
        self.jobs: ScriptedJobs[tuple[str, str]] = ScriptedJobs()
        self.schedule_extra: list[Any] = []  # items a test adds to the schedule listing
        self._made = 0

    # --- facts (simulator.facts.PolledFacts) -------------------------------------------------
    def job(self, steps: list[str]) -> str:
        kind, job_id = self.unknown_job().split(":")
        return self.add(kind, job_id, steps, in_history=False)

    def unknown_job(self) -> str:
        self._made += 1
        return f"{('request', 'job')[self._made % 2]}:facts-{self._made}"

    def polled_job(self, request: LoggedRequest) -> str | None:
        if request.provider != self.name or request.path != "/api/uploadposts/status":
            return None
        kind = "request" if "request_id" in request.query else "job"
        return f"{kind}:{request.query.get(kind + '_id')}"

    # --- data -------------------------------------------------------------------------------
    def add(self, kind: str, job_id: str, steps: list[str],
            platforms: Iterable[str] = ("x", "linkedin"), failures: dict[str, str] | None = None,
            stalled: bool = False, in_history: bool = True, user: str = "brand_main",
            at: datetime | None = None, scheduled_date: datetime | None = None) -> str:
        """A job walking through `steps`; `failures` maps platform -> error for the platforms
        that fail; a scheduled post (`job` with `scheduled_date`) is in the schedule listing
        until it leaves `pending`. Returns its `kind:id` reference."""
        if kind not in ("request", "job"):
            raise ValueError(kind)
        job = self.jobs.add((kind, job_id), steps, platforms=list(platforms),
                            failures=dict(failures or {}), stalled=stalled,
                            in_history=in_history, user=user, revealed={},
                            scheduled_date=scheduled_date)
        self._reveal(job, at or self.now)
        return f"{kind}:{job_id}"

    def generate(self, n: int, seed: int = 1, days: float = 3.0) -> list[str]:
        """`n` jobs created over the last `days`, with a believable mix of outcomes."""
        rng = random.Random(seed)
        refs = []
        for i in range(n):
            platforms = rng.sample(PLATFORMS, rng.randint(1, 4))
            roll = rng.random()
            failures = {}
            if roll < 0.25:
                failures = {p: rng.choice(PLATFORM_ERRORS) for p in platforms
                            if rng.random() < 0.5} or {platforms[0]: PLATFORM_ERRORS[0]}
            steps = rng.choice((["pending", "in_progress", "completed"],
                                ["queued", "processing", "completed"], ["completed"],
                                ["in_progress", "completed"]))
            stalled = roll > 0.95
            if stalled:
                steps = ["pending", "failed"]
            at = self.now - timedelta(days=days) * rng.random()
            refs.append(self.add(rng.choice(("request", "job")), f"up-{seed}-{i:05d}", steps,
                                 platforms, failures, stalled=stalled, at=at,
                                 user=rng.choice(("brand_main", "brand_es", "founder"))))
        return refs

    def _reveal(self, job: ScriptedJob, at: datetime) -> None:
        """Platform results appear as the job progresses, each stamped when it appeared."""
        platforms, revealed = job.data["platforms"], job.data["revealed"]
        if job.status in WAITING or (job.status in FINISHED and job.data["stalled"]):
            shown = 0
        elif job.status in FINISHED:
            shown = len(platforms)
        else:
            shown = max(1, len(platforms) // 2)
        for i, platform in enumerate(platforms[:shown]):
            revealed.setdefault(platform, _iso(at + timedelta(seconds=i)))

    def advance(self) -> None:
        self.now += self.tick
        with self.jobs.lock:
            for key in self.jobs.advance():
                self._reveal(self.jobs.jobs[key], self.now)

    def results(self, job: ScriptedJob) -> list[dict[str, Any]]:
        failures = job.data["failures"]
        out = []
        for platform, at in job.data["revealed"].items():
            ok = platform not in failures
            result: dict[str, Any] = {"platform": platform, "success": ok,
                                      "message": "Published" if ok else failures[platform],
                                      "upload_timestamp": at}
            if not ok:
                result["error_message"] = failures[platform]
            out.append(result)
        return out

    def status_body(self, kind: str, job_id: str, job: ScriptedJob) -> dict[str, Any]:
        results = self.results(job)
        body: dict[str, Any] = {
            f"{kind}_id": job_id, "status": job.status, "completed": len(results),
            "total": len(job.data["platforms"]), "results": results,
        }
        if job.status == "pending" and kind == "request":
            body["total"] = None  # as documented for a request nothing has happened to yet
        if results:
            body["last_update"] = max(r["upload_timestamp"] for r in results)
        if job.status in FINISHED and job.data["stalled"]:
            body["message"] = STALLED
        return body

    def history(self) -> list[dict[str, Any]]:
        """Every platform upload event, most recent first."""
        events = []
        with self.jobs.lock:
            for (kind, job_id), job in self.jobs.jobs.items():
                if not job.data["in_history"]:
                    continue
                for result in self.results(job):
                    event = {
                        "platform": result["platform"], "media_type": "video",
                        "upload_timestamp": result["upload_timestamp"],
                        "success": result["success"],
                        "error_message": result.get("error_message"),
                        "post_url": (f"https://{result['platform']}.example.invalid/p/{job_id}"
                                     if result["success"] else None),
                        "platform_post_id": f"{result['platform']}-{job_id}"
                                            if result["success"] else None,
                        "profile_username": job.data["user"],
                        f"{kind}_id": job_id,
                        "request_total_platforms": len(job.data["platforms"]),
                    }
                    events.append(event)
        events.sort(key=lambda e: (e["upload_timestamp"], e.get("request_id") or e["job_id"],
                                   e["platform"]), reverse=True)
        return events

    def schedule(self) -> list[dict[str, Any]]:
        """Scheduled posts not yet run, as `GET /api/uploadposts/schedule` lists them."""
        with self.jobs.lock:
            return [{"job_id": job_id, "scheduled_date": _iso(job.data["scheduled_date"]),
                     "post_type": "video", "profile_username": job.data["user"],
                     "title": f"Scheduled post {job_id}",
                     "preview_url": f"https://cdn.example.invalid/preview/{job_id}.jpg"}
                    for (kind, job_id), job in self.jobs.jobs.items()
                    if kind == "job" and job.data.get("scheduled_date") is not None
                    and job.status == "pending"] + list(self.schedule_extra)

    # --- HTTP -------------------------------------------------------------------------------
    def routes(self) -> Iterable[Route]:
        return [Route("GET", r"/api/uploadposts/status", self._status),
                Route("GET", r"/api/uploadposts/history", self._history),
                Route("GET", r"/api/uploadposts/schedule", self._schedule)]

    def _schedule(self, req: SimRequest) -> Reply:
        if (bad := self._unauthorized(req)) is not None:
            return bad
        return Reply(200, self.schedule())

    def _unauthorized(self, req: SimRequest) -> Reply | None:
        if req.header("Authorization") != f"Apikey {self.token}":
            return Reply(401, {"success": False, "message": "Invalid or expired token"})
        return None

    def _status(self, req: SimRequest) -> Reply:
        if self.rate_limit is None:
            return self._status_answer(req)
        headers, refused = self.rate_limit.take()
        reply = refused or self._status_answer(req)
        reply.headers.update(headers)
        return reply

    def _status_answer(self, req: SimRequest) -> Reply:
        if (bad := self._unauthorized(req)) is not None:
            return bad
        kind = next((k for k in ("request", "job") if req.query.get(f"{k}_id")), None)
        if kind is None:
            return Reply(400, {"error": "request_id or job_id is required"})
        job_id = req.query[f"{kind}_id"]
        with self.jobs.lock:
            job = self.jobs.get((kind, job_id))
            if job is None:
                return Reply(404, {f"{kind}_id": job_id, "status": "not_found",
                                   "message": "No upload request found with this ID"})
            return Reply(200, self.status_body(kind, job_id, job))

    def _history(self, req: SimRequest) -> Reply:
        if (bad := self._unauthorized(req)) is not None:
            return bad
        try:
            page = int(req.query.get("page", "1"))
        except ValueError:
            page = 0
        if page < 1:
            return Reply(400, {"error": "Invalid page"})
        try:
            limit = int(req.query.get("limit", "10"))
        except ValueError:
            limit = 0
        if limit not in HISTORY_LIMITS:
            return Reply(400, {"error": "Invalid limit"})
        events = self.history()
        return Reply(200, {"history": events[(page - 1) * limit: page * limit],
                           "total": len(events), "page": page, "limit": limit})


FIXTURE = UploadPostFixture
