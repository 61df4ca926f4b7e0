"""Acme's import status API, simulated: `GET /v2/imports/{id}` with an `X-Acme-Key` header."""

from __future__ import annotations

import random
from collections.abc import Iterable

from simulator.jobs import ScriptedJobs
from simulator.server import Reply, Route, SimRequest

FINISHED = frozenset({"DONE", "ERROR"})


class AcmeFixture:
    name = "acme"

    def __init__(self, token: str = "sim-acme-key") -> None:
        self.token = token
        self.jobs: ScriptedJobs[str] = ScriptedJobs()

    def add(self, job_id: str, steps: list[str], error: str = "row 3: bad date") -> str:
        self.jobs.add(job_id, steps, error=error)
        return job_id

    def generate(self, n: int, seed: int = 1) -> list[str]:
        rng = random.Random(seed)
        return [self.add(f"imp-{seed}-{i}", rng.choice([["QUEUED", "WORKING", "DONE"],
                                                        ["QUEUED", "ERROR"]]))
                for i in range(n)]

    def advance(self) -> None:
        self.jobs.advance()

    def routes(self) -> Iterable[Route]:
        return [Route("GET", r"/v2/imports/(?P<job_id>[^/]+)", self._status)]

    def _status(self, req: SimRequest, job_id: str) -> Reply:
        if req.header("X-Acme-Key") != self.token:
            return Reply(401, {"error": "bad key"})
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404, {"error": "no such import"})
        done = job.status in FINISHED
        return Reply(200, {"import_id": job_id, "phase": job.status,
                           "rows_ok": 7 if job.status == "DONE" else 0,
                           "rows_failed": 1 if job.status == "ERROR" else 0,
                           "failure": job.data["error"] if job.status == "ERROR" else None,
                           "finished": done})


FIXTURE = AcmeFixture
