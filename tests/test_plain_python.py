"""A provider's dlt source used from plain Python (an Airflow or Dagster task that embeds it)
behaves like the command: a configuration mistake raises `ConfigurationError` naming the key,
warnings and failures are logged, and nothing process-wide (dlt's settings, the environment)
is left changed by building or running a source, or by `run_providers`."""

from __future__ import annotations

import json
import logging
import os
import re

import dlt
import pytest
from conftest import POLLED

from pipelines.commands.track import track_jobs
from pipelines.run.runner import run_providers
from simulator import Fault, Reply
from sources import providers
from sources.common.errors import ConfigurationError

LOAD_ID_SETTING = "normalize.parquet_normalizer.add_dlt_load_id"


def _errors_in(exc: BaseException) -> list[BaseException]:
    found, current = [], exc
    while current is not None:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def test_an_invalid_configured_id_raises_naming_the_key(polled_sim, pipeline, monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    good = lobstr.job(["SUCCESS"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps([good, ".."]))

    with pytest.raises(Exception) as raised:
        pipeline.run(providers()["lobstr"].source())

    errors = [e for e in _errors_in(raised.value) if isinstance(e, ConfigurationError)]
    assert errors and errors[0].key == "SOURCES__LOBSTR__UPLOAD_TASK_IDS", raised.value
    assert "relative path segment" in str(errors[0])


def test_sources_change_no_setting_or_environment_and_log_what_happens(
        polled_sim, pipeline, monkeypatch, caplog):
    """Every polled provider, each with a job whose answer lacks its status field: built and
    run in plain dlt, the warning is logged, rows carry their load id, nothing else moves."""
    refs = {}
    for name in POLLED:
        facts, provider = polled_sim.fixtures[name], providers()[name].provider
        refs[name] = [facts.job(["x"]) for _ in range(2)]  # not a documented status: fine
        path, params = provider.status_request(provider.parse_ref(refs[name][0]))
        polled_sim.inject(Fault(None, re.escape("/" + path), times=9,
                                query=params or None, answer=lambda r: Reply(200, {})))
    environ, setting = dict(os.environ), dlt.config.get(LOAD_ID_SETTING)

    with caplog.at_level(logging.WARNING, logger="upload_status"):
        for name in POLLED:
            track_jobs(name, refs[name], pipeline=pipeline)
            pipeline.run(providers()[name].source())

    assert dict(os.environ) == environ and dlt.config.get(LOAD_ID_SETTING) == setting
    for name in POLLED:
        field = repr(providers()[name].provider.status_field)
        assert any(name in r.getMessage() and field in r.getMessage() for r in caplog.records)
    with pipeline.sql_client() as sql:
        for name in POLLED:
            assert sql.execute_sql(f"select count(*), count(_dlt_load_id) from "
                                   f"{name}_status_history")[0] == (1, 1)


def test_run_providers_leaves_the_callers_environment_as_it_was(polled_sim, pipeline,
                                                               monkeypatch):
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", "")
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", "  ")
    monkeypatch.delenv("RUNTIME__DLTHUB_TELEMETRY", raising=False)
    environ = dict(os.environ)

    report = run_providers(["lobstr", "cleartax"], pipeline=pipeline)

    assert report.exit_code == 0, [p.errors for p in report.providers]
    assert dict(os.environ) == environ
