"""Beta's batch API, simulated: `GET /v1/accounts/{account}/batches?offset=&limit=` (newest
first, `{"data": [...], "meta": {"total": n}}`) and `GET .../batches/{id}/rows`, with an
`X-Beta-Key` header; a deleted batch leaves the listing, an unknown account answers 404."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from simulator.jobs import ScriptedJobs
from simulator.server import LoggedRequest, Reply, Route, SimRequest

FINISHED = frozenset({"done", "failed"})
CONTRACT = {"queued": "pending", "running": "running", "done": "succeeded",
            "failed": "failed"}


class BetaFixture:
    name = "beta"
    contract = CONTRACT
    finished = FINISHED
    gone = ("deleted", "cancelled")  # native and canonical status of a batch deleted

    def __init__(self, token: str = "sim-beta-key") -> None:
        self.token = token
        self.batches: ScriptedJobs[str] = ScriptedJobs()
        self.accounts: dict[str, list[str]] = {}  # account -> batch ids, oldest first
        self._made = 0
        # batches an hour apart, the first ten days ago
        self.start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=10)

    # --- facts (simulator.facts.ListedFacts) -------------------------------------------------
    def scope(self) -> str:
        """A new account, its listing empty."""
        account = f"acct-{len(self.accounts) + 1}"
        self.accounts[account] = []
        return account

    def item(self, scope: str, steps: list[str], rows: int = 3) -> str:
        """A new batch of `scope`, newer than every other, walking through `steps`."""
        self._made += 1
        batch = f"b{self._made:05d}"
        self.batches.add(batch, steps, account=scope, rows=rows,
                         created=self.start + timedelta(hours=self._made))
        self.accounts[scope].append(batch)
        return batch

    def delete(self, item: str) -> None:
        job = self.batches.get(item)
        self.accounts[job.data["account"]].remove(item)

    def unknown_scope(self) -> str:
        return "acct-unknown"

    def read(self, request: LoggedRequest) -> tuple[str, str] | None:
        """("listing", account) or ("children", batch) for a logged request, else None."""
        parts = [unquote(p) for p in request.path.split("/")]
        if request.provider != self.name or len(parts) < 5 or parts[4] != "batches":
            return None
        return ("listing", parts[3]) if len(parts) == 5 else ("children", parts[5])

    def generate(self, n: int, seed: int = 1) -> list[str]:
        rng = random.Random(seed)
        scopes = list(self.accounts) or [self.scope(), self.scope()]
        for _ in range(n):
            self.item(rng.choice(scopes), rng.choice([["queued", "running", "done"],
                                                      ["queued", "failed"], ["done"]]),
                      rows=rng.randint(1, 4))
        return []  # listed: nothing to track

    def advance(self) -> None:
        self.batches.advance()

    # --- HTTP -------------------------------------------------------------------------------
    def routes(self) -> Iterable[Route]:
        return [Route("GET", r"/v1/accounts/(?P<account>[^/]+)/batches", self._listing),
                Route("GET", r"/v1/accounts/(?P<account>[^/]+)/batches/(?P<batch>[^/]+)/rows",
                      self._rows)]

    def _refused(self, req: SimRequest, account: str) -> Reply | None:
        if req.header("X-Beta-Key") != self.token:
            return Reply(401, {"error": "bad key"})
        if account not in self.accounts:
            return Reply(404, {"error": f"no account {account}"})
        return None

    def _page(self, req: SimRequest, items: list[Any]) -> Reply:
        offset, limit = int(req.query.get("offset", 0)), int(req.query.get("limit", 10))
        return Reply(200, {"data": items[offset:offset + limit], "meta": {"total": len(items)}})

    def _listing(self, req: SimRequest, account: str) -> Reply:
        if (refused := self._refused(req, account)) is not None:
            return refused
        with self.batches.lock:
            batches = [self._batch(b) for b in reversed(self.accounts[account])]
        return self._page(req, batches)

    def _batch(self, batch: str) -> dict[str, Any]:
        job = self.batches.get(batch)
        failed = 1 if job.status == "failed" else 0
        return {"id": batch, "account": job.data["account"], "state": job.status,
                "created_at": job.data["created"].isoformat().replace("+00:00", "Z"),
                "rows_total": job.data["rows"], "rows_failed": failed}

    def _rows(self, req: SimRequest, account: str, batch: str) -> Reply:
        if (refused := self._refused(req, account)) is not None:
            return refused
        job = self.batches.get(batch)
        if job is None or batch not in self.accounts[account]:
            return Reply(404, {"error": f"no batch {batch}"})
        rows = [{"line": i + 1, "error": "bad date" if job.status == "failed" and i == 0
                 else None} for i in range(job.data["rows"])]
        return self._page(req, rows)


FIXTURE = BetaFixture
