"""One writer per destination + dataset, and one state per destination + dataset.

Real processes of the command over real HTTP into real DuckDB files and a real Postgres server:
a run held mid-extract by the simulator keeps the lock while a second one starts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import REPO, cli, postgres_dsn

from simulator import Fault, Simulator
from sources.lobstr.fixture import LobstrFixture

TASKS = [f"{i:032x}" for i in range(1, 7)]


@pytest.fixture
def lobstr_sim() -> Iterator[Simulator]:
    lobstr = LobstrFixture()
    for i, task in enumerate(TASKS):
        lobstr.add(task, [["PENDING", "PROGRESS", "SUCCESS"], ["PROGRESS", "FAILURE"]][i % 2])
    with Simulator(lobstr) as sim:
        yield sim


@pytest.fixture(params=["duckdb", "postgres"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment selecting a fresh dataset in a DuckDB file or on the Postgres server."""
    if request.param == "duckdb":
        yield {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb")}
        return
    import psycopg2

    dsn = postgres_dsn()
    dataset = f"us_{uuid.uuid4().hex[:12]}"
    yield {"DESTINATION__POSTGRES__CREDENTIALS": dsn, "_DATASET": dataset}
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        for schema in (dataset, f"{dataset}_staging"):
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run_args(dest: dict[str, str], *extra: str) -> list[str]:
    if "_DATASET" in dest:
        return ["run", "--destination", "postgres", "--dataset", dest["_DATASET"], *extra]
    return ["run", *extra]


def env_for(sim: Simulator, dest: dict[str, str], data_dir: Path) -> dict[str, str]:
    return {**{k: v for k, v in dest.items() if not k.startswith("_")},
            "DLT_DATA_DIR": str(data_dir),  # each process a folder of its own: two machines
            "SOURCES__LOBSTR__BASE_URL": sim.base_url,
            "SOURCES__LOBSTR__API_KEY": sim.fixtures["lobstr"].token,
            "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(TASKS)}


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipelines", *args], cwd=cwd, text=True,
                            env={**os.environ, **env, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def history(dest: dict[str, str], tmp_path: Path) -> list[tuple[Any, ...]]:
    return _query(dest, tmp_path, "SELECT job_id, previous_native_status, native_status FROM "
                                  "{ds}.lobstr_status_history ORDER BY 1, 2, 3")


def _query(dest: dict[str, str], tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    if "_DATASET" not in dest:
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        try:
            return con.execute(sql.format(ds="upload_status")).fetchall()
        finally:
            con.close()
    import psycopg2

    with psycopg2.connect(postgres_dsn()) as con, con.cursor() as cur:
        cur.execute(sql.format(ds=dest["_DATASET"]))
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def test_a_second_run_exits_2_naming_the_holder_and_loads_nothing(lobstr_sim, destination,
                                                                   tmp_path):
    hold = Fault(None, rf"/v1/tasks/upload/{TASKS[2]}", delay=120)
    lobstr_sim.inject(hold)
    first = start(run_args(destination), env_for(lobstr_sim, destination, tmp_path / "a"),
                  tmp_path)
    try:
        assert hold.arrived.wait(120), "the first run never polled"
        second = cli(*run_args(destination), cwd=tmp_path,
                     env=env_for(lobstr_sim, destination, tmp_path / "b"))
        hold.release.set()
        _out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    message = " ".join(second.stderr.split())
    assert f"PID {first.pid}" in message and socket.gethostname() in message, message
    assert "--wait" in message and "Traceback" not in second.stderr
    polls = [r for r in lobstr_sim.requests("lobstr")]
    assert len(polls) == len(TASKS)  # the second run polled nothing
    rows = history(destination, tmp_path)
    assert len(rows) == len(TASKS) and len(set(rows)) == len(rows)


def test_with_wait_both_runs_load_one_after_the_other_without_duplicates(
        lobstr_sim, destination, tmp_path):
    hold = Fault(None, rf"/v1/tasks/upload/{TASKS[2]}", delay=120)
    lobstr_sim.inject(hold)
    args = run_args(destination, "--wait", "120")
    first = start(args, env_for(lobstr_sim, destination, tmp_path / "a"), tmp_path)
    try:
        assert hold.arrived.wait(120), "the first run never polled"
        second = start(args, env_for(lobstr_sim, destination, tmp_path / "b"), tmp_path)
        waiting = second.stderr.readline()  # said once it found the lock taken
        hold.release.set()
        _, err_second = second.communicate(timeout=300)
        err_second = waiting + err_second
        _, err_first = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err_first[-2000:]
    assert second.returncode == 0, err_second[-2000:]
    assert "waiting" in err_second and f"PID {first.pid}" in " ".join(err_second.split())
    rows = history(destination, tmp_path)
    assert len(rows) == len(TASKS) and len(set(rows)) == len(rows)
    # the second started from the first's state: no change seen, every task polled twice
    polled = [r.path.rsplit("/", 1)[1] for r in lobstr_sim.requests("lobstr")]
    assert sorted(set(polled)) == sorted(TASKS) and len(polled) == 2 * len(TASKS)


@pytest.mark.parametrize("switch", ["file", "dataset"])
def test_state_belongs_to_one_destination_and_dataset(tmp_path, switch):
    """Track into B, run into A a few times, run into B: B polls exactly its own unfinished
    jobs, and A still knows its own."""
    lobstr = LobstrFixture()
    for task in TASKS:
        lobstr.add(task, ["PENDING", "PROGRESS", "SUCCESS"])
    own_b, own_a = TASKS[:2], TASKS[2:5]

    def where(name: str) -> tuple[list[str], dict[str, str]]:
        if switch == "file":
            return [], {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / f"{name}.duckdb")}
        return ["--dataset", f"ds_{name}"], {
            "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "shared.duckdb")}

    with Simulator(lobstr) as sim:
        base = {"DLT_DATA_DIR": str(tmp_path / "dlt"), "SOURCES__LOBSTR__BASE_URL": sim.base_url,
                "SOURCES__LOBSTR__API_KEY": lobstr.token}

        def command(name: str, *args: str) -> subprocess.CompletedProcess[str]:
            extra, env = where(name)
            done = cli(*args, *extra, cwd=tmp_path, env={**base, **env})
            assert done.returncode == 0, done.stderr[-2000:]
            return done

        command("b", "track", "lobstr", *own_b)
        command("a", "track", "lobstr", *own_a)
        for _ in range(2):
            sim.clear_log()
            command("a", "run")
            assert sorted(r.path.rsplit("/", 1)[1] for r in sim.requests("lobstr")) == own_a
            sim.advance()
        sim.clear_log()
        command("b", "run")
        assert sorted(r.path.rsplit("/", 1)[1] for r in sim.requests("lobstr")) == own_b
        sim.clear_log()
        command("a", "run")  # A's third sighting: SUCCESS, still its own three
        assert sorted(r.path.rsplit("/", 1)[1] for r in sim.requests("lobstr")) == own_a


REFUSED = "PROGRESS_REFUSED"


def _refused_answer(task: str) -> Fault:
    """A Lobstr answer the destination refuses for good, once: a status a CHECK constraint of
    the table forbids (as a DBA's constraint would; a NUL character, Postgres' own refusal, is
    stored as U+2400 since issue 30)."""
    return Fault(200, rf"/v1/tasks/upload/{task}", body={
        "id": task, "object": "task_upload", "state": REFUSED, "meta": None})


def _constrain(dsn: str, dataset: str, on: bool) -> None:
    import psycopg2

    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        # on the history table, as Postgres refused a NUL there: its rows never commit (a
        # package that committed history before failing is issue 31's case)
        cur.execute(f"ALTER TABLE {dataset}.lobstr_status_history ADD CONSTRAINT refused CHECK "
                    f"(native_status <> '{REFUSED}')" if on else
                    f"ALTER TABLE {dataset}.lobstr_status_history DROP CONSTRAINT refused")


@pytest.mark.parametrize("killed", [False, True])
def test_a_package_the_destination_refuses_is_set_aside_and_nothing_wedges(
        lobstr_sim, tmp_path, killed):
    """A package the destination refuses for good (a constraint violated) is set aside (kept,
    with the reason), the healthy providers load, and the next run loads everything new, the
    refused jobs included. `killed`: the package was left pending by a killed run."""
    dsn = postgres_dsn()
    dataset = f"us_{uuid.uuid4().hex[:12]}"
    dest = {"DESTINATION__POSTGRES__CREDENTIALS": dsn, "_DATASET": dataset}
    env = env_for(lobstr_sim, dest, tmp_path / "dlt")
    fixture = lobstr_sim.fixtures["lobstr"]
    fixture.add("f" * 32, ["PENDING"])  # a first run makes the table
    first_env = {**env, "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(["f" * 32])}
    assert cli(*run_args(dest), cwd=tmp_path, env=first_env).returncode == 0
    _constrain(dsn, dataset, on=True)
    lobstr_sim.inject(_refused_answer(TASKS[0]))
    if killed:  # the first load job commits, then the process dies
        first = cli(*run_args(dest), cwd=tmp_path, env={**env, "CRASH_AT": "load-job:1"},
                    script="crash_run.py")
        assert first.returncode == -9, first.stderr[-2000:]
    first = cli(*run_args(dest), cwd=tmp_path, env=env)
    assert first.returncode == 1, first.stderr[-2000:]
    message = " ".join(first.stderr.split())
    assert "set aside in" in message and "refused" in message, message
    kept = list((tmp_path / "dlt").rglob("SET_ASIDE.json"))
    assert len(kept) == 1 and "refused" in json.loads(kept[0].read_text())["reason"]
    _constrain(dsn, dataset, on=False)
    lobstr_sim.advance()
    second = cli(*run_args(dest), cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    rows = [r for r in history(dest, tmp_path) if r[0] != "f" * 32]
    # every task's changes recorded once, the refused one's first sighting included
    assert sorted({r[0] for r in rows}) == sorted(TASKS) and len(set(rows)) == len(rows)
    import psycopg2

    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), COUNT(DISTINCT job_ref) FROM {dataset}.lobstr_upload_tasks")
        assert cur.fetchone() == (len(TASKS) + 1, len(TASKS) + 1)
        for schema in (dataset, f"{dataset}_staging"):
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# each kind of table once (a provider's data, its history, each of dlt's own), dlt's load
# records on Postgres too
@pytest.mark.parametrize(("destination", "dropped"), [
    ("duckdb", "lobstr_upload_tasks"), ("duckdb", "lobstr_status_history"),
    ("duckdb", "_dlt_loads"), ("postgres", "_dlt_loads"), ("duckdb", "_dlt_version"),
    ("duckdb", "_dlt_pipeline_state")], indirect=["destination"])
def test_a_table_dropped_by_hand_comes_back_whole(lobstr_sim, destination, tmp_path, dropped):
    env = env_for(lobstr_sim, destination, tmp_path / "dlt")
    for _ in range(3):  # every task finished: none is polled by a normal run any more
        done = cli(*run_args(destination), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        lobstr_sim.advance()
    before = _query(destination, tmp_path, "SELECT job_ref, native_status FROM "
                                           "{ds}.lobstr_upload_tasks ORDER BY 1")
    assert len(before) == len(TASKS)
    _query(destination, tmp_path, f"DROP TABLE {{ds}}.{dropped} CASCADE")  # and the views
    lobstr_sim.fixtures["lobstr"].add("f" * 32, ["PENDING"])  # and one new job
    new_env = {**env, "SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([*TASKS, "f" * 32])}
    done = cli(*run_args(destination), cwd=tmp_path, env=new_env)
    assert done.returncode == 0, done.stderr[-2000:]
    message = " ".join(done.stderr.split())
    assert f"repaired lobstr: {dropped} missing in the destination" in message, message
    after = _query(destination, tmp_path, "SELECT job_ref, native_status FROM "
                                          "{ds}.lobstr_upload_tasks ORDER BY 1")
    assert after == sorted([*before, ("f" * 32, "PENDING")])
    rows = history(destination, tmp_path)
    assert {r[0] for r in rows} == {*TASKS, "f" * 32} and len(set(rows)) == len(rows)
    again = cli(*run_args(destination), cwd=tmp_path, env=new_env)  # and stays repaired
    assert again.returncode == 0 and "repaired" not in again.stderr, again.stderr[-2000:]


def test_a_dataset_restored_from_an_older_backup_is_read_again(lobstr_sim, tmp_path):
    """The local state is ahead of the destination: the destination wins, and the changes it
    lost are recorded again, once."""
    dest = {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb")}
    env = env_for(lobstr_sim, dest, tmp_path / "dlt")
    assert cli("run", cwd=tmp_path, env=env).returncode == 0
    backup = (tmp_path / "warehouse.duckdb").read_bytes()
    lobstr_sim.advance()
    assert cli("run", cwd=tmp_path, env=env).returncode == 0
    lost = history(dest, tmp_path)
    (tmp_path / "warehouse.duckdb").write_bytes(backup)  # the restore
    done = cli("run", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "was ahead of the destination's" in " ".join(done.stderr.split()), done.stderr
    assert history(dest, tmp_path) == lost  # each change once, none missing


def _run_at(offset: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A run whose wall clock is `offset` (faketime's `-2d`, `+3d`) away; its monotonic clock
    untouched (Python's timed waits hang on a faked one). Skipped without faketime."""
    import shutil

    if shutil.which("faketime") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("faketime is not installed: run the tests with `make test`")
        pytest.skip("faketime is not installed (Debian's faketime; `make test` installs it)")
    return subprocess.run(["faketime", "-f", offset, sys.executable, "-m", "pipelines",
                           "run"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "PYTHONPATH": str(REPO),
                               "FAKETIME_DONT_FAKE_MONOTONIC": "1"})


def _chains_in_order(rows: list[tuple[Any, ...]]) -> None:
    """Each job's rows (job, previous status, status, time) form one chain from its first
    sighting, and the times along it never go back."""
    by_job: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_job.setdefault(row[0], []).append(row)
    for job, seen in by_job.items():
        chain = [seen_row for seen_row in seen if seen_row[1] is None]  # the first sighting
        assert len(chain) == 1, job
        order, current = [], chain[0]
        while current is not None:  # follow previous -> native through the job's rows
            order.append(current)
            current = next((r for r in seen if r[1] == current[2] and r not in order), None)
        assert len(order) == len(seen), job
        times = [r[3] for r in order]
        assert times == sorted(times), (job, times)  # never before an earlier observation


def test_clock_set_back_then_lost_folder_records_each_change_once_and_in_order(
        lobstr_sim, tmp_path):
    """dlt restores the state of the newest load id, a wall-clock time: after the clock went
    back that is an older state, and changes were recorded twice, dated before the job was
    first seen. The highest state version is restored, and observation times never go back."""
    import shutil

    dest = {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb")}
    env = env_for(lobstr_sim, dest, tmp_path / "dlt")
    assert cli("run", cwd=tmp_path, env=env).returncode == 0
    lobstr_sim.advance()
    back = _run_at("-2d", tmp_path, env)  # the wall clock two days back
    assert back.returncode == 0, back.stderr[-2000:]
    shutil.rmtree(tmp_path / "dlt")  # the local folder is lost
    lobstr_sim.advance()
    assert cli("run", cwd=tmp_path, env=env).returncode == 0
    rows = _query(dest, tmp_path, "SELECT job_id, previous_native_status, native_status, "
                                  "observed_at FROM {ds}.lobstr_status_history")
    transitions = [r[:3] for r in rows]
    assert len(transitions) == len(set(transitions))  # no change recorded twice
    _chains_in_order(rows)


def test_one_run_with_the_clock_ahead_does_not_shift_later_runs_times(lobstr_sim, tmp_path):
    """A run 3 days ahead, then runs with the right clock: no observation is later than the
    last run's clock, the later runs' changes carry their own times, and each job's changes
    stay in order."""
    from datetime import datetime, timezone

    dest = {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb")}
    env = env_for(lobstr_sim, dest, tmp_path / "dlt")
    assert cli("run", cwd=tmp_path, env=env).returncode == 0
    lobstr_sim.advance()
    ahead = _run_at("+3d", tmp_path, env)
    assert ahead.returncode == 0, ahead.stderr[-2000:]
    lobstr_sim.advance()
    started = datetime.now(timezone.utc)
    done = cli("run", cwd=tmp_path, env=env)
    finished = datetime.now(timezone.utc)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "a clock that ran ahead" in " ".join(done.stderr.split()), done.stderr
    rows = _query(dest, tmp_path, "SELECT job_id, previous_native_status, native_status, "
                                  "observed_at FROM {ds}.lobstr_status_history")
    assert rows and max(r[3] for r in rows) <= finished  # none in the future
    latest = [r for r in rows if r[3] >= started]  # this run's changes, at this run's time
    assert latest, rows
    _chains_in_order(rows)


def test_a_dataset_dropped_by_hand_is_loaded_again_whole(lobstr_sim, tmp_path):
    dest = {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb")}
    env = env_for(lobstr_sim, dest, tmp_path / "dlt")
    for _ in range(2):
        assert cli("run", cwd=tmp_path, env=env).returncode == 0
        lobstr_sim.advance()
    _query(dest, tmp_path, "DROP SCHEMA {ds} CASCADE")
    done = cli("run", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(_query(dest, tmp_path, "SELECT * FROM {ds}.lobstr_upload_tasks")) == len(TASKS)
    rows = history(dest, tmp_path)  # every task's current status, once
    assert sorted(r[0] for r in rows) == sorted(TASKS) and len(set(rows)) == len(rows)


_MAKE_AT_ONCE = """
import os, sys, time
from pathlib import Path
from pipelines.destinations.destination import make_pipeline
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
pipeline = make_pipeline(pipelines_dir=sys.argv[2])
(Path(pipeline.working_dir) / f"made-by-{os.getpid()}").write_text("")
"""


def test_first_runs_starting_at_once_share_one_pipeline_folder(tmp_path):
    """Six processes make the pipeline in one new folder at the same moment (a Dagster
    materialization, two schedulers): each finds it or makes it, none wipes another's (dlt
    remakes a folder without state, which failed one with FileExistsError or lost the other's
    files)."""
    for attempt in range(3):
        go, folder = tmp_path / f"go{attempt}", tmp_path / f"pipelines{attempt}"
        env = {**os.environ, "PYTHONPATH": str(REPO),
               "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / f"at_once{attempt}.duckdb")}
        processes = [subprocess.Popen([sys.executable, "-c", _MAKE_AT_ONCE, str(go), str(folder)],
                                      env=env, stderr=subprocess.PIPE, text=True)
                     for _ in range(6)]
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in processes]
        assert [p.returncode for p in processes] == [0] * 6, errors
        marks = list(folder.rglob("made-by-*"))
        assert len(marks) == 6 and len({m.parent for m in marks}) == 1, marks
