"""The scheduling files we ship: the GitHub Actions workflow and the Airflow DAG parse, name the
command and the configuration keys that exist, and the plain dlt script runs."""

from __future__ import annotations

import json
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
    # what needs a file (a TOML table of tokens, agency OAuth) from one optional secret written
    # as the secrets file dlt reads, readable by the runner's user only, before the load; the
    # settings themselves: test_github_actions.py
    (written,) = [s for s in steps if ".dlt/secrets.toml" in s.get("run", "")]
    assert written["env"] == {"SECRETS_TOML": "${{ secrets.UPLOAD_STATUS_SECRETS_TOML }}"}
    assert "umask 077" in written["run"] and '[ -n "$SECRETS_TOML" ]' in written["run"]
    assert steps.index(written) < next(i for i, s in enumerate(steps)
                                       if "upload-status run" in s.get("run", ""))
    assert "--format markdown" in commands
    assert workflow["concurrency"]["cancel-in-progress"] is False


# a stand-in for Airflow's decorators that records the tasks the DAG file declares
AIRFLOW_STUB = """
TASKS = []
def dag(**kwargs):
    return lambda build: build
def task(task_id):
    return lambda function: lambda *args: TASKS.append([task_id, *args])
"""


def test_airflow_dag_resolves_nothing_at_parse_time(tmp_path: Path):
    """Airflow parses DAG files often and everywhere: parsing the file (with Airflow's
    decorators stood in) declares one task per provider folder and imports neither dlt nor
    the pipeline nor anything that reads configuration."""
    stub = tmp_path / "airflow"
    stub.mkdir()
    (stub / "__init__.py").write_text("")
    (stub / "decorators.py").write_text(AIRFLOW_STUB)
    code = ("import json, runpy, sys; runpy.run_path(sys.argv[1]); "
            "import airflow.decorators as d; print(json.dumps([d.TASKS, sorted(m for m in "
            "sys.modules if m.split('.')[0] in ('dlt', 'pipelines', 'duckdb', 'requests'))]))")
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "examples/airflow/dag_upload_status.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    assert done.returncode == 0, done.stderr
    tasks, imported = json.loads(done.stdout)
    folders = sorted(p.name for p in (ROOT / "sources").iterdir() if (p / "fixture.py").exists())
    assert tasks == [[f"load_{name}", name] for name in folders]
    assert imported == []


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
