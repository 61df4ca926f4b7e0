"""ClearTax e-way bill upload activity status as documented (seed 004, api-notes)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from urllib.parse import unquote

from simulator.jobs import ScriptedJobs
from simulator.server import LoggedRequest, Reply, Route, SimRequest

FINISHED = frozenset({"PROCESSED", "ABORTED"})
CONTRACT = {"INIT": "pending", "UPLOADED": "pending", "QUEUED": "pending",
            "PROCESSING": "running", "PROCESSED": "succeeded", "ABORTED": "failed"}
TRAJECTORIES = (["INIT", "UPLOADED", "QUEUED", "PROCESSING", "PROCESSED"],
                ["UPLOADED", "PROCESSING", "PROCESSED"], ["QUEUED", "PROCESSED"],
                ["INIT", "PROCESSING", "ABORTED"])
ENTITIES = ("te-mumbai-01", "te-pune-02", "te-delhi-03")
ABORT_REASONS = ("Invalid GSTIN of the recipient", "Document date is in the future",
                 "HSN code is missing for item 3", "E-way bill already generated for document")


def _errors(code: int, message: str) -> dict[str, object]:
    return {"errors": {"err_1": {"code": str(code), "message": message,
                                 "error_group_code": 0, "error_id": 0}}}


class ClearTaxFixture:
    """Upload activities keyed by (taxable entity, activity id): an activity asked for under
    another taxable entity is not found, as with the real API."""

    name = "cleartax"
    contract = CONTRACT
    finished = FINISHED

    def __init__(self, token: str = "sim-cleartax-token") -> None:
        self.token = token
        self.activities: ScriptedJobs[tuple[str, str]] = ScriptedJobs()
        self._made = 0

    # --- facts (simulator.facts.PolledFacts) -------------------------------------------------
    def job(self, steps: list[str]) -> str:
        entity, activity = self.unknown_job().split("/")
        return self.add(entity, activity, steps, queued=2)

    def unknown_job(self) -> str:
        self._made += 1
        return f"te-facts-{self._made % 2}/act-facts-{self._made}"

    def polled_job(self, request: LoggedRequest) -> str | None:
        parts = request.path.split("/")  # /api/v0.2/taxable_entities/TE/upload_activity/ID/status
        if request.provider != self.name or len(parts) != 8 or parts[-1] != "status":
            return None
        return f"{unquote(parts[4])}/{unquote(parts[6])}"

    def add(self, entity: str, activity: str, steps: list[str], queued: int = 3,
            error: str = "Invalid GSTIN of the recipient") -> str:
        """An activity walking through `steps`; returns its `ENTITY/ACTIVITY` reference."""
        self.activities.add((entity, activity), steps, queued=queued, error=error)
        return f"{entity}/{activity}"

    def generate(self, n: int, seed: int = 4, entities: tuple[str, ...] = ENTITIES
                 ) -> list[str]:
        rng = random.Random(seed)
        return [self.add(rng.choice(entities), str(uuid.UUID(int=rng.getrandbits(128))),
                         rng.choice(TRAJECTORIES), queued=rng.randint(1, 40),
                         error=rng.choice(ABORT_REASONS)) for _ in range(n)]

    def advance(self) -> None:
        self.activities.advance()

    def routes(self) -> Iterable[Route]:
        return [Route("GET", r"/api/v0\.2/taxable_entities/(?P<entity>[^/]+)/upload_activity/"
                             r"(?P<activity>[^/]+)/status", self._status)]

    def _status(self, req: SimRequest, entity: str, activity: str) -> Reply:
        if req.header("X-Cleartax-Auth-Token") != self.token:
            return Reply(401, _errors(401, "Invalid auth token"))
        job = self.activities.get((entity, activity))
        if job is None:
            return Reply(404, _errors(404, f"No activity found for id {activity}"))
        status = job.status
        return Reply(200, {
            "activityId": activity,
            "status": status,
            "errorMessage": job.data["error"] if status == "ABORTED" else None,
            "queuedCount": job.data["queued"] if status in ("QUEUED", "PROCESSING") else 0,
        })


FIXTURE = ClearTaxFixture
