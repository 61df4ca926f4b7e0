"""Bundled simulator of the providers' job-status APIs, for tests and the demo."""

from simulator.highlevel import HighLevelFixture
from simulator.server import Fault, Fixture, LoggedRequest, Reply, Route, SimRequest, Simulator

__all__ = [
    "Fault",
    "Fixture",
    "HighLevelFixture",
    "LoggedRequest",
    "Reply",
    "Route",
    "SimRequest",
    "Simulator",
]
