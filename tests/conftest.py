"""Shared fixtures: a simulator on a free loopback port and a pipeline into a temporary DuckDB."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from forked_cli import forking, run_forked

from pipelines.run.runner import RunReport, run_providers
from simulator import Simulator
from sources import providers
from sources.common.polled_provider import PolledProvider
from sources.highlevel.fixture import HighLevelFixture

DATASET = "upload_status"
REPO = Path(__file__).parents[1]
# when a run happened, and keys made from it (dlt's row ids too): different in every run
VOLATILE = {"_dlt_load_id", "_dlt_id", "observed_at", "last_seen_at", "polled_at",
            "registered_at", "change_key", "rejected_at", "reject_key", "inserted_at"}


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        inherit: dict[str, str] | None = None, script: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run the command in a process of its own; `inherit` replaces os.environ as its base;
    `script` runs a test wrapper of the command instead of the command itself."""
    base = os.environ if inherit is None else inherit
    full = {**base, "PYTHONPATH": str(REPO), **(env or {})}
    path = str(REPO / "tests" / script) if script else None
    if forking() and full["PYTHONPATH"] == str(REPO):
        return run_forked(list(args), cwd, full, path, timeout=300)
    program = [path] if path else ["-m", "pipelines"]
    return subprocess.run([sys.executable, *program, *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300)


def cached_venv(script: str) -> Path:
    """The virtualenv `scripts/<script>` prints (built once, then cached in ~/.cache)."""
    made = subprocess.run([str(REPO / "scripts" / script)], capture_output=True, text=True,
                          timeout=1800)
    assert made.returncode == 0, made.stderr[-3000:]
    return Path(made.stdout.strip())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test module's `leave_out(test, params)` deselects the parameter combinations it
    names: a matrix that runs some of its rows on fewer columns, without a skip per cell."""
    kept, left = [], []
    for item in items:
        rule = getattr(getattr(item, "module", None), "leave_out", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        (left if rule and rule(getattr(item, "originalname", ""), params) else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config leaks in; retries back off quickly so fault tests stay fast."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt_data"))
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "5")


@pytest.fixture
def highlevel_sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Simulator]]:
    """Start a simulator for a HighLevelFixture and point the source's config at it."""
    started: list[Simulator] = []

    def start(fixture: HighLevelFixture | None = None, locations: list[str] | None = None,
              page_size: int | None = None) -> Simulator:
        fixture = fixture or HighLevelFixture()
        sim = Simulator(fixture).start()
        started.append(sim)
        monkeypatch.setenv("SOURCES__HIGHLEVEL__BASE_URL", sim.base_url)
        monkeypatch.setenv("SOURCES__HIGHLEVEL__ACCESS_TOKEN", fixture.token)
        monkeypatch.setenv("SOURCES__HIGHLEVEL__LOCATION_IDS",
                           json.dumps(locations or list(fixture.imports)))
        if page_size:
            monkeypatch.setenv("SOURCES__HIGHLEVEL__PAGE_SIZE", str(page_size))
        return sim

    yield start
    for sim in started:
        sim.stop()


# the providers whose jobs are registered and polled, from the registry
POLLED = tuple(name for name, p in providers().items() if isinstance(p.provider, PolledProvider))


def point_at(sim: Simulator, fixture: Any) -> dict[str, str]:
    """The configuration pointing a provider's source at `fixture` served by `sim`."""
    provider = providers()[fixture.name].provider
    return {provider.env_key("base_url"): sim.base_url, provider.secret_env_key: fixture.token}


@pytest.fixture
def polled_sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A simulator of every polled provider (empty fixtures the test fills), with each
    source's origin and credential pointed at it."""
    fixtures = [providers()[name].fixture_class()() for name in POLLED]
    sim = Simulator(*fixtures).start()
    for fixture in fixtures:
        for key, value in point_at(sim, fixture).items():
            monkeypatch.setenv(key, value)
    yield sim
    sim.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def new_pipeline(tmp_path: Path, db_path: Path) -> Callable[[], dlt.Pipeline]:
    """Makes the pipeline the tests load with (folder under tmp_path, DuckDB file at db_path);
    calling it again after the folder is deleted gives a pipeline that starts from nothing."""
    def _new() -> dlt.Pipeline:
        return dlt.pipeline("upload_status", destination=dlt.destinations.duckdb(str(db_path)),
                            dataset_name=DATASET, pipelines_dir=str(tmp_path / "pipelines"))

    return _new


@pytest.fixture
def pipeline(new_pipeline: Callable[[], dlt.Pipeline]) -> dlt.Pipeline:
    return new_pipeline()


@pytest.fixture
def run(pipeline: dlt.Pipeline) -> Callable[..., RunReport]:
    def _run(**kwargs: Any) -> RunReport:
        return run_providers(["highlevel"], pipeline=pipeline, **kwargs)

    return _run


@pytest.fixture
def run_polled(pipeline: dlt.Pipeline) -> Callable[..., RunReport]:
    def _run(*names: str, **kwargs: Any) -> RunReport:
        return run_providers(list(names or POLLED), pipeline=pipeline, **kwargs)

    return _run


def read_duckdb(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` (`{ds}` for the dataset) from a DuckDB file, opened read-only."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql.replace("{ds}", DATASET)).fetchall()
    finally:
        con.close()


@pytest.fixture
def query(db_path: Path) -> Callable[[str], list[tuple[Any, ...]]]:
    return lambda sql: read_duckdb(db_path, sql)


@dataclass
class Warehouse:
    """A destination the tests load into and read back with its own driver."""

    name: str
    pipeline: dlt.Pipeline
    query: Callable[[str], list[tuple[Any, ...]]]  # `{ds}` stands for the dataset


def server_address(variable: str, server: str) -> str:
    """The address `make test` puts in `variable` (its own throwaway server); a test without it
    is skipped, or fails under CI=true."""
    address = os.environ.get(variable)
    if not address:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{variable} is not set: run the tests with `make test`")
        pytest.skip(f"no {server} server: `make test` starts one")
    return address


def postgres_dsn() -> str:
    return server_address("UPLOAD_STATUS_TEST_POSTGRES", "PostgreSQL")


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def read_through_dlt(pipeline: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` read with the destination's own SQL client; a date SQLite hands back as
    text is read as a date (SQLite has no date type; the views' days are ISO text there)."""
    with pipeline.sql_client() as client:
        rows = client.execute_sql(sql.replace("{ds}", pipeline.dataset_name)) or []
    return [tuple(date.fromisoformat(v) if isinstance(v, str) and _ISO_DAY.match(v) else v
                  for v in row) for row in rows]


@contextmanager
def warehouse_at(kind: str, folder: Path, db_path: Path) -> Iterator[Warehouse]:
    """The pipeline into a DuckDB file at `db_path` or into a real Postgres server (a schema
    of its own, dropped afterwards), its local folder under `folder`."""
    pipelines_dir = str(folder / "pipelines")
    if kind == "duckdb":
        pipeline = dlt.pipeline("upload_status", destination=dlt.destinations.duckdb(
            str(db_path)), dataset_name=DATASET, pipelines_dir=pipelines_dir)
        yield Warehouse("duckdb", pipeline, lambda sql: read_duckdb(db_path, sql))
        return
    if kind == "mariadb":  # through dlt's sqlalchemy destination; a database per dataset
        dataset = f"us_{uuid.uuid4().hex[:12]}"  # parallel tests share the server
        pipeline = dlt.pipeline("upload_status", destination=dlt.destinations.sqlalchemy(
            mysql_url()), dataset_name=dataset, pipelines_dir=pipelines_dir)
        try:
            yield Warehouse("mariadb", pipeline, lambda sql: read_through_dlt(pipeline, sql))
        finally:
            with pipeline.sql_client() as client:
                for name in (dataset, f"{dataset}_staging"):
                    client.execute_sql(f"DROP DATABASE IF EXISTS {name}")
        return
    if kind == "delta":  # the filesystem destination as Delta tables, read through DuckDB
        from pipelines.destinations.lakehouse import lake_connection

        pipeline = dlt.pipeline("upload_status", destination=dlt.destinations.filesystem(
            str(folder / "lake")), dataset_name=DATASET, pipelines_dir=pipelines_dir)

        def query_lake(sql: str) -> list[tuple[Any, ...]]:
            with lake_connection(pipeline) as con:
                return con.execute(sql.replace("{ds}", DATASET)).fetchall()

        with pytest.MonkeyPatch.context() as env:
            env.setenv("DESTINATION__FILESYSTEM__TABLE_FORMAT", "delta")
            yield Warehouse("delta", pipeline, query_lake)
        return
    if kind == "sqlite":  # through dlt's sqlalchemy destination
        pipeline = dlt.pipeline("upload_status", destination=dlt.destinations.sqlalchemy(
            f"sqlite:///{folder / 'warehouse.sqlite'}"), dataset_name=DATASET,
            pipelines_dir=pipelines_dir)
        yield Warehouse("sqlite", pipeline, lambda sql: read_through_dlt(pipeline, sql))
        return
    import psycopg2

    dsn = postgres_dsn()
    dataset = f"us_{uuid.uuid4().hex[:12]}"  # parallel tests share the server
    pipeline = dlt.pipeline("upload_status", destination=dlt.destinations.postgres(credentials=dsn),
                            dataset_name=dataset, pipelines_dir=pipelines_dir)

    def query_postgres(sql: str) -> list[tuple[Any, ...]]:
        with psycopg2.connect(dsn) as con, con.cursor() as cur:
            cur.execute(sql.replace("{ds}", dataset))
            return [tuple(row) for row in cur.fetchall()] if cur.description else []

    try:
        yield Warehouse("postgres", pipeline, query_postgres)
    finally:
        with psycopg2.connect(dsn) as con, con.cursor() as cur:
            for schema in (dataset, f"{dataset}_staging"):
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def mysql_url() -> str:
    return server_address("UPLOAD_STATUS_TEST_MYSQL", "MariaDB")


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path, db_path: Path
              ) -> Iterator[Warehouse]:
    """The same pipeline into a DuckDB file and into a real Postgres server (own schema)."""
    with warehouse_at(request.param, tmp_path, db_path) as made:
        yield made


# the throwaway provider's files, run only inside a copy of the project (test_new_provider.py)
collect_ignore = ["new_provider"]
