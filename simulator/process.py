"""The bundled simulator in a process of its own, so the client under test has the CPU (and the
GIL) to itself, as it would against a real API."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.connection import Connection
from typing import Any

from simulator import HighLevelFixture, LobstrFixture, Simulator


def task_id(i: int) -> str:
    return f"{i:032x}"


def _serve(spec: dict[str, Any], conn: Connection) -> None:
    fixtures: list[Any] = []
    if spec.get("lobstr_tasks"):
        lobstr = LobstrFixture(token=spec["token"])
        for i in range(spec["lobstr_tasks"]):
            lobstr.add(task_id(i), spec.get("steps", ["PENDING", "SUCCESS"]))
        fixtures.append(lobstr)
    if spec.get("highlevel"):
        fixtures.append(HighLevelFixture(
            locations=spec["highlevel"], token=spec["token"], unfinished_share=spec.get(
                "unfinished_share", 0.0), rate_max=10**9, page_cap=spec.get("page_cap")))
    with Simulator(*fixtures) as sim:
        sim.latency = spec.get("latency", 0.0)
        conn.send(sim.base_url)
        while True:
            command = conn.recv()
            if command == "advance":
                sim.advance()
            elif command == "log":
                conn.send([(r.path, r.status, r.at) for r in sim.requests()])
                continue
            elif command == "max_in_flight":
                conn.send(sim.max_in_flight)
                continue
            elif command == "clear":
                sim.clear_log()
            elif command == "stop":
                conn.send("stopped")
                return
            conn.send("ok")


class SimProcess:
    """`with SimProcess(spec) as sim:` serves the spec's fixtures at `sim.base_url`."""

    def __init__(self, **spec: Any) -> None:
        spec.setdefault("token", "bench-token")
        self.spec = spec
        self.token = spec["token"]
        self._conn, child = mp.Pipe()
        self._process = mp.get_context("fork").Process(target=_serve, args=(spec, child),
                                                        daemon=True)

    def __enter__(self) -> SimProcess:
        self._process.start()
        self.base_url: str = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._call("stop")
        self._process.join(10)

    def _call(self, command: str) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def advance(self) -> None:
        self._call("advance")

    def clear(self) -> None:
        self._call("clear")

    def log(self) -> list[tuple[str, int, float]]:
        return self._call("log")

    def max_in_flight(self) -> int:
        return self._call("max_in_flight")
