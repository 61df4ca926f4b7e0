"""The command's surface as an operator meets it: help, version, pipes, the project folder
found from elsewhere, telemetry off unless chosen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from conftest import REPO, cli

from sources import provider_names


def test_version_and_short_help():
    here = Path.cwd()
    assert cli("--version", cwd=here).stdout.strip() == f"upload-status {version('upload-status')}"
    for args in (["-h"], ["run", "-h"], ["untrack", "--help"]):
        done = cli(*args, cwd=here, env={"COLUMNS": "120"})
        assert done.returncode == 0 and "Usage" in done.stdout, args


def test_run_help_names_every_provider():
    done = cli("run", "--help", cwd=Path.cwd(), env={"COLUMNS": "200"})
    for name in provider_names():
        assert name in done.stdout, name


def piped(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """The command's exit code and error output when its reader has gone before it writes
    (`| head` after its line): its stdout is a pipe whose reading end is closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO), **env})
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_a_closed_pipe_keeps_the_commands_exit_code(polled_sim, tmp_path: Path):
    lobstr = polled_sim.fixtures["lobstr"]
    ids = json.dumps([lobstr.add("a" * 32, ["SUCCESS"])])
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": ids}
    for args in (["--help"], ["run"], ["report", "--format", "json"], ["report"]):
        code, err = piped(args, tmp_path, env)
        assert code == 0, (args, err)
        assert "BrokenPipe" not in err and "Exception ignored" not in err, (args, err)
    failing = {**env, "SOURCES__UPLOAD_POST__BASE_URL": "http://127.0.0.1:9"}
    code, err = piped(["run"], tmp_path, failing)
    assert code == 1, err  # the run's own code: a provider failed


def test_config_is_found_from_a_folder_below_the_project(polled_sim, tmp_path: Path):
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    lobstr = polled_sim.fixtures["lobstr"]
    job = lobstr.add("c" * 32, ["SUCCESS"])
    (project / ".dlt" / "secrets.toml").write_text(
        f'[sources.lobstr]\napi_key = "{lobstr.token}"\nupload_task_ids = ["{job}"]\n')
    below = project / "jobs" / "nightly"
    below.mkdir(parents=True)
    env = {k: "" for k in os.environ if k.startswith("SOURCES__") and "LOBSTR" in k
           and "BASE_URL" not in k}

    done = cli("run", "--source", "lobstr", cwd=below, env=env)

    assert done.returncode == 0, done.stderr
    assert f"configuration read from {project / '.dlt'}" in done.stderr
    assert (project / "upload_status_data.duckdb").exists()
    assert not list(below.glob("*.duckdb"))
    # DLT_PROJECT_DIR names it from anywhere, a report included
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = cli("report", "--format", "json", cwd=elsewhere,
                 env={**env, "DLT_PROJECT_DIR": str(project)})
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["totals"][0]["jobs"] == 1


def test_nothing_configured_says_where_configuration_was_read(tmp_path: Path):
    no_sources = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    done = cli("run", cwd=tmp_path, inherit=no_sources)

    assert done.returncode == 2
    assert f"no provider is configured: set a credential in {tmp_path / '.dlt'}" in \
        done.stderr.replace("\n", "")


def test_a_provider_named_twice_runs_once(polled_sim, tmp_path: Path):
    lobstr = polled_sim.fixtures["lobstr"]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([lobstr.add("a" * 32, ["SUCCESS"])]),
           "COLUMNS": "160"}
    done = cli("run", "--source", "lobstr", "--source", "lobstr", cwd=tmp_path, env=env)

    assert done.returncode == 0, done.stderr
    assert sum(line.startswith("│ lobstr ") for line in done.stdout.splitlines()) == 1
    assert len(polled_sim.requests("lobstr")) == 1


def telemetry_in(folder: Path, environ: dict[str, str]) -> str:
    """dlt's telemetry setting as the command leaves it, in a process run in `folder`."""
    code = ("from pipelines.run.environment import telemetry_off_unless_chosen as t; "
            "from dlt.common.configuration import resolve_configuration as r; "
            "from dlt.common.configuration.specs import RuntimeConfiguration as C; "
            "t(); print(r(C()).dlthub_telemetry)")
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=120, env={**environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_telemetry_is_off_unless_the_user_turns_it_on(tmp_path: Path):
    environ = {k: v for k, v in os.environ.items() if k != "RUNTIME__DLTHUB_TELEMETRY"}
    assert telemetry_in(tmp_path, environ) == "False"  # no .dlt anywhere
    assert telemetry_in(tmp_path, {**environ, "RUNTIME__DLTHUB_TELEMETRY": "true"}) == "True"
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text("[runtime]\ndlthub_telemetry = true\n")
    assert telemetry_in(tmp_path, environ) == "True"
    assert telemetry_in(REPO, environ) == "False"  # the project's own configuration


def test_progress_is_drawn_on_a_terminal_and_not_in_a_pipe(polled_sim, tmp_path: Path):
    """On a terminal (a pseudo-terminal here) the run shows each provider's counters while it
    works; piped (cron, CI) it prints the summary only."""
    import shlex
    import shutil

    script = shutil.which("script")
    if script is None:
        import pytest

        pytest.skip("script (util-linux) is needed for a pseudo-terminal")
    lobstr = polled_sim.fixtures["lobstr"]
    ids = [lobstr.add(f"{i:032x}", ["PENDING"]) for i in range(300)]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(ids), "COLUMNS": "100",
           "SOURCES__LOBSTR__CONCURRENCY": "1", "SOURCES__LOBSTR__RATE_LIMIT_REQUESTS": "0",
           "PYTHONPATH": str(REPO)}
    command = shlex.join([sys.executable, "-m", "pipelines", "run", "--source", "lobstr"])
    on_terminal = subprocess.run([script, "-qec", command, "/dev/null"], cwd=tmp_path,
                                 env={**os.environ, **env}, capture_output=True, text=True,
                                 timeout=300)
    piped = cli("run", "--source", "lobstr", cwd=tmp_path, env=env)

    assert on_terminal.returncode == 0, on_terminal.stdout[-2000:]
    assert "req/s" in on_terminal.stdout and " polled" in on_terminal.stdout
    assert piped.returncode == 0
    assert "req/s" not in piped.stdout + piped.stderr


def test_the_summary_is_readable_at_80_columns(polled_sim, tmp_path: Path):
    lobstr = polled_sim.fixtures["lobstr"]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([lobstr.add("a" * 32, ["SUCCESS"])]),
           "COLUMNS": "80"}
    done = cli("run", cwd=tmp_path, env=env)

    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    line = next(line for line in done.stdout.splitlines() if line.startswith("  lobstr:"))
    assert line == "  lobstr: loaded; requests 1, jobs seen 1, polled 1, new 1"
    assert all(len(row) <= 80 for row in done.stdout.splitlines())
