"""Configuration mistakes as an operator makes them: the real command in a process of its own,
exit 2 with one line naming the key or the value's problem, never a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, cli

from sources.highlevel.fixture import HighLevelFixture


def assert_usage_error(done: subprocess.CompletedProcess[str], *named: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines()
              if line.startswith("error") or "Error" in line]  # ours, or click's usage box
    assert errors, done.stderr
    for text in named:
        assert text in done.stderr, (text, done.stderr)


def lobstr_env(polled_sim) -> dict[str, str]:
    """Lobstr pointed at the simulator with one finished job: a provider that loads."""
    job = polled_sim.fixtures["lobstr"].add("e" * 32, ["SUCCESS"])
    return {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([job])}


@pytest.mark.parametrize("command", [["run"], ["report"], ["track", "lobstr", "a" * 32]])
def test_a_syntax_error_in_secrets_toml_names_the_file_and_line(tmp_path: Path, command):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text('[sources.lobstr]\napi_key = "abc\n')

    done = cli(*command, cwd=tmp_path)

    assert_usage_error(done, "secrets.toml is not valid TOML", "line 2")


@pytest.mark.parametrize(("args", "env", "named"), [
    (["run", "--destination", "nosuchdest"], {}, "--destination nosuchdest"),
    (["run", "--destination", "postgres"], {}, "DESTINATION__POSTGRES__CREDENTIALS"),
    (["report", "--destination", "postgres"], {}, "DESTINATION__POSTGRES__CREDENTIALS"),
    (["run"], {"RUNTIME__REQUEST_TIMEOUT": "abc"}, "RUNTIME__REQUEST_TIMEOUT"),
    (["run"], {"RUNTIME__REQUEST_MAX_ATTEMPTS": "0"}, "RUNTIME__REQUEST_MAX_ATTEMPTS"),
    (["run"], {"DESTINATION__DUCKDB__CREDENTIALS": "md:my_db"}, "--destination motherduck"),
    (["run"], {"DESTINATION__DUCKDB__CREDENTIALS": "motherduck:x"}, "MotherDuck"),
    (["run"], {"DESTINATION__DUCKDB__CREDENTIALS": ":memory:"}, "in-memory"),
    (["run"], {"DESTINATION__DUCKDB__CREDENTIALS": "UPLOAD_STATUS.duckdb"},
     "DESTINATION__DUCKDB__CREDENTIALS"),
    (["report", "--since", "1000000"], {}, "--since"),
    (["run", "--dataset", " "], {}, "--dataset"),
    (["report", "--chart", "rates.bmp"], {}, "--chart"),
    (["report", "--chart", "r" * 300 + ".png"], {}, "--chart"),
    (["report", "--stuck-hours", "inf"], {}, "--stuck-hours"),
    (["run", "--destination", "postgres", "--dataset", "d" * 200],
     {"DESTINATION__POSTGRES__CREDENTIALS": "postgresql://u:p@127.0.0.1:9/db"}, "--dataset"),
])
def test_settings_the_command_cannot_use_exit_2_naming_them(polled_sim, tmp_path: Path, args,
                                                            env, named):
    done = cli(*args, cwd=tmp_path, env={**lobstr_env(polled_sim), **env})

    assert_usage_error(done, named)
    assert not list(tmp_path.glob("*.duckdb")) or args[0] == "report"


@pytest.mark.parametrize("case", ["missing folder", "a folder", "empty file", "not duckdb"])
def test_a_duckdb_path_that_cannot_be_the_database_is_named(polled_sim, tmp_path: Path, case):
    path = {"missing folder": tmp_path / "nowhere" / "w.duckdb",
            "a folder": tmp_path / "w.duckdb", "empty file": tmp_path / "w.duckdb",
            "not duckdb": tmp_path / "w.duckdb"}[case]
    if case == "a folder":
        path.mkdir()
    elif case == "empty file":
        path.touch()
    elif case == "not duckdb":
        path.write_text("id,status\n1,ok\n")
    env = {**lobstr_env(polled_sim), "DESTINATION__DUCKDB__CREDENTIALS": str(path)}

    for command in ("run", "report"):
        done = cli(command, cwd=tmp_path, env=env)
        assert_usage_error(done, "DESTINATION__DUCKDB__CREDENTIALS", str(path))
    assert not (tmp_path / "nowhere").exists()  # no lock file made beside a missing folder
    if case in ("empty file", "not duckdb"):
        assert path.stat().st_size == (0 if case == "empty file" else 15)  # left as it was


def test_postgres_without_its_driver_says_what_to_install(tmp_path: Path):
    """psycopg2 made unimportable in the command's process, as in an install without the
    `postgres` extra."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['psycopg2'] = None; "
         "from pipelines.commands.cli import main; main()", "run", "--destination", "postgres"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
             "DLT_DATA_DIR": str(tmp_path / "dlt"),
             "DESTINATION__POSTGRES__CREDENTIALS": "postgresql://u:p@127.0.0.1:5/db"})

    assert_usage_error(done, 'upload-status[postgres]')


