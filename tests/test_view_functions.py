"""Every function the views may use gives DuckDB's answer on every destination, as rendered
there (`pipelines/analytics/view_functions.py`); a view using another function, or one the
destination lacks, fails when the views are built and leaves the views as they were."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from conftest import warehouse_at

from pipelines.analytics import view_functions
from pipelines.analytics.views import ViewsUnchecked, ViewUnreadable, create_views
from pipelines.destinations.dialects import render, sql_dialect
from pipelines.run.runner import run_providers
from sources import providers
from sources.common.analytics import View

DESTINATIONS = ["duckdb", "postgres", "sqlite", "mariadb"]


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    return value


def _select(sample: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(f"SELECT {sample} AS v", read="duckdb")


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_each_checked_function_gives_duckdbs_answer(kind, tmp_path: Path):
    con = duckdb.connect()
    expected = {name: _plain(con.execute(_select(sample).sql(dialect="duckdb")).fetchone()[0])
                for name, sample in view_functions.SAMPLES.items()}
    with warehouse_at(kind, tmp_path, tmp_path / "w.duckdb") as place:
        dialect = sql_dialect(place.pipeline)
        with place.pipeline.sql_client() as sql:
            got = {name: _plain(sql.execute_sql(render(_select(sample), dialect))[0][0])
                   for name, sample in view_functions.SAMPLES.items()}
    assert got == expected


def _provider_with_view(sql: str) -> Any:
    lobstr = providers()["lobstr"].provider
    return type(lobstr)(**{**{f: getattr(lobstr, f) for f in lobstr.__dataclass_fields__
                              if lobstr.__dataclass_fields__[f].init},
                           "views": (View("upload_median_items", sql),)})


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_view_with_an_unchecked_or_missing_function_fails_and_changes_nothing(
        kind, polled_sim, tmp_path: Path, monkeypatch):
    lobstr = polled_sim.fixtures["lobstr"]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps([lobstr.job(["SUCCESS"])]))
    with warehouse_at(kind, tmp_path, tmp_path / "w.duckdb") as place:
        assert run_providers(["lobstr"], pipeline=place.pipeline).exit_code == 0
        before = place.query("SELECT job_id, status FROM {ds}.upload_jobs")
        median = _provider_with_view(
            "SELECT MEDIAN(j.items_total) AS items FROM {ds}.upload_jobs AS j")
        with pytest.raises(ViewsUnchecked, match="upload_median_items uses Median"):
            create_views(place.pipeline, [median])

        # as if a sample vouched for a function the destination lacks
        monkeypatch.setitem(view_functions.SAMPLES, "NO_SUCH_FUNCTION", "1")
        missing = _provider_with_view(
            "SELECT no_such_function(j.items_total) AS items FROM {ds}.upload_jobs AS j")
        with pytest.raises(ViewUnreadable, match=r"upload_median_items cannot be (read|made)"):
            create_views(place.pipeline, [missing])

        assert place.query("SELECT job_id, status FROM {ds}.upload_jobs") == before
