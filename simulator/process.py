"""The bundled simulator in a process of its own, so the client under test has the CPU (and the
GIL) to itself, as it would against a real API."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from simulator import Simulator

Build = Callable[[str], list[Any]]  # the fixtures to serve, given the token they accept


def _serve(build: Build, token: str, latency: float, conn: Connection) -> None:
    with Simulator(*build(token)) as sim:
        sim.latency = latency
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
    """`with SimProcess(build) as sim:` serves the fixtures `build(token)` makes (in the forked
    process: nothing is pickled) at `sim.base_url`."""

    def __init__(self, build: Build, latency: float = 0.0, token: str = "bench-token") -> None:
        self.token = token
        self._conn, child = mp.Pipe()
        self._process = mp.get_context("fork").Process(
            target=_serve, args=(build, token, latency, child), daemon=True)

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
