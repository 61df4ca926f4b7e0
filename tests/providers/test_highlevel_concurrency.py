"""HighLevel locations and posts read concurrently: side by side for real, with exactly the
tables and the requests of a sequential run, and a location's daily limit costing only it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from conftest import cli, read_duckdb

from simulator import Fault, Simulator
from sources.highlevel.fixture import HighLevelFixture

DB = "upload_status_data.duckdb"
TABLES = {
    "highlevel_csv_uploads": "_id, location_id, status, count, file_name",
    "highlevel_status_history": "job_id, native_status, status",
    "highlevel_csv_posts": "csv_id, post_index, error_message, summary",
    "highlevel_csv_uploads__account_ids": "value",
}


def env_for(sim: Simulator, fixture: HighLevelFixture, folder: Path, **more: str
            ) -> dict[str, str]:
    return {"SOURCES__HIGHLEVEL__BASE_URL": sim.base_url,
            "SOURCES__HIGHLEVEL__ACCESS_TOKEN": fixture.token,
            "SOURCES__HIGHLEVEL__LOCATION_IDS": str(list(fixture.imports)).replace("'", '"'),
            "SOURCES__HIGHLEVEL__PAGE_SIZE": "5", "SOURCES__HIGHLEVEL__POSTS_PAGE_SIZE": "4",
            "DESTINATION__DUCKDB__CREDENTIALS": str(folder / DB),
            "DLT_DATA_DIR": str(folder / "dlt"), "COLUMNS": "200", **more}


def run_in(folder: Path, env: dict[str, str]):
    folder.mkdir(exist_ok=True)
    inherit = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__HIGHLEVEL__")}
    return cli("run", "--source", "highlevel", cwd=folder, env=env, inherit=inherit)


def contents(folder: Path) -> dict[str, list[tuple]]:
    return {table: read_duckdb(folder / DB, f"select {columns} from {{ds}}.{table} "
                                            f"order by {columns}")
            for table, columns in TABLES.items()}


def requests_made(sim: Simulator) -> list[tuple[str, str, str]]:
    return sorted((r.method, r.path, r.query.get("skip", "")) for r in sim.requests())


def test_a_concurrent_run_equals_a_sequential_one(tmp_path):
    """Two identical servers, one read with one request at a time, one with 16: after a first
    run, and after statuses changed and new imports arrived, the tables are the same and so are
    the requests (the listing windows, the marks and the posts to fetch decide alike)."""
    def fixture() -> HighLevelFixture:
        return HighLevelFixture(locations={"l1": 23, "l2": 7, "l3": 0, "l4": 16, "l5": 11},
                                unfinished_share=0.5, seed=11)
    one, many = fixture(), fixture()
    with Simulator(one) as sim_one, Simulator(many) as sim_many:
        sim_many.latency = 0.01  # so that requests overlap at the server
        for rnd in range(3):
            seq = run_in(tmp_path / "seq", env_for(sim_one, one, tmp_path / "seq",
                                                   SOURCES__HIGHLEVEL__CONCURRENCY="1"))
            conc = run_in(tmp_path / "conc", env_for(sim_many, many, tmp_path / "conc"))
            assert (seq.returncode, conc.returncode) == (0, 0), seq.stderr + conc.stderr
            assert requests_made(sim_one) == requests_made(sim_many), f"round {rnd}"
            assert contents(tmp_path / "seq") == contents(tmp_path / "conc"), f"round {rnd}"
            sim_one.clear_log()
            sim_many.clear_log()
            for fx in (one, many):
                fx.advance()
                fx.add_imports("l2", 3, unfinished_share=0.5)
                fx.add_imports("l4", 6, unfinished_share=0.0)
    assert sim_many.max_in_flight > 1


def test_locations_are_listed_side_by_side(tmp_path):
    """l1's first listing page is held by the server until l2's listing request arrives: a
    run that lists one location at a time would never send it while l1 waits."""
    fixture = HighLevelFixture(locations={"l1": 3, "l2": 3})
    with Simulator(fixture) as sim:
        held = Fault(None, path_pattern=r"/social-media-posting/l1/csv", delay=30)
        other = Fault(None, path_pattern=r"/social-media-posting/l2/csv")
        sim.inject(held)
        sim.inject(other)
        seen: list[bool] = []

        def release() -> None:
            held.arrived.wait(30)
            seen.append(other.arrived.wait(20))
            held.release.set()

        thread = threading.Thread(target=release)
        thread.start()
        done = run_in(tmp_path, env_for(sim, fixture, tmp_path))
        thread.join()

    assert done.returncode == 0, done.stderr
    assert seen == [True]


def test_a_spent_daily_limit_stops_that_location_only_and_the_next_run_catches_up(tmp_path):
    """l1's second answer says `X-RateLimit-Daily-Remaining: 0`: no further request goes to
    l1 this run (reported, exit 1), its mark stays and its posts wait; l2 loads whole. The next
    run (a new day) reads l1 in full and fetches the posts that waited."""
    fixture = HighLevelFixture(locations={"l1": 12, "l2": 4}, unfinished_share=0.0)
    fixture.daily_quota = {"l1": 2}
    with Simulator(fixture) as sim:
        env = env_for(sim, fixture, tmp_path)
        first = run_in(tmp_path, env)
        l1_first = [r for r in sim.requests() if r.path.split("/")[2] == "l1"]
        loaded_first = read_duckdb(tmp_path / DB, """select location_id, count(*) from
            {ds}.highlevel_csv_uploads group by 1 order by 1""")
        fixture.daily_quota = {}
        sim.clear_log()
        second = run_in(tmp_path, env)
        posts_second = {r.path.rsplit("/", 1)[1] for r in sim.requests()
                        if r.path.count("/") == 4}

    message = " ".join(first.stderr.split())
    assert first.returncode == 1, first.stdout + first.stderr
    assert "location l1: the daily request limit is used up" in message
    assert len(l1_first) == 2  # the two listing pages; nothing after the quota was spent
    assert loaded_first == [("l1", 10), ("l2", 4)]
    assert second.returncode == 0, second.stderr
    assert read_duckdb(tmp_path / DB, """select location_id, count(*) from
        {ds}.highlevel_csv_uploads group by 1 order by 1""") == [("l1", 12), ("l2", 4)]
    assert posts_second == {r["_id"] for r in fixture.imports["l1"]}
    assert read_duckdb(tmp_path / DB, """select count(distinct csv_id) from
        {ds}.highlevel_csv_posts""") == [(16,)]
