"""The concurrent poller: every job polled exactly once per run, nothing lost under 429s and
5xx, and the rate limit kept in every window (correctness only; speed is in bench/)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from simulator import Fault
from simulator.process import SimProcess
from sources.lobstr.fixture import LobstrFixture

TASKS = [f"{i:032x}" for i in range(1, 301)]
STATUS_PATH = r"/v1/tasks/upload/.*"


@pytest.fixture(autouse=True)
def _no_documented_limit(monkeypatch):
    """Hundreds of tasks a run: Lobstr's documented 90/min (tested in test_hostile_network)
    would make each run minutes long; the limiter itself is tested here with its own limits."""
    monkeypatch.setenv("SOURCES__LOBSTR__RATE_LIMIT_REQUESTS", "0")


def task_id(i: int) -> str:
    return f"{i:032x}"


def _succeeded_tasks(n: int):
    """Builds, in the simulator's own process, a Lobstr fixture with `n` finished tasks."""
    def build(token: str) -> list[LobstrFixture]:
        fixture = LobstrFixture(token=token)
        for i in range(n):
            fixture.add(task_id(i), ["SUCCESS"])
        return [fixture]

    return build


def answered(sim) -> Counter[str]:
    """Status answers per task (not the faults)."""
    return Counter(r.path.rsplit("/", 1)[1] for r in sim.requests("lobstr")
                   if r.status in (200, 202))  # 202: still running


def test_every_job_is_polled_once_per_run_despite_429s_and_5xx(polled_sim, run_polled, query,
                                                               monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    for task in TASKS:
        lobstr.add(task, ["PENDING", "SUCCESS"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(TASKS))
    # 40 failing answers go to whichever requests come first: on a busy machine one job may
    # meet several in a row, so its retries must outlast them all (dlt's default is 5)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "50")
    polled_sim.latency = 0.005
    # the first request is held until a second one arrives: only a client with requests in
    # flight together gets past it without waiting 20 s (then max_in_flight stays 1)
    held = Fault(None, STATUS_PATH, delay=20)
    polled_sim.inject(held)
    polled_sim.inject(Fault(None, STATUS_PATH, answer=lambda req: (
        held.release.set(), lobstr._status(req, req.path.rsplit("/", 1)[1]))[1]))
    polled_sim.inject(Fault(429, STATUS_PATH, times=20, retry_after="0"))
    polled_sim.inject(Fault(503, STATUS_PATH, times=20))

    first = run_polled("lobstr")

    assert first.exit_code == 0, first.providers[0].errors
    assert answered(polled_sim) == Counter(dict.fromkeys(TASKS, 1))
    assert polled_sim.max_in_flight > 1  # the requests overlapped: the held one was released
    assert {s for s, n in first.providers[0].http_status.items() if n} == {202, 429, 503}
    assert query("select count(*), count(distinct id) from {ds}.lobstr_upload_tasks"
                 ) == [(300, 300)]

    polled_sim.clear_log()
    polled_sim.advance()
    polled_sim.inject(Fault(502, STATUS_PATH, times=15))
    second = run_polled("lobstr")

    assert second.exit_code == 0, second.providers[0].errors
    assert answered(polled_sim) == Counter(dict.fromkeys(TASKS, 1))
    assert second.providers[0].counts["changed"] == 300
    assert query("select state, count(*) from {ds}.lobstr_upload_tasks group by 1"
                 ) == [("SUCCESS", 300)]
    assert query("select count(*), count(distinct job_ref) from {ds}.lobstr_status_history"
                 ) == [(600, 300)]

    polled_sim.clear_log()
    assert run_polled("lobstr").exit_code == 0
    assert polled_sim.requests("lobstr") == []  # all finished: never polled again


def test_concurrent_requests_keep_the_rate_limit_in_every_window(run_polled, monkeypatch):
    # the simulator in a process of its own, as a real server is: in this process its
    # arrival stamps would wait for the GIL behind the client's 16 threads
    with SimProcess(_succeeded_tasks(120), latency=0.005) as sim:
        tasks = [task_id(i) for i in range(120)]
        monkeypatch.setenv("SOURCES__LOBSTR__BASE_URL", sim.base_url)
        monkeypatch.setenv("SOURCES__LOBSTR__API_KEY", sim.token)
        monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
        monkeypatch.setenv("SOURCES__LOBSTR__RATE_LIMIT_REQUESTS", "40")
        monkeypatch.setenv("SOURCES__LOBSTR__RATE_LIMIT_PERIOD", "1")

        assert run_polled("lobstr").exit_code == 0

        log = sim.log()
    arrivals = sorted(at for _, _, at in log)
    assert len(arrivals) == 120
    assert Counter(path.rsplit("/", 1)[1] for path, status, _ in log
                   if status in (200, 202)) == Counter(dict.fromkeys(tasks, 1))
    # as the server counts: arrivals, in every window of the period
    assert max(sum(1 for t in arrivals if s <= t < s + 1.0) for s in arrivals) <= 40
