"""The conformance suite's fixtures: every registered provider of a kind, alone, its fixture
served by a simulator and its source pointed at it. Which providers there are comes from the
registry; what their APIs do comes from their fixtures' facts (`simulator.facts`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pytest
from conftest import DATASET, point_at, read_duckdb

from pipelines.commands.track import track_jobs
from pipelines.run.runner import RunReport, run_providers
from simulator import Fault, Simulator
from sources import ProviderPackage, providers
from sources.common.http_actions import BODY
from sources.common.polled_provider import PolledProvider

POLLED = [name for name, p in providers().items() if isinstance(p.provider, PolledProvider)]
# declared listed providers (HighLevel's Python source is checked by its own tests)
LISTED = [name for name, p in providers().items() if p.kind == "listed"]
collect_ignore = [] if LISTED else ["test_listed_conformance.py"]  # nothing to check

@dataclass
class Polled:
    """One polled provider under test: its package, its fixture (with its facts), the
    simulator serving it and the pipeline loading it into a DuckDB file."""

    package: ProviderPackage
    fixture: Any
    sim: Simulator
    pipeline: dlt.Pipeline
    db_path: Path
    reports: list[RunReport] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def provider(self) -> PolledProvider:
        return self.package.provider

    def track(self, *refs: str) -> None:
        assert track_jobs(self.name, list(refs), pipeline=self.pipeline).registered == len(refs)

    def run(self, **kwargs: Any) -> RunReport:
        self.sim.clear_log()
        report = run_providers([self.name], pipeline=self.pipeline, **kwargs)
        self.reports.append(report)
        return report

    def polled(self) -> Counter[str]:
        """Status requests since the last run started, per job reference."""
        return Counter(ref for r in self.sim.requests(self.name)
                       if (ref := self.fixture.polled_job(r)) is not None)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return read_duckdb(self.db_path, sql)

    def statuses(self) -> dict[str, tuple[str, str]]:
        """job_ref -> (native, canonical) as the jobs table holds them."""
        return {r[0]: (r[1], r[2]) for r in self.query(
            f"select job_ref, native_status, canonical_status from {{ds}}."
            f"{self.provider.jobs_table}")}

    def fault_for(self, ref: str, **fault: Any) -> Fault:
        """A fault answering the status request of job `ref` (its path as the engine asks)."""
        path, params = self.provider.status_request(self.provider.parse_ref(ref))
        return Fault(path_pattern=re.escape("/" + path), query=params or None, **fault)

    def body_code(self) -> int:
        """A code whose answer the declaration reads as a job status."""
        return min(int(c) for c in self.provider.codes.codes(BODY) if c.isdigit())


@contextmanager
def serving(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
            ) -> Iterator[tuple[ProviderPackage, Any, Simulator, dlt.Pipeline, Path]]:
    """A provider alone: its fixture served by a simulator, its source pointed at it, a
    pipeline into a DuckDB file."""
    package = providers()[name]
    fixture = package.fixture_class()()
    sim = Simulator(fixture).start()
    for key, value in point_at(sim, fixture).items():
        monkeypatch.setenv(key, value)
    db_path = tmp_path / "warehouse.duckdb"
    pipeline = dlt.pipeline("upload_status", destination=dlt.destinations.duckdb(str(db_path)),
                            dataset_name=DATASET, pipelines_dir=str(tmp_path / "pipelines"))
    try:
        yield package, fixture, sim, pipeline, db_path
    finally:
        sim.stop()


@pytest.fixture(params=POLLED)
def polled(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
           ) -> Iterator[Polled]:
    with serving(request.param, monkeypatch, tmp_path) as served:
        yield Polled(*served)


@dataclass
class Listed:
    """One declared listed provider under test (its fixture states `ListedFacts`)."""

    package: ProviderPackage
    fixture: Any
    sim: Simulator
    pipeline: dlt.Pipeline
    db_path: Path
    monkeypatch: pytest.MonkeyPatch
    scopes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def spec(self) -> Any:
        return self.package.spec

    @property
    def scopes_key(self) -> str:
        return self.package.provider.env_key(self.package.scopes_key)

    def follow(self, *scopes: str) -> None:
        """The configuration lists `scopes` (and those followed before)."""
        self.scopes += [s for s in scopes if s not in self.scopes]
        key = self.scopes_key
        self.monkeypatch.setenv(key, json.dumps(self.scopes))

    def run(self, **kwargs: Any) -> RunReport:
        self.sim.clear_log()
        return run_providers([self.name], pipeline=self.pipeline, **kwargs)

    def reads(self) -> Counter[tuple[str, str]]:
        """Listing pages per scope, child lists per item, since the last run started."""
        return Counter(read for r in self.sim.requests(self.name)
                       if (read := self.fixture.read(r)) is not None)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return read_duckdb(self.db_path, sql)

    def jobs(self) -> dict[str, tuple[str, str]]:
        """job_id -> (native, canonical status) as the views give them."""
        return {r[0]: (r[1], r[2]) for r in self.query(
            f"select job_id, native_status, status from {{ds}}.upload_jobs "
            f"where provider = '{self.name}'")}


@pytest.fixture(params=LISTED)
def listed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
           ) -> Iterator[Listed]:
    with serving(request.param, monkeypatch, tmp_path) as served:
        yield Listed(*served, monkeypatch)
