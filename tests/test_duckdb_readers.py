"""The DuckDB file a run makes is readable by the DuckDB 1.x readers BI tools embed: opened
read-only by a real DuckDB 1.4 (its own cached virtualenv, scripts/duckdb1-venv.sh), the
guide's queries give what DuckDB 2.0 gives. `latest` opts out (and the 1.x reader then refuses,
which shows the check can fail); a value DuckDB does not know exits 2 naming the key."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, cached_venv, cli

from sources.highlevel.fixture import HighLevelFixture

DB = "upload_status_data.duckdb"
KEY = "DESTINATION__DUCKDB__STORAGE_COMPATIBILITY_VERSION"

READ = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps({"version": duckdb.__version__,
                  "rows": [[[f"{v:.6f}" if isinstance(v, float) else str(v) for v in r]
                            for r in con.execute(q).fetchall()]
                           for q in json.loads(sys.argv[2])]}))
"""


@pytest.fixture(scope="module")
def duckdb1() -> Path:
    return cached_venv("duckdb1-venv.sh") / "bin" / "python"


def guide_queries() -> list[str]:
    guide = (REPO / "docs/bi-guide.md").read_text()
    return [q.strip().rstrip(";") for q in re.findall(r"```sql\n(.*?)```", guide, re.S)
            if q.lstrip().upper().startswith("SELECT")]


def read_with(python: Path, db: Path, queries: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-c", READ, str(db), json.dumps(queries)],
                          capture_output=True, text=True, timeout=120)


def test_a_run_makes_a_file_duckdb_1x_reads(duckdb1, highlevel_sim, polled_sim, tmp_path):
    highlevel_sim(HighLevelFixture(locations={"loc1": 12}))
    lobstr = polled_sim.fixtures["lobstr"]
    ids = [lobstr.add("a" * 32, ["SUCCESS"]), lobstr.add("b" * 32, ["FAILURE"])]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(ids)}
    for _ in range(2):  # created, then opened and written again by DuckDB 2.0
        done = cli("run", "--source", "highlevel", "--source", "lobstr", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    queries = [*guide_queries(), "SELECT provider, status, COUNT(*) FROM "
               "upload_status.upload_jobs GROUP BY ALL ORDER BY ALL"]

    read = read_with(duckdb1, tmp_path / DB, queries)

    assert read.returncode == 0, read.stderr
    got = json.loads(read.stdout)
    assert got["version"].startswith("1.")
    con = duckdb.connect(str(tmp_path / DB), read_only=True)
    try:
        # floats to 6 places: two DuckDB versions may differ in a percentile's last digit
        expected = [[[f"{v:.6f}" if isinstance(v, float) else str(v) for v in r]
                     for r in con.execute(q).fetchall()] for q in queries]
    finally:
        con.close()
    assert got["rows"] == expected
    assert got["rows"][-1]  # the jobs are there
    assert sum(int(r[2]) for r in got["rows"][-1]) == 14


def test_latest_storage_is_refused_by_1x_and_a_bad_value_exits_2(duckdb1, polled_sim,
                                                                 tmp_path):
    lobstr = polled_sim.fixtures["lobstr"]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([lobstr.add("c" * 32, ["SUCCESS"])])}

    done = cli("run", cwd=tmp_path, env={**env, KEY: "latest"})
    assert done.returncode == 0, done.stderr
    refused = read_with(duckdb1, tmp_path / DB, ["SELECT 1"])
    assert refused.returncode != 0 and "version" in refused.stderr.lower()

    other = tmp_path / "other"
    other.mkdir()
    bad = cli("run", cwd=other, env={**env, KEY: "v9"})
    assert bad.returncode == 2
    assert KEY in bad.stderr and "Traceback" not in bad.stderr
    assert not (other / DB).exists()
