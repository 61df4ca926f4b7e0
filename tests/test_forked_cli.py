"""The tests' command runner (tests/forked_cli.py) gives a command what a fresh interpreter
would: its folder, environment, argv, output and exit code, a signal's death included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO
from forked_cli import run_forked

SCRIPT = """
import json, os, signal, sys
print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "marker": os.environ.get("MARKER"),
                  "inherited": "FORKED_CLI_NOT_GIVEN" in os.environ, "path0": sys.path[0]}))
print("to stderr", file=sys.stderr)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(int(sys.argv[1]))
"""


def test_a_forked_command_gets_its_folder_environment_argv_and_exit_code(tmp_path, monkeypatch):
    script = tmp_path / "scripts" / "probe.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    monkeypatch.setenv("FORKED_CLI_NOT_GIVEN", "1")  # the test's own environment stays its own
    env = {"PYTHONPATH": str(REPO), "MARKER": "m-42", "PATH": os.environ["PATH"]}

    done = run_forked(["3", "x y"], tmp_path, env, str(script), timeout=60)
    killed = run_forked(["kill"], tmp_path, env, str(script), timeout=60)

    assert done.returncode == 3 and done.stderr == "to stderr\n"
    assert done.stdout.strip() == (
        f'{{"cwd": "{tmp_path}", "argv": ["3", "x y"], "marker": "m-42", "inherited": false, '
        f'"path0": "{script.parent}"}}')
    assert killed.returncode == -signal.SIGKILL


def test_a_forked_command_prints_what_a_fresh_one_prints(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "90"}
    fresh = subprocess.run([sys.executable, "-m", "pipelines", "run", "--help"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    forked = run_forked(["run", "--help"], Path(tmp_path), env, None, timeout=60)

    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode, fresh.stdout, fresh.stderr)
    assert "--destination" in forked.stdout


ORPHAN = """
import os, sys
sys.path[:0] = [{tests!r}, {repo!r}]
import forked_cli
from pathlib import Path
forked_cli.run_forked(["--help"], Path({cwd!r}), dict(os.environ), None, 60)
print(forked_cli._SERVER.process.pid, flush=True)
os._exit(0)  # no atexit handler runs: as a test process that is killed
"""


def test_the_server_ends_with_the_test_process_that_started_it(tmp_path):
    code = ORPHAN.format(tests=str(REPO / "tests"), repo=str(REPO), cwd=str(tmp_path))
    started = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    server = int(started.stdout.strip())
    status = Path(f"/proc/{server}/status")
    for _ in range(600):  # a bound on a hang, not a timing: it ends at once on EOF
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.05)
    assert not status.exists() or "State:\tZ" in status.read_text()