def test_report_against_an_unreachable_postgres_exits_2(tmp_path: Path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = cli("report", "--destination", "postgres", cwd=tmp_path, env={
        "DESTINATION__POSTGRES__CREDENTIALS": f"postgresql://u:pw-SECRET-77@127.0.0.1:{port}/db"})

    assert_usage_error(done, "cannot connect", "DESTINATION__POSTGRES__CREDENTIALS")
    assert "pw-SECRET-77" not in done.stdout + done.stderr


def test_a_bad_base_url_fails_that_provider_and_the_others_still_load(polled_sim,
                                                                      tmp_path: Path):
    env = {**lobstr_env(polled_sim), "SOURCES__CLEARTAX__BASE_URL": "not-a-url",
           "SOURCES__CLEARTAX__ACTIVITIES": '["t1/a1"]'}
    done = cli("run", cwd=tmp_path, env=env)

    assert_usage_error(done, "SOURCES__CLEARTAX__BASE_URL")
    con = duckdb.connect(str(tmp_path / "upload_status_data.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from upload_status.lobstr_upload_tasks"
                           ).fetchone() == (1,)
    finally:
        con.close()


def test_a_dataset_name_is_normalized_once_and_used_everywhere(polled_sim, tmp_path: Path):
    env = lobstr_env(polled_sim)
    done = cli("run", "--dataset", "My Dataset", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "views:" in done.stdout and "error" not in done.stderr

    for given in ("My Dataset", "my_dataset"):
        report = cli("report", "--dataset", given, "--format", "json", cwd=tmp_path)
        assert report.returncode == 0, report.stderr
        assert json.loads(report.stdout)["totals"][0]["jobs"] == 1
    assert cli("run", "--dataset", "123", cwd=tmp_path, env=env).returncode == 0
    assert cli("report", "--dataset", "123", cwd=tmp_path).returncode == 0


def test_placeholders_from_the_example_file_count_as_not_set(polled_sim, tmp_path: Path):
    """The README's way: copy the example, fill in the Lobstr key only."""
    (tmp_path / ".dlt").mkdir()
    example = (REPO / ".dlt" / "secrets.toml.example").read_text()
    lobstr = polled_sim.fixtures["lobstr"].token
    head = '[sources.lobstr]\napi_key = "'
    filled = example.replace(head, f'{head}{lobstr}"  # "', 1)
    assert filled != example
    (tmp_path / ".dlt" / "secrets.toml").write_text(filled)
    # the simulator's keys set by the fixture are empty here: the file alone configures
    env = {**lobstr_env(polled_sim), "SOURCES__LOBSTR__API_KEY": "",
           "SOURCES__UPLOAD_POST__API_KEY": "", "SOURCES__CLEARTAX__AUTH_TOKEN": ""}

    done = cli("run", cwd=tmp_path, env=env)

    assert done.returncode == 0, done.stderr
    assert "lobstr" in done.stdout and "loaded" in done.stdout
    for key in ("SOURCES__HIGHLEVEL__ACCESS_TOKEN", "SOURCES__UPLOAD_POST__API_KEY",
                "SOURCES__CLEARTAX__AUTH_TOKEN"):
        assert f"{key} holds a placeholder value: taken as not set" in done.stderr, key


def test_an_empty_location_list_is_a_configuration_error(highlevel_sim, tmp_path: Path):
    highlevel_sim(HighLevelFixture(locations={"loc1": 2}))
    done = cli("run", "--source", "highlevel", cwd=tmp_path,
               env={"SOURCES__HIGHLEVEL__LOCATION_IDS": "[]"})

    assert_usage_error(done, "SOURCES__HIGHLEVEL__LOCATION_IDS")


def test_prune_refuses_a_status_highlevel_does_not_have(highlevel_sim, tmp_path: Path):
    highlevel_sim(HighLevelFixture(locations={"loc1": 2}))
    done = cli("highlevel-prune", "--location", "loc1", "--status", "faild", cwd=tmp_path)

    assert_usage_error(done, "--status faild", "did you mean failed?")


def test_report_while_another_process_writes_the_file_names_it(tmp_path: Path):
    """A DuckDB file another program holds open for writing: one line naming it, exit 2."""
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys,time; c=duckdb.connect({str(path)!r}); "
         "print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = cli("report", cwd=tmp_path, env={"DESTINATION__DUCKDB__CREDENTIALS": str(path)})
        assert_usage_error(done, "being written by another process")
    finally:
        holder.communicate("", timeout=30)
