"""Bundled simulator of the providers' job-status APIs, for tests and the demo."""

from simulator.cleartax import ClearTaxFixture
from simulator.highlevel import HighLevelFixture
from simulator.lobstr import LobstrFixture
from simulator.server import Fault, Fixture, LoggedRequest, Reply, Route, SimRequest, Simulator
from simulator.upload_post import UploadPostFixture

__all__ = [
    "ClearTaxFixture",
    "Fault",
    "Fixture",
    "HighLevelFixture",
    "LobstrFixture",
    "LoggedRequest",
    "Reply",
    "Route",
    "SimRequest",
    "Simulator",
    "UploadPostFixture",
]
