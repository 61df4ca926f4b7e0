"""A run killed with SIGKILL, then run again, ends with the tables of a run never killed.

Every scenario starts from the same first run (a copy of its DuckDB file and pipeline folder),
moves an identically seeded simulator one step on, and compares every table of the dataset,
row for row, with a reference that ran the second run without interruption. Columns that hold
the wall-clock time of a run (and the keys derived from it) are left out of the comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import REPO, VOLATILE, cli, mysql_url, postgres_dsn

from simulator import Fault, Simulator
from sources.cleartax.fixture import ClearTaxFixture
from sources.highlevel.fixture import HighLevelFixture
from sources.lobstr.fixture import LobstrFixture
from sources.upload_post.fixture import UploadPostFixture

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
TASKS = [f"{i:032x}" for i in range(1, 7)]
ACTIVITIES = [f"act-{i}" for i in range(4)]


def scenario(four: bool = False, imports: int = 10) -> Simulator:
    """Two locations of HighLevel imports (`imports` and 5) and six Lobstr tasks, the same
    every time; with `four`, Upload-Post requests (found in its history) and ClearTax
    activities too."""
    lobstr = LobstrFixture()
    for i, task in enumerate(TASKS):
        steps = [["PENDING", "PROGRESS", "SUCCESS"], ["PROGRESS", "FAILURE"], ["SUCCESS"]][i % 3]
        lobstr.add(task, steps, valid=10 + i, invalid=i % 2)
    highlevel = HighLevelFixture(locations={"loc_a": imports, "loc_b": 5}, seed=11, now=NOW,
                                 unfinished_share=0.5)
    if not four:
        return Simulator(highlevel, lobstr).start()
    upload_post, cleartax = UploadPostFixture(now=NOW), ClearTaxFixture()
    for i in range(4):
        upload_post.add("request", f"req-{i}", ["pending", "in_progress", "completed"],
                        failures={"x": "Rate limited"} if i == 1 else None)
        cleartax.add("te-1", ACTIVITIES[i], [["INIT", "PROCESSING", "PROCESSED"],
                                             ["UPLOADED", "ABORTED"]][i % 2])
    return Simulator(highlevel, lobstr, upload_post, cleartax).start()


@dataclass
class Place:
    """Where a scenario's runs load: a DuckDB file or a SQLite file in `workdir`, a Postgres
    database of its own (cloned from another with CREATE DATABASE ... TEMPLATE), or a MariaDB
    database of its own (the dataset; a clone makes its first run anew, `fresh`)."""

    workdir: Path
    kind: str = "duckdb"
    database: str | None = None  # Postgres: the database; MariaDB: the dataset
    fresh: bool = False  # the scenario's first run is still to be made here

    def env(self, sim: Simulator) -> dict[str, str]:
        highlevel, lobstr = sim.fixtures["highlevel"], sim.fixtures["lobstr"]
        env = {
            "COLUMNS": "200",  # the summary as a table (pytest-xdist sets 80)
            "DLT_DATA_DIR": str(self.workdir / "dlt"),
            "DESTINATION__DUCKDB__CREDENTIALS": str(self.workdir / "warehouse.duckdb"),
            "SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
            "SOURCES__HIGHLEVEL__ACCESS_TOKEN": highlevel.token,
            "SOURCES__HIGHLEVEL__LOCATION_IDS": json.dumps(["loc_a", "loc_b"]),
            "SOURCES__HIGHLEVEL__PAGE_SIZE": "4",
            "SOURCES__LOBSTR__BASE_URL": sim.base_url,
            "SOURCES__LOBSTR__API_KEY": lobstr.token,
            "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(TASKS),
        }
        if self.kind == "postgres":
            env["DESTINATION__POSTGRES__CREDENTIALS"] = _dsn(self.database)
        elif self.kind == "sqlite":
            env["DESTINATION__SQLALCHEMY__CREDENTIALS"] = f"sqlite:///{self.sqlite_file}"
        elif self.kind == "mariadb":
            env["DESTINATION__SQLALCHEMY__CREDENTIALS"] = mysql_url()
        if "upload_post" in sim.fixtures:
            env.update({
                "SOURCES__UPLOAD_POST__BASE_URL": sim.base_url,
                "SOURCES__UPLOAD_POST__API_KEY": sim.fixtures["upload_post"].token,
                "SOURCES__CLEARTAX__BASE_URL": sim.base_url,
                "SOURCES__CLEARTAX__AUTH_TOKEN": sim.fixtures["cleartax"].token,
                "SOURCES__CLEARTAX__ACTIVITIES": json.dumps([f"te-1/{a}" for a in ACTIVITIES]),
            })
        return env

    @property
    def sqlite_file(self) -> Path:
        return self.workdir / "warehouse.sqlite"

    @property
    def dataset(self) -> str:
        return self.database if self.kind == "mariadb" else "upload_status"

    @property
    def args(self) -> list[str]:
        if self.kind == "postgres":
            return ["--destination", "postgres"]
        if self.kind == "mariadb":
            return ["--destination", "sqlalchemy", "--dataset", self.dataset]
        return ["--destination", "sqlalchemy"] if self.kind == "sqlite" else []

    def clone(self, workdir: Path) -> Place:
        """A copy of this place's destination and local folder (a crash scenario's start)."""
        if self.kind == "mariadb":
            workdir.mkdir(parents=True, exist_ok=True)
            _MARIADB.append(dataset := f"crash_{uuid.uuid4().hex[:10]}")
            return Place(workdir, "mariadb", dataset, fresh=True)
        shutil.copytree(self.workdir, workdir, dirs_exist_ok=True)
        if self.kind != "postgres":
            return Place(workdir, self.kind)
        database = f"crash_{uuid.uuid4().hex[:10]}"
        _admin(f'CREATE DATABASE "{database}" TEMPLATE "{self.database}"')
        _CREATED.append(database)
        return Place(workdir, "postgres", database)

    def start(self, sim: Simulator) -> None:
        """Make the scenario's first run here if the clone could not copy it, then move the
        simulator on to the second run's answers."""
        if self.fresh:
            done = run(sim, self)
            assert done.returncode == 0, done.stderr[-2000:]
            self.fresh = False
        sim.advance()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "duckdb":
            con = duckdb.connect(str(self.workdir / "warehouse.duckdb"), read_only=True)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        if self.kind == "sqlite":
            import sqlite3

            con = sqlite3.connect(self.sqlite_file)  # its views name the attached dataset
            con.execute("ATTACH DATABASE ? AS upload_status",
                        (str(self.workdir / "warehouse__upload_status.sqlite"),))
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        if self.kind == "mariadb":
            import sqlalchemy

            engine = sqlalchemy.create_engine(mysql_url())
            try:
                with engine.begin() as con:
                    result = con.execute(sqlalchemy.text(sql))
                    return [tuple(r) for r in result.fetchall()] if result.returns_rows else []
            finally:
                engine.dispose()
        import psycopg2

        con = psycopg2.connect(_dsn(self.database))
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return [tuple(r) for r in cur.fetchall()]
        finally:
            con.close()

    def table_names(self) -> list[str]:
        if self.kind == "sqlite":
            sql = "SELECT name FROM upload_status.sqlite_master WHERE type = 'table'"
        else:
            sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                   f"'{self.dataset}' AND table_type = 'BASE TABLE'")
        return [r[0] for r in self.query(sql) if not r[0].startswith("_dlt")]

    def column_names(self, table: str) -> list[str]:
        if self.kind == "sqlite":
            return [r[1] for r in self.query(f"PRAGMA upload_status.table_info(\"{table}\")")]
        return [r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"'{self.dataset}' AND table_name = '{table}'")]

    def qualified(self, table: str) -> str:
        if self.kind == "mariadb":
            return f"`{self.dataset}`.`{table}`"
        return f'upload_status."{table}"'


