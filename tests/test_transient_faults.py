"""Faults that pass are transient: a reader opening the DuckDB file mid-run, a full disk.
Real runs of the CLI over real HTTP into real DuckDB files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_crash_safety import Place, run, scenario

# opens the file read-only, reads, holds it a moment and closes it, every ~1.2 s (a BI tool's
# refresh); the exit code says how many of its opens succeeded (at least one must)
_READER = """
import duckdb, sys, time
opened = 0
while True:
    try:
        con = duckdb.connect(sys.argv[1], read_only=True)
    except duckdb.Error:
        time.sleep(0.05)
        continue
    con.execute("SELECT COUNT(*) FROM information_schema.tables").fetchall()
    opened += 1
    time.sleep(0.2)
    con.close()
    print(opened, flush=True)
    time.sleep(1.0)
"""


def test_a_reader_opening_the_file_mid_run_does_not_abort_it(tmp_path):
    place = Place(tmp_path / "place")
    place.workdir.mkdir()
    with scenario(four=True) as sim:
        assert run(sim, place).returncode == 0  # the file exists; the reader can open it
        sim.advance()
        reader = subprocess.Popen([sys.executable, "-c", _READER,
                                   str(place.workdir / "warehouse.duckdb")],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout is not None and reader.stdout.readline().strip() == "1"
            done = run(sim, place)
        finally:
            reader.kill()
            opened = reader.communicate()[0].split()
    assert done.returncode == 0, done.stderr[-3000:]
    summary = " ".join(done.stdout.split())
    for provider in ("cleartax", "highlevel", "lobstr", "upload_post"):
        assert f"{provider} │ loaded" in summary, summary
    assert opened, "the reader never opened the file during the run"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own (root only: `make test` runs as root in CI)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs: {made.stderr}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _resize(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def _used_kib(folder: Path) -> int:
    stats = os.statvfs(folder)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize // 1024


def test_a_full_disk_is_retried_and_records_no_change_twice(tmp_path, small_disk):
    def place_env(place: Place, sim) -> dict[str, str]:
        return {**place.env(sim), "DESTINATION__DUCKDB__CREDENTIALS":
                str(small_disk / f"{place.workdir.name}.duckdb")}

    reference, place = Place(tmp_path / "reference"), Place(tmp_path / "full")
    for each in (reference, place):
        each.workdir.mkdir()
    with scenario(imports=60) as sim:
        for each in (reference, place):
            assert run(sim, each, env=place_env(each, sim)).returncode == 0
        sim.advance()
        assert run(sim, reference, env=place_env(reference, sim)).returncode == 0
        _resize(small_disk, f"{_used_kib(small_disk) + 8}k")  # the next load does not fit
        full = run(sim, place, env=place_env(place, sim))
        assert full.returncode == 1, full.stderr[-3000:]
        _resize(small_disk, "64m")
        again = run(sim, place, env=place_env(place, sim))
    assert again.returncode == 0, again.stderr[-3000:]
    errors = [line for line in full.stderr.splitlines() if line.startswith("error")]
    assert "Traceback" not in full.stderr and "set aside" not in full.stderr, full.stderr
    assert len(errors) == 1, full.stderr  # one line, the cause and what happens next
    assert "No space left on device" in errors[0] and "retried by the next run" in errors[0]
    assert "lobstr, upload_post not started" in errors[0]
    got, want = (_history(p, small_disk) for p in (place, reference))
    assert got == want and len(got) == len(set(got))


def _history(place: Place, disk: Path) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(disk / f"{place.workdir.name}.duckdb"), read_only=True)
    try:
        return sorted(con.execute(
            "SELECT job_ref, native_status, previous_native_status FROM "
            "upload_status.highlevel_status_history UNION ALL SELECT job_ref, native_status, "
            "previous_native_status FROM upload_status.lobstr_status_history").fetchall(),
            key=repr)
    finally:
        con.close()
