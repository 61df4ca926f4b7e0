"""`report` only reads: beside a BI tool holding the DuckDB file open read-only, and on a file
the user cannot write, it leaves the file and the pipeline folder untouched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli


def loaded(polled_sim, tmp_path: Path) -> Path:
    lobstr = polled_sim.fixtures["lobstr"]
    ids = [lobstr.add("a" * 32, ["SUCCESS"]), lobstr.add("b" * 32, ["FAILURE"])]
    done = cli("run", cwd=tmp_path, env={"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(ids)})
    assert done.returncode == 0, done.stderr
    return tmp_path / "upload_status_data.duckdb"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_report_beside_a_reader_holding_the_file(polled_sim, tmp_path: Path):
    db = loaded(polled_sim, tmp_path)
    reader = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys; c=duckdb.connect({str(db)!r}, "
         "read_only=True); c.execute('select 1').fetchall(); print('ready', flush=True); "
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        before = digest(db)
        done = cli("report", "--format", "json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["totals"][0]["success_rate"] == 0.5
        assert digest(db) == before
        # a run, which writes, is refused while the reader holds the file past the wait
        run = cli("run", cwd=tmp_path, env={"DESTINATION__DUCKDB__READER_WAIT_SECONDS": "1"})
        assert run.returncode == 2 and "in use by another process" in run.stderr
    finally:
        reader.communicate("", timeout=30)


def _as_nobody() -> list[str]:
    """A command prefix running as an unprivileged user: root writes any file whatever its
    mode, so a read-only file is read-only only to someone else."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_report_on_a_read_only_file_in_a_read_only_folder(polled_sim, tmp_path: Path):
    db = loaded(polled_sim, tmp_path)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    copy = shelf / "warehouse.duckdb"
    shutil.copy(db, copy)
    copy.chmod(0o444)
    shelf.chmod(0o555)
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:  # pytest's folders are private to root
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    before = digest(copy)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(shelf),
           "DESTINATION__DUCKDB__CREDENTIALS": str(copy), "DLT_DATA_DIR": str(shelf / "dlt")}

    done = subprocess.run([*_as_nobody(), sys.executable, "-m", "pipelines", "report",
                           "--format", "json"], cwd=shelf, env=env, capture_output=True,
                          text=True, timeout=120)
    run = subprocess.run([*_as_nobody(), sys.executable, "-m", "pipelines", "run"],
                         cwd=shelf, env={**env, "SOURCES__LOBSTR__API_KEY": "k"},
                         capture_output=True, text=True, timeout=120)
    writable = tmp_path / "dlt"
    writable.mkdir(mode=0o777)
    writable.chmod(0o777)
    run_elsewhere = subprocess.run(
        [*_as_nobody(), sys.executable, "-m", "pipelines", "run"], cwd=shelf,
        env={**env, "SOURCES__LOBSTR__API_KEY": "k", "DLT_DATA_DIR": str(writable)},
        capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"][0]["jobs"] == 2
    assert digest(copy) == before and sorted(p.name for p in shelf.iterdir()) == [copy.name]
    assert run.returncode == 2 and "DLT_DATA_DIR" in run.stderr, run.stderr
    assert run_elsewhere.returncode == 2, run_elsewhere.stderr
    assert "read-only" in run_elsewhere.stderr, run_elsewhere.stderr
    assert "Traceback" not in run.stderr + run_elsewhere.stderr
