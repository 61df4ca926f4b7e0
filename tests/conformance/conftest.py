"""The conformance suite's fixtures: every registered provider of a kind, alone, its fixture
served by a simulator and its source pointed at it. Which providers there are comes from the
registry; what their APIs do comes from their fixtures' facts (`simulator.facts`)."""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pytest
from conftest import DATASET, VOLATILE, cli, point_at, read_duckdb

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


def dataset_tables(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the dataset in a DuckDB file, volatile columns left out, rows sorted."""
    names = [r[0] for r in read_duckdb(db_path, "select table_name from information_schema."
                                       "tables where table_schema = '{ds}' and table_type = "
                                       "'BASE TABLE' and table_name not like '_dlt%'")]
    out = {}
    for name in sorted(names):
        columns = [r[0] for r in read_duckdb(
            db_path, "select column_name from information_schema.columns where table_schema = "
                     f"'{{ds}}' and table_name = '{name}' order by 1")
                   if r[0] not in VOLATILE and not r[0].startswith(("_dlt_parent", "_dlt_root"))]
        select = ", ".join(f'"{c}"' for c in columns)
        rows = read_duckdb(db_path, f'select {select} from {{ds}}."{name}"')
        out[name] = sorted(rows, key=repr)
    return out


def killed_then_rerun(name: str, sim: Simulator, env: dict[str, str], folder: Path,
                      point: str, before: Callable[[Path, dict[str, str]], None] = lambda *_: None
                      ) -> tuple[dict, dict]:
    """Two places run `name` through the command line: the second run of one is killed at
    `point` (tests/crash_run.py) and run again. Returns both places' tables."""
    places = {kind: folder / kind for kind in ("clean", "killed")}
    envs = {kind: {**env, "DLT_DATA_DIR": str(place / "dlt")} for kind, place in places.items()}
    for kind, place in places.items():
        place.mkdir()
        before(place, envs[kind])
        first = cli("run", "--source", name, cwd=place, env=envs[kind])
        assert first.returncode == 0, first.stderr[-2000:]
    sim.advance()
    clean = cli("run", "--source", name, cwd=places["clean"], env=envs["clean"])
    assert clean.returncode == 0, clean.stderr[-2000:]
    killed = cli("run", "--source", name, cwd=places["killed"], script="crash_run.py",
                 env={**envs["killed"], "CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    rerun = cli("run", "--source", name, cwd=places["killed"], env=envs["killed"])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "of an interrupted run" in " ".join(rerun.stdout.split()), rerun.stdout
    db = "upload_status_data.duckdb"
    return dataset_tables(places["clean"] / db), dataset_tables(places["killed"] / db)


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