def _dsn(database: str) -> str:
    return postgres_dsn().rsplit("/", 1)[0] + f"/{database}"


def _admin(sql: str) -> None:
    import psycopg2

    con = psycopg2.connect(postgres_dsn())
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute(sql)
    finally:
        con.close()


def run(sim: Simulator, place: Place, sources: list[str] | None = None, **kwargs: Any
        ) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("env", place.env(sim))
    chosen = [arg for name in sources or [] for arg in ("--source", name)]
    debug = ["--debug"] if os.environ.get("CRASH_DEBUG") else []  # tracebacks when debugging
    return cli(*debug, "run", *place.args, *chosen, cwd=place.workdir, **kwargs)


def killed_at(point: str, sim: Simulator, place: Place, source: str) -> None:
    """A run of `source` that kills itself at `point` (`crash_run.py`)."""
    killed = run(sim, place, [source], env={**place.env(sim), "CRASH_AT": point},
                 script="crash_run.py")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]


def tables(place: Place) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the dataset, volatile columns left out, rows sorted (values as text: the
    destinations' drivers return other Python types)."""
    out = {}
    for name in sorted(place.table_names()):
        columns = sorted(c for c in place.column_names(name) if c not in VOLATILE
                         and not c.startswith(("_dlt_parent", "_dlt_root")))
        quote = "`" if place.kind == "mariadb" else '"'
        select = ", ".join(f"{quote}{c}{quote}" for c in columns)
        rows = place.query(f"SELECT {select} FROM {place.qualified(name)}")
        out[name] = sorted((tuple(_text(v) for v in row) for row in rows), key=repr)
    return out


def _text(value: Any) -> str:
    """A value as text the same on every destination: times in UTC without their zone's
    spelling, true/false for booleans SQLite and MariaDB keep as 1/0."""
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc) if value.tzinfo else value
        return value.replace(tzinfo=None).isoformat(" ")
    return str(value)


