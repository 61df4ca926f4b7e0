"""Issue 30 for HighLevel over real HTTP into real DuckDB: a location the shared token is
refused for, or that keeps answering 5xx, fails alone and is named; when every location fails
so, the provider fails (the credential, or the API, is the problem)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest

from simulator.hostile import poison
from sources.common.failing_units import FREE_RETRIES
from sources.common.tracking import observing_at
from sources.highlevel.fixture import HighLevelFixture

T0 = pendulum.datetime(2026, 12, 1, 8, tz="UTC")


@pytest.mark.parametrize("status", [401, 403, 500])
def test_one_location_refused_fails_alone_and_is_named(highlevel_sim, run, query, status):
    fixture = HighLevelFixture(locations={"loc_a": 4, "loc_b": 5, "loc_c": 6})
    sim = highlevel_sim(fixture)
    sim.inject(poison(r"/social-media-posting/loc_b/.*", status=status))

    report = run()

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert query("select location_id, count(*) from {ds}.highlevel_csv_uploads "
                 "group by 1 order by 1") == [("loc_a", 4), ("loc_c", 6)]
    lines = [e for e in stats.errors if "location loc_b" in e]
    assert len(lines) == 1 and f"HTTP {status}" in lines[0], stats.errors
    if status != 500:
        assert "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in lines[0]
    assert fixture.token not in " ".join(stats.errors)


def test_every_location_refused_fails_the_provider(highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc_a": 2, "loc_b": 2})
    sim = highlevel_sim(fixture)
    sim.inject(poison(r"/social-media-posting/.*", status=401))

    report = run()

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "failed"
    assert any("the API rejected the credential" in e and "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in e
               for e in stats.errors), stats.errors


def test_a_failing_location_backs_off_is_listed_and_ends_when_removed(highlevel_sim, run,
                                                                      query, monkeypatch):
    fixture = HighLevelFixture(locations={"loc_a": 3, "loc_b": 3})
    sim = highlevel_sim(fixture)
    sim.inject(poison(r"/social-media-posting/loc_b/.*", status=403))

    for n in range(FREE_RETRIES):
        with observing_at(T0 + timedelta(minutes=n)):
            assert run().exit_code == 1
    assert query("select unit_kind, unit_id, consecutive_failures from "
                 "{ds}.upload_failing_units") == [("location", "loc_b", FREE_RETRIES)]
    sim.clear_log()

    with observing_at(T0 + timedelta(minutes=30)):  # inside its interval: not asked
        report = run()
    assert report.exit_code == 0
    assert not [r for r in sim.requests() if "/loc_b/" in r.path]
    assert any("location loc_b failed runs in a row" in w for w in report.providers[0].warnings)

    monkeypatch.setenv("SOURCES__HIGHLEVEL__LOCATION_IDS", '["loc_a"]')
    with observing_at(T0 + timedelta(hours=1)):
        assert run().exit_code == 0
    assert query("select count(*) from {ds}.upload_failing_units") == [(0,)]
    assert query("select resolution from {ds}.highlevel_failing_units") == [("not configured",)]
