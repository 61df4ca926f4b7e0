"""The GitHub Actions example replayed as GitHub runs it: the job's and steps' environment with
the repository's secrets and variables substituted (one that is not set becomes an empty
string), every `run` step in `bash -e` from a checkout, `if: always()` steps after a failure,
and the step summary file; against the simulator and a real Postgres database of its own."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import yaml
from conftest import REPO, postgres_dsn

from simulator import Simulator
from sources import providers

WORKFLOW = REPO / "examples/github-actions/upload-status.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(secrets|vars)\.(\w+)\s*\}\}")


@dataclass
class Step:
    name: str
    code: int
    stdout: str
    stderr: str


def replay(workflow: dict[str, Any], settings: dict[str, str], checkout: Path,
           base_env: dict[str, str]) -> tuple[list[Step], str]:
    """Every `run` step of the `load` job but the install (the test's virtualenv stands in);
    a step after a failed one runs only with `if: always()`. Steps and the step summary."""
    job = workflow["jobs"]["load"]
    summary = checkout / "step_summary.md"
    summary.touch()
    done: list[Step] = []
    for step in job["steps"]:
        if "run" not in step or step["name"] == "Install":
            continue
        if any(s.code for s in done) and step.get("if") != "always()":
            continue
        env = {**base_env, "GITHUB_STEP_SUMMARY": str(summary), "CI": "true",
               **{k: EXPRESSION.sub(lambda m: settings.get(m[2], ""), str(v))
                  for k, v in {**job.get("env", {}), **step.get("env", {})}.items()}}
        ran = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-c", step["run"]],
                             cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
        done.append(Step(step["name"], ran.returncode, ran.stdout, ran.stderr))
    return done, summary.read_text()


def _admin(dsn: str, sql: str) -> None:
    con = psycopg2.connect(dsn)
    try:
        con.autocommit = True  # CREATE/DROP DATABASE run outside a transaction
        con.cursor().execute(sql)
    finally:
        con.close()


@pytest.fixture
def database() -> Iterator[str]:
    """A Postgres database of its own (the workflow loads into the default dataset)."""
    dsn = postgres_dsn()
    name = f"gh_{uuid.uuid4().hex[:10]}"
    _admin(dsn, f"CREATE DATABASE {name}")
    yield urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))
    _admin(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """Every registered provider with its demo scenario's first jobs; `settings` holds what a
    user of each sets (its credential and what to read) and `origins` where it points."""
    start = datetime.now(timezone.utc) - timedelta(days=1)
    scenarios = {name: scenario for name, package in providers().items()
                 if (scenario := package.scenario(start)) is not None}
    server = Simulator(*(s.fixture for s in scenarios.values())).start()
    server.settings, server.origins = {}, {}  # type: ignore[attr-defined]
    for name, scenario in scenarios.items():
        given = {**scenario.env(server.base_url), **scenario.config(scenario.submit(1, start))}
        origin = providers()[name].provider.env_key("base_url")
        server.origins[name] = {origin: given.pop(origin)}  # type: ignore[attr-defined]
        server.settings[name] = given  # type: ignore[attr-defined]
    yield server
    server.stop()


NAMES = sorted(name for name, package in providers().items()
               if (package.folder / "demo.py").exists() or package.declaration is not None)


# one provider, two, every one: the workflow serves any subset of the registry
@pytest.mark.parametrize("used", [tuple(NAMES[:1]), tuple(NAMES[:2]), tuple(NAMES)])
def test_the_workflow_runs_for_any_subset_of_providers(used, sim, database, tmp_path: Path):
    checkout = tmp_path / "checkout"
    (checkout / ".dlt").mkdir(parents=True)
    shutil.copy(REPO / ".dlt/config.toml", checkout / ".dlt/config.toml")
    settings = {"DESTINATION__POSTGRES__CREDENTIALS": database}
    origins: dict[str, str] = {}
    for name in used:
        settings.update(sim.settings[name])
        origins.update(sim.origins[name])
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__",
                                                                        "DESTINATION__"))}
    base_env.update(origins, PATH=f"{REPO / '.venv/bin'}{os.pathsep}{os.environ['PATH']}",
                    PYTHONPATH=str(REPO), COLUMNS="200")  # a table (pytest-xdist sets 80)

    steps, summary = replay(yaml.safe_load(WORKFLOW.read_text()), settings, checkout, base_env)

    load, report = (s for s in steps if s.name.startswith(("Load", "Report")))
    assert load.code == 0, load.stderr
    for name in providers():
        shown = re.search(rf"│ {name}\s+│ (\w[\w ]*?)\s+│", load.stdout)
        assert shown and shown[1] == ("loaded" if name in used else "skipped"), load.stdout
    assert "config error" not in load.stdout + load.stderr
    assert report.code == 0, report.stderr
    assert summary.startswith("## Upload status since")
    table = [line for line in summary.splitlines() if line.startswith("| ")]
    assert table[0] == ("| provider | jobs | succeeded | partial | failed | cancelled | "
                        "in\\_flight | success\\_rate |")
    assert sorted(line.split(" | ")[0][2:].replace("\\_", "_")
                  for line in table[1:len(used) + 1]) == sorted(used)
    assert "┃" not in summary and "│" not in summary  # no box drawing in Markdown
    assert (checkout / "success-rates.png").stat().st_size > 1000
    secrets = [database, *(settings[providers()[name].provider.secret_env_key]
                           for name in used)]
    for step in steps:  # no credential in any log
        for secret in secrets:
            assert secret not in step.stdout + step.stderr


def test_every_setting_the_workflow_passes_is_one_upload_status_reads():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    env = workflow["jobs"]["load"]["env"]
    for key, value in env.items():
        if key.startswith("RUNTIME__"):
            continue
        kind = "secrets" if key.endswith(("TOKEN", "KEY", "CREDENTIALS")) else "vars"
        assert value == "${{ " + f"{kind}.{key}" + " }}", key
        if key.startswith("SOURCES__"):
            _, provider, field = key.lower().split("__")
            assert field in inspect.signature(providers()[provider].source).parameters, key
    # the example shows providers of the registry, each whole (a credential and what to read);
    # a provider folder added later needs no edit here: a user adds its two lines
    shown = {k.split("__")[1].lower() for k in env if k.startswith("SOURCES__")}
    assert shown <= set(providers())
    for name in shown:
        package = providers()[name]
        assert package.provider.secret_env_key in env, name
