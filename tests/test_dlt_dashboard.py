"""dlt's workspace dashboard on the project's pipeline: `upload-status dlt show` (dlt's
`dlt pipeline ... show` on our folder and DuckDB file) starts it, and it answers on 127.0.0.1;
in its own cached virtualenv (marimo, ibis, dlt's hub extra: scripts/dashboard-venv.sh)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, cached_venv, cli


def listeners(port: int) -> set[str]:
    """The local addresses (hex, as the kernel lists them) listening on TCP `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture(scope="module")
def dashboard_python() -> Path:
    return cached_venv("dashboard-venv.sh") / "bin" / "python"


def test_the_dashboard_starts_and_answers_on_loopback(dashboard_python, polled_sim,
                                                      tmp_path: Path):
    lobstr = polled_sim.fixtures["lobstr"]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([lobstr.add("a" * 32, ["SUCCESS"])])}
    assert cli("run", "--source", "lobstr", cwd=tmp_path, env=env).returncode == 0
    log = tmp_path / "dashboard.log"
    with log.open("w") as out:
        show = subprocess.Popen(
            [str(dashboard_python), "-m", "pipelines", "dlt", "show"], cwd=tmp_path,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO),
                 "PATH": f"{dashboard_python.parent}{os.pathsep}{os.environ['PATH']}"})
    try:
        page = None
        for _ in range(240):  # up to 2 minutes for marimo to start
            if (found := re.search(r"URL: http://(?:localhost|127\.0\.0\.1):(\d+)",
                                   log.read_text())) is not None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{found[1]}/",
                                                timeout=5) as answer:
                        page = answer.read().decode()
                        break
                except OSError:
                    pass
            assert show.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert page is not None, log.read_text()[-3000:]
        assert "<title>dlt workspace dashboard</title>" in page
        assert listeners(int(found[1])) == {"0100007F"}  # 127.0.0.1 only (no 0.0.0.0, no ::)
    finally:
        os.killpg(show.pid, signal.SIGTERM)
        show.wait(timeout=30)
