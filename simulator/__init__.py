"""Bundled simulator of the providers' job-status APIs, for tests and the demo. Each provider's
fixture lives in its folder (`sources/<provider>/fixture.py`); `fixtures()` lists them."""

from simulator.server import Fault, Fixture, LoggedRequest, Reply, Route, SimRequest, Simulator

__all__ = ["Fault", "Fixture", "LoggedRequest", "Reply", "Route", "SimRequest", "Simulator"]
