"""Acme's import status API, simulated: `GET /v2/imports/{id}` with an `X-Acme-Key` header, a
JSON:API document (`data.attributes.state`), and 410 Gone for imports past their retention."""

from __future__ import annotations

import random
from collections.abc import Iterable
from urllib.parse import unquote

from simulator.jobs import ScriptedJobs
from simulator.server import LoggedRequest, Reply, Route, SimRequest

FINISHED = frozenset({"DONE", "ERROR"})
CONTRACT = {"QUEUED": "pending", "WORKING": "running", "DONE": "succeeded", "ERROR": "failed"}
EXPIRED = "old-"  # imports past their retention: 410 Gone


class AcmeFixture:
    name = "acme"
    contract = CONTRACT
    finished = FINISHED

    def __init__(self, token: str = "sim-acme-key") -> None:
        self.token = token
        self.jobs: ScriptedJobs[str] = ScriptedJobs()
        self._made = 0

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

    # --- facts (simulator.facts.PolledFacts) -------------------------------------------------
    def job(self, steps: list[str]) -> str:
        self._made += 1
        return self.add(f"imp-f{self._made}", steps)

    def unknown_job(self) -> str:
        self._made += 1
        return f"{EXPIRED if self._made % 2 else 'imp-'}x{self._made}"

    def polled_job(self, request: LoggedRequest) -> str | None:
        if request.provider != self.name or not request.path.startswith("/v2/imports/"):
            return None
        return unquote(request.path.rsplit("/", 1)[1])

    # --- HTTP -------------------------------------------------------------------------------
    def routes(self) -> Iterable[Route]:
        return [Route("GET", r"/v2/imports/(?P<job_id>[^/]+)", self._status)]

    def _status(self, req: SimRequest, job_id: str) -> Reply:
        if req.header("X-Acme-Key") != self.token:
            return Reply(401, {"errors": [{"status": "401", "title": "bad key"}]})
        if job_id.startswith(EXPIRED):
            return Reply(410, {"errors": [{"status": "410", "title": "import expired"}]})
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404, {"errors": [{"status": "404", "title": "no such import"}]})
        return Reply(200, {"data": {"type": "import", "id": job_id, "attributes": {
            "state": job.status,
            "rows_ok": 7 if job.status == "DONE" else 0,
            "rows_failed": 1 if job.status == "ERROR" else 0,
            "failure": job.data["error"] if job.status == "ERROR" else None,
            "finished": job.status in FINISHED}}})


FIXTURE = AcmeFixture
