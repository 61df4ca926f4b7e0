"""Lobstr.io `GET /v1/tasks/upload/{id}` as documented (seed 003, api-notes)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from urllib.parse import unquote

from simulator.jobs import ScriptedJobs
from simulator.ratelimit import WindowLimit
from simulator.server import LoggedRequest, Reply, Route, SimRequest

FINISHED = frozenset({"SUCCESS", "FAILURE"})
CONTRACT = {"PENDING": "pending", "PROGRESS": "running", "SUCCESS": "succeeded",
            "FAILURE": "failed"}
STATUS_PATH = "/v1/tasks/upload/"
TRAJECTORIES = (["PENDING", "PROGRESS", "SUCCESS"], ["PENDING", "SUCCESS"],
                ["PROGRESS", "SUCCESS"], ["PENDING", "PROGRESS", "FAILURE"])


class LobstrFixture:
    """Upload tasks keyed by their 32-hex id; 200 with `meta` once finished, 202 before."""

    name = "lobstr"
    contract = CONTRACT
    finished = FINISHED

    def __init__(self, token: str = "sim-lobstr-key", rate_limit: WindowLimit | None = None
                 ) -> None:
        self.token = token
        self.rate_limit = rate_limit  # documented: 90/min on /v1/tasks; a test sets it
        self.tasks: ScriptedJobs[str] = ScriptedJobs()
        self._made = 0

    # --- facts (simulator.facts.PolledFacts) -------------------------------------------------
    def job(self, steps: list[str]) -> str:
        return self.add(self.unknown_job(), steps, valid=8)

    def unknown_job(self) -> str:
        self._made += 1
        return f"{0xC0FFEE << 96 | self._made:032x}"

    def polled_job(self, request: LoggedRequest) -> str | None:
        if request.provider != self.name or not request.path.startswith(STATUS_PATH):
            return None
        return unquote(request.path[len(STATUS_PATH):])

    def add(self, task_id: str, steps: list[str], valid: int = 8, invalid: int = 0,
            duplicates: int = 0) -> str:
        """A task walking through `steps`; the counts are reported once it has finished."""
        self.tasks.add(task_id, steps, meta={"duplicates": duplicates,
                                             "inserted": valid - duplicates,
                                             "invalid": invalid, "valid": valid})
        return task_id

    def generate(self, n: int, seed: int = 3) -> list[str]:
        rng = random.Random(seed)
        ids = []
        for _ in range(n):
            valid = rng.randint(1, 500)
            duplicates = rng.randint(0, valid // 10)
            ids.append(self.add(f"{rng.randrange(16**32):032x}", rng.choice(TRAJECTORIES),
                                valid=valid, invalid=rng.choice((0, 0, 0, rng.randint(1, 40))),
                                duplicates=duplicates))
        return ids

    def advance(self) -> None:
        self.tasks.advance()

    def routes(self) -> Iterable[Route]:
        return [Route("GET", r"/v1/tasks/upload/(?P<task_id>[^/]+)", self._status)]

    def _status(self, req: SimRequest, task_id: str) -> Reply:
        if self.rate_limit is None:
            return self._status_answer(req, task_id)
        headers, refused = self.rate_limit.take()
        reply = refused or self._status_answer(req, task_id)
        reply.headers.update(headers)
        return reply

    def _status_answer(self, req: SimRequest, task_id: str) -> Reply:
        if req.header("Authorization") != f"Token {self.token}":
            return Reply(401, {"error": "Invalid token."})
        task = self.tasks.get(task_id)
        if task is None:
            return Reply(404, {"error": {"message": "Upload task not found",
                                         "type": "not_found_error", "param": "upload_task_id"}})
        done = task.status in FINISHED
        return Reply(200 if done else 202, {
            "id": task_id, "object": "task_upload", "state": task.status,
            "meta": dict(task.data["meta"]) if done else None})


FIXTURE = LobstrFixture
