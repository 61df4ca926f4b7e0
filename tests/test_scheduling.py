"""The scheduling files we ship: the GitHub Actions workflow and the Airflow DAG parse, name the
command and the configuration keys that exist, and the dlt script runs as `dlt deploy` needs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

ROOT = Path(__file__).parents[1]
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def test_github_actions_workflow_is_valid_and_uses_real_keys():
    text = (ROOT / "examples/github-actions/upload-status.yml").read_text()
    workflow = yaml.safe_load(text)
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads on: as True

    (schedule,) = triggers["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields)
    assert "workflow_dispatch" in triggers
    job = workflow["jobs"]["load"]
    assert job["runs-on"] and job["timeout-minutes"] > 0
    steps = job["steps"]
    assert all(("uses" in s) != ("run" in s) for s in steps)  # each step does one thing
    commands = " ".join(s.get("run", "") for s in steps)
    assert "upload-status run" in commands and "upload-status report" in commands
    # every provider's credential, new providers' too, from one secret written as the
    # secrets file dlt reads, readable by the runner's user only; none is in the file itself
    (written,) = [s for s in steps if ".dlt/secrets.toml" in s.get("run", "")]
    assert written["env"] == {"SECRETS_TOML": "${{ secrets.UPLOAD_STATUS_SECRETS_TOML }}"}
    assert "umask 077" in written["run"]
    assert steps.index(written) < next(i for i, s in enumerate(steps)
                                       if "upload-status run" in s.get("run", ""))
    assert not re.search(r"SOURCES__\w+", text)
    for key, value in job["env"].items():  # the destination's, from the repository's secrets
        assert value == "${{ secrets." + key + " }}"
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_airflow_dag_resolves_nothing_at_parse_time():
    """Airflow parses DAG files often and everywhere: the module imports Airflow, the standard
    library and the registry's list of provider folders (which imports no dlt and reads no
    configuration); the project and its configuration are read inside the tasks."""
    tree = ast.parse((ROOT / "examples/airflow/dag_upload_status.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in ast.walk(ast.Try(body=[n for n in tree.body if isinstance(n, ast.Try)],
                                 handlers=[], orelse=[], finalbody=[])):
        if isinstance(node, ast.Import | ast.ImportFrom):
            top.append(node)
    modules = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
               for n in top for a in n.names}
    allowed = {"__future__", "datetime", "typing", "pendulum", "airflow", "sources"}
    assert modules <= allowed, modules
    listed = subprocess.run(
        [sys.executable, "-c", "import sys, sources; print(sources.provider_names(), "
         "[m for m in ('dlt', 'requests', 'duckdb') if m in sys.modules])"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = sorted(p.name for p in (ROOT / "sources").iterdir() if (p / "fixture.py").exists())
    assert listed.strip() == f"{folders} []"


def test_dlt_script_loads_what_is_configured_and_creates_views(polled_sim, tmp_path: Path):
    lobstr = polled_sim.fixtures["lobstr"]
    lobstr.add("a" * 32, ["SUCCESS"])
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": f'["{"a" * 32}"]',
           "SOURCES__UPLOAD_POST__API_KEY": "wrong-key"}  # fails; the others still load

    done = subprocess.run([sys.executable, str(ROOT / "upload_status_pipeline.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)})

    assert done.returncode == 1, done.stderr  # the command's own exit code
    assert "skipped highlevel not configured" in done.stderr
    assert "upload_post: the API rejected the credential" in done.stderr
    assert "wrong-key" not in done.stdout + done.stderr
    con = duckdb.connect(str(tmp_path / "upload_status_data.duckdb"), read_only=True)
    try:
        assert con.execute("select provider, status from upload_status.upload_jobs"
                           ).fetchall() == [("lobstr", "succeeded")]
    finally:
        con.close()
