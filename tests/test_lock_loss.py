"""A run that loses its run lock writes nothing more; a lock path that is no regular file is
refused. Real Postgres, real runs of the CLI over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import REPO
from test_crash_safety import TASKS, Place, _admin, run, scenario, tables

from simulator import Fault


def _database() -> str:
    name = f"lock_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    return name


def _start_held(sim, place: Place) -> tuple[subprocess.Popen[str], Fault]:
    """Start a run of `place` and hold it at a Lobstr poll (HighLevel is loaded by then)."""
    hold = Fault(None, rf"/v1/tasks/upload/{TASKS[3]}", delay=120)
    sim.inject(hold)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "run", *place.args], cwd=place.workdir,
        env={**os.environ, **place.env(sim), "PYTHONPATH": str(REPO)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert hold.arrived.wait(120), "the run never reached the held request"
    hold.times, hold.delay = 0, 0  # later requests pass
    return process, hold


def _reference(tmp_path) -> dict:
    database = _database()
    try:
        place = Place(tmp_path / "reference", "postgres", database)
        place.workdir.mkdir()
        with scenario() as sim:
            assert run(sim, place).returncode == 0
        return tables(place)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _no_change_twice(got: dict) -> None:
    for name, rows in got.items():
        if name.endswith("_status_history"):
            assert len(rows) == len(set(rows)), name


def test_a_run_whose_lock_session_is_terminated_stops_before_writing_again(tmp_path):
    want = _reference(tmp_path)
    database = _database()
    try:
        first = Place(tmp_path / "first", "postgres", database)
        second = Place(tmp_path / "second", "postgres", database)  # another machine's folder
        first.workdir.mkdir()
        second.workdir.mkdir()
        with scenario() as sim:
            process, hold = _start_held(sim, first)
            try:
                ended = first.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    f"application_name LIKE 'upload-status pid {process.pid} %'")
                assert ended == [(True,)]
                taken = run(sim, second)  # the lock is free: a second machine starts
                assert taken.returncode == 0, taken.stderr[-2000:]
                hold.release.set()
                _, err = process.communicate(timeout=300)
            finally:
                process.kill()
            assert process.returncode == 1, err[-2000:]
            text = " ".join(err.split())
            assert "lost the run lock" in text and "Traceback" not in text, text
            got = tables(first)
            _no_change_twice(got)
            assert got == want  # the first run's late load never landed
            again = run(sim, first)  # its pending package was overtaken: set aside
            assert again.returncode == 0, again.stderr[-2000:]
            assert "overtaken" in " ".join((again.stdout + again.stderr).split())
        assert tables(first) == want
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_a_low_idle_session_timeout_does_not_end_the_lock(tmp_path):
    want = _reference(tmp_path)
    database = _database()
    try:
        _admin(f"ALTER DATABASE \"{database}\" SET idle_session_timeout = '1s'")
        first = Place(tmp_path / "first", "postgres", database)
        second = Place(tmp_path / "second", "postgres", database)
        first.workdir.mkdir()
        second.workdir.mkdir()
        with scenario() as sim:
            process, hold = _start_held(sim, first)
            try:
                # the lock's session idles for longer than the server lets a session idle
                time.sleep(3)
                refused = run(sim, second)
                hold.release.set()
                _, err = process.communicate(timeout=300)
            finally:
                process.kill()
        assert process.returncode == 0, err[-2000:]
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "another upload-status process" in " ".join(refused.stderr.split())
        got = tables(first)
        _no_change_twice(got)
        assert got == want
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.parametrize("kind", ["symlink", "folder"])
def test_a_lock_path_that_is_no_regular_file_is_refused(tmp_path, kind):
    place = Place(tmp_path / "place")
    place.workdir.mkdir()
    lock = place.workdir / "warehouse.duckdb.lock"
    target = tmp_path / "precious.txt"
    target.write_text("x" * 340)
    if kind == "symlink":
        lock.symlink_to(target)
    else:
        lock.mkdir()
    with scenario() as sim:
        done = run(sim, place)
    assert done.returncode == 2, done.stderr[-2000:]
    text = " ".join(done.stderr.split())
    assert str(lock) in text and "Traceback" not in text, text
    assert target.read_text() == "x" * 340
    assert not sim.requests()  # refused before anything was read