_CREATED: list[str] = []  # Postgres databases made by this module's tests, dropped at its end
_MARIADB: list[str] = []  # the MariaDB datasets (databases) made by them


@dataclass
class Reference:
    first: Place  # after a clean first run of HighLevel and Lobstr
    both: dict  # the tables after a clean second run of both
    highlevel: dict  # the tables after a clean second run of HighLevel alone


# SQLite and MariaDB share dlt's sqlalchemy loader: a first job, a merge, the last one and the
# package cover its transactions there; every point runs on DuckDB and Postgres (the
# documented resumes). Each provider's own kill is in the conformance suite.
SAMPLED = {"sqlite": ["load-job:1", "load-job:4", "load-job:8", "load-job:11", "package"],
           "mariadb": ["load-job:1", "load-job:4", "load-job:8", "load-job:11", "package"]}


def leave_out(test: str, params: dict[str, Any]) -> bool:
    """The combinations of destination and point not collected (tests/conftest.py)."""
    sampled = SAMPLED.get(params.get("first_and_reference", ""))
    if sampled is None:
        return False
    if test == "test_killed_mid_extract_then_rerun_equals_a_clean_run":
        return True  # a kill before the load writes nothing: the same on every destination
    return params["point"] not in sampled


@pytest.fixture(scope="module", params=["duckdb", "postgres", "sqlite", "mariadb"])
def first_and_reference(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[Reference]:
    kind, database = request.param, None
    if kind == "postgres":
        database = f"crash_{uuid.uuid4().hex[:10]}"
        _admin(f'CREATE DATABASE "{database}"')
        _CREATED.append(database)
    first = Place(tmp_path_factory.mktemp("first"), kind, database)
    if kind == "mariadb":
        first.fresh = True  # every clone makes the first run anew (no template on MariaDB)
    else:
        with scenario() as sim:
            done = run(sim, first)
            assert done.returncode == 0, done.stderr[-2000:]
    seconds = {}
    for sources in (["highlevel", "lobstr"], ["highlevel"]):
        reference = first.clone(tmp_path_factory.mktemp("reference"))
        with scenario() as sim:
            reference.start(sim)
            second = run(sim, reference, sources=sources)
            assert second.returncode == 0, second.stderr[-2000:]
        seconds[len(sources)] = tables(reference)
    yield Reference(first, seconds[2], seconds[1])
    for name in _CREATED:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _CREATED.clear()
    for name in _MARIADB:
        for dataset in (name, f"{name}_staging"):
            Place(Path("."), "mariadb", dataset).query(f"DROP DATABASE IF EXISTS `{dataset}`")
    _MARIADB.clear()


def assert_same_as_reference(place: Place, reference: dict) -> None:
    got = tables(place)
    assert sorted(got) == sorted(reference)
    for name, rows in reference.items():
        assert got[name] == rows, name
    history = got["highlevel_status_history"] + got.get("lobstr_status_history", [])
    assert len(history) == len(set(history))  # no observation twice
    keys = place.query("SELECT COUNT(*), COUNT(DISTINCT change_key) FROM "
                       f"{place.qualified('highlevel_status_history')}")
    assert keys[0][0] == keys[0][1]


# HighLevel's second run has 11 load jobs (imports, accounts, posts and their two nested tables,
# history, the state; the merges of four of them), some running in parallel; "package" kills it
# after its last job, before the package is marked loaded (between two packages)
@pytest.mark.parametrize("point", [f"load-job:{n}" for n in range(1, 12)] + ["package"])
def test_killed_mid_load_then_rerun_equals_a_clean_run(first_and_reference, tmp_path, point):
    place = first_and_reference.first.clone(tmp_path / "crashed")
    with scenario() as sim:
        place.start(sim)
        killed_at(point, sim, place, "highlevel")
        rerun = run(sim, place, ["highlevel"])
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = " ".join(rerun.stdout.split())
    assert "of an interrupted run" in summary, summary
    assert_same_as_reference(place, first_and_reference.highlevel)


@pytest.mark.parametrize("point", ["load-job:3", "load-job:8"])
def test_killed_mid_load_then_another_machine_runs_then_this_one(first_and_reference, tmp_path,
                                                                  point):
    """The killed run's machine is down; another one (its own local folder) runs the same
    dataset: the rows the killed load had committed are not kept beside its own records of
    the same changes. When the first machine comes back, its pending package is overtaken:
    set aside, nothing loaded twice."""
    place = first_and_reference.first.clone(tmp_path / "crashed")
    with scenario() as sim:
        place.start(sim)
        killed_at(point, sim, place, "highlevel")
        other = run(sim, place, ["highlevel"],
                    env={**place.env(sim), "DLT_DATA_DIR": str(tmp_path / "other")})
        assert other.returncode == 0, other.stderr[-2000:]
        assert_same_as_reference(place, first_and_reference.highlevel)
        back = run(sim, place, ["highlevel"])
    assert back.returncode == 0, back.stderr[-2000:]
    assert "overtaken" in " ".join((back.stdout + back.stderr).split())
    assert_same_as_reference(place, first_and_reference.highlevel)


@pytest.mark.parametrize("held", [
    r"/social-media-posting/loc_a/csv/[0-9a-f]+",  # HighLevel extracting posts
    rf"/v1/tasks/upload/{TASKS[3]}",  # Lobstr polling, after HighLevel's load finished
])
def test_killed_mid_extract_then_rerun_equals_a_clean_run(first_and_reference, tmp_path, held):
    place = first_and_reference.first.clone(tmp_path / "crashed")
    with scenario() as sim:
        place.start(sim)
        hold = Fault(None, held, delay=60)
        sim.inject(hold)
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "run", *place.args], cwd=place.workdir,
            env={**os.environ, **place.env(sim), "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert hold.arrived.wait(120), "the run never reached the held request"
            process.send_signal(signal.SIGKILL)
            assert process.wait(30) == -signal.SIGKILL
        finally:
            process.kill()
        hold.times = 0
        hold.delay = 0
        rerun = run(sim, place)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same_as_reference(place, first_and_reference.both)


@pytest.mark.parametrize(("signum", "held", "provider"), [
    (signal.SIGINT, r"/social-media-posting/loc_a/csv/[0-9a-f]+", "highlevel"),  # 2nd of 4
    (signal.SIGTERM, rf"/v1/tasks/upload/{TASKS[3]}", "lobstr"),  # polling on 16 threads
])
def test_a_signal_stops_the_run_and_the_rerun_equals_a_clean_run(tmp_path, signum, held,
                                                                 provider):
    """Providers run in name order (cleartax, highlevel, lobstr, upload_post): the one held by
    the simulator is stopped, none after it starts, and the next run makes up for it."""
    with scenario(four=True) as sim:
        reference = Place(tmp_path / "reference")
        reference.workdir.mkdir()
        assert run(sim, reference).returncode == 0
        sim.clear_log()
        place = Place(tmp_path / "stopped")
        place.workdir.mkdir()
        hold = Fault(None, held, delay=120)
        sim.inject(hold)
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "run"], cwd=place.workdir, text=True,
            env={**os.environ, **place.env(sim), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert hold.arrived.wait(120), "the run never reached the held request"
            signalled_at = time.monotonic()
            process.send_signal(signum)
            # a guard against hanging, not a timing test: the held request lasts 120 s
            out, err = process.communicate(timeout=60)
            stopped_in = time.monotonic() - signalled_at
        finally:
            process.kill()
            hold.release.set()
        print(f"stopped {stopped_in:.2f} s after {signum.name}")
        assert process.returncode == 128 + signum, err[-2000:]
        assert "interrupted" in err and "Traceback" not in err, err[-2000:]
        order = ["cleartax", "highlevel", "lobstr", "upload_post"]
        later = order[order.index(provider) + 1:]
        assert not [r for r in sim.requests() if r.provider in later]  # none of them started
        summary = " ".join(out.split())
        assert f"{provider} │ interrupted" in summary and all(
            f"{name} │ not started" in summary for name in later), summary
        rerun = run(sim, place)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    got, want = tables(place), tables(reference)
    assert sorted(got) == sorted(want)
    for name, rows in want.items():
        assert got[name] == rows, name


def test_dlt_flags_pass_through_to_drop_a_pending_package(tmp_path):
    """`upload-status dlt -y drop-pending-packages`, the recovery README's "When things go
    wrong" names, runs dlt's command without a prompt: the next run finds nothing pending."""
    place = Place(tmp_path / "place")
    place.workdir.mkdir()
    with scenario() as sim:
        killed_at("load-job:1", sim, place, "lobstr")
        dropped = cli("dlt", "-y", "drop-pending-packages", cwd=place.workdir,
                      env=place.env(sim))
        assert dropped.returncode == 0, dropped.stdout + dropped.stderr
        again = run(sim, place, ["lobstr"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "of an interrupted run" not in " ".join(again.stdout.split())
    assert len(tables(place)["lobstr_upload_tasks"]) == len(TASKS)
