"""The `upload-status` command as a user runs it: a real process, real HTTP, a real DuckDB file."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import duckdb
from conftest import cli
from PIL import Image

from sources.highlevel.fixture import HighLevelFixture

SECRET = "tok-DISTINCTIVE-9b2e77-never-in-output"


def duckdb_rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql.replace("{ds}", "upload_status")).fetchall()
    finally:
        con.close()


def count(db: Path, table: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"select count(*) from upload_status.{table}").fetchone()[0]
    finally:
        con.close()


def test_run_loads_into_the_default_duckdb_file_and_prints_a_summary(highlevel_sim,
                                                                     tmp_path: Path):
    fixture = HighLevelFixture(locations={"loc1": 9, "loc2": 0}, page_cap=4)
    highlevel_sim(fixture)

    done = cli("run", "--source", "highlevel", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "highlevel" in done.stdout and "loaded" in done.stdout
    assert "listing pages 4" in done.stdout  # 3 pages for loc1 (cap 4), 1 for the empty loc2
    assert count(tmp_path / "upload_status_data.duckdb", "highlevel_csv_uploads") == 9


def test_bad_token_exits_1_names_the_key_and_never_shows_the_token(highlevel_sim,
                                                                   tmp_path: Path):
    highlevel_sim(HighLevelFixture(locations={"loc1": 3}))
    done = cli("run", "--source", "highlevel", cwd=tmp_path,
               env={"SOURCES__HIGHLEVEL__ACCESS_TOKEN": SECRET,
                    "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "w.duckdb")})

    assert done.returncode == 1
    assert "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
    for path in (tmp_path / "dlt_data").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_successful_debug_run_leaves_the_token_nowhere(highlevel_sim, tmp_path: Path):
    fixture = HighLevelFixture(locations={"loc1": 4}, token=SECRET)
    highlevel_sim(fixture)

    done = cli("run", cwd=tmp_path, env={"RUNTIME__LOG_LEVEL": "DEBUG"})

    assert done.returncode == 0, done.stderr
    assert "Making GET request" in done.stderr  # dlt's debug request log is on
    assert SECRET not in done.stdout + done.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any("pipeline_state" in p.name or p.suffix == ".duckdb" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def test_nothing_configured_is_a_usage_error(tmp_path: Path):
    done = cli("run", cwd=tmp_path)

    assert done.returncode == 2
    assert "SOURCES__HIGHLEVEL__ACCESS_TOKEN" in done.stderr


def test_demo_needs_no_credentials_prints_what_it_loaded_and_can_be_kept(tmp_path: Path):
    no_sources = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    # 12 days (4 runs) instead of the default 30: the same runs, fewer of them
    done = cli("demo", "--days", "12", cwd=tmp_path, inherit=no_sources, env={"COLUMNS": "160"})

    assert done.returncode == 0, done.stderr
    assert "Run 4 of 4" in done.stdout and "Top failure reasons" in done.stdout
    assert "replaying 12 days" in " ".join(done.stdout.split())
    db = tmp_path / "upload_status_demo.duckdb"
    for table in ("highlevel_csv_uploads", "upload_post_uploads", "upload_post_history",
                  "lobstr_upload_tasks", "cleartax_upload_activities"):
        assert count(db, table) > 50, table  # dozens of jobs per provider
    assert_real_chart(tmp_path / "upload_status_demo.png")
    # the closing hint runs from this folder (python -m here: the module's name)
    assert "upload-status report" in done.stdout or "__main__.py report" in done.stdout

    # a kept demo adds a month; the earlier one's unfinished jobs lived in its simulator, which
    # is gone: they are untracked, not turned not_found
    before = dict(duckdb_rows(db, "select provider, count(*) from {ds}.upload_jobs "
                                  "where not is_terminal group by 1"))
    kept = cli("demo", "--keep", "--days", "6", cwd=tmp_path, inherit=no_sources)

    assert kept.returncode == 0, kept.stderr
    after = duckdb_rows(db, "select provider, count(*) filter (where untracked_at is not null), "
                            "count(*) filter (where status = 'not_found') "
                            "from {ds}.upload_jobs group by 1")
    for provider, untracked, not_found in after:
        if provider != "highlevel":  # listed by its API: nothing to untrack
            assert untracked == before[provider], provider
            assert not_found == 0, provider


def assert_real_chart(path: Path) -> None:
    """A PNG of chart size with lines and bars on it, not an empty canvas."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 600)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colours) > 50
    assert max(n for n, _ in colours) < 0.9 * 1200 * 600  # not one colour all over


def test_report_formats_and_chart_after_a_run(polled_sim, tmp_path: Path):
    lb = polled_sim.fixtures["lobstr"]
    ids = [lb.add("a" * 32, ["SUCCESS"]), lb.add("b" * 32, ["FAILURE"]),
           lb.add("c" * 32, ["PENDING"])]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps(ids)}
    assert cli("run", cwd=tmp_path, env=env).returncode == 0

    as_json = cli("report", "--format", "json", "--stuck-hours", "0", cwd=tmp_path)
    as_csv = cli("report", "--format", "csv", cwd=tmp_path)
    as_table = cli("report", "--chart", str(tmp_path / "out" / "rates.png"), cwd=tmp_path,
                   env={"COLUMNS": "160"})

    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["totals"] == [{"provider": "lobstr", "jobs": 3, "succeeded": 1, "partial": 0,
                               "failed": 1, "cancelled": 0, "in_flight": 1,
                               "success_rate": 0.5}]
    assert [r["job_id"] for r in data["stuck"]] == ["c" * 32]
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["section"] for r in rows} >= {"totals", "rates", "statuses"}
    assert next(r for r in rows if r["section"] == "totals")["success_rate"] == "0.5"
    assert as_table.returncode == 0, as_table.stderr
    assert "50.0%" in as_table.stdout and "Top failure reasons" in as_table.stdout
    assert_real_chart(tmp_path / "out" / "rates.png")


def test_report_before_any_run_is_a_usage_error(tmp_path: Path):
    done = cli("report", cwd=tmp_path)

    assert done.returncode == 2
    assert "run `upload-status run`" in done.stderr and "Traceback" not in done.stderr


def summary_row(stdout: str, provider: str) -> dict[str, str]:
    """The run summary's row of `provider`, by column header."""
    lines = stdout.splitlines()
    header = next(line for line in lines if "provider" in line and "outcome" in line)
    row = next(line for line in lines if line.strip("│┃ ").startswith(provider))
    cells = [[c.strip() for c in line.strip().strip("│┃").replace("┃", "│").split("│")]
             for line in (header, row)]
    return dict(zip(*cells, strict=True))


def test_track_from_arguments_and_a_csv_file_then_run_polls_them(polled_sim, tmp_path: Path):
    ct = polled_sim.fixtures["cleartax"]
    refs = [ct.add("te-1", f"act-{i}", ["QUEUED", "PROCESSED"]) for i in range(3)]
    ids_csv = tmp_path / "activities.csv"
    ids_csv.write_text("activity,note\n" + "".join(f"{r},from erp\n" for r in refs[1:]))

    first = cli("track", "cleartax", refs[0], cwd=tmp_path)
    again = cli("track", "cleartax", refs[0], "--from-file", str(ids_csv), "--column",
                "activity", cwd=tmp_path)
    done = cli("run", "--source", "cleartax", cwd=tmp_path, env={"COLUMNS": "120"})

    assert first.returncode == 0, first.stderr
    assert "1 newly followed, 0 already followed" in first.stdout
    assert "2 newly followed, 1 already followed" in again.stdout
    assert done.returncode == 0, done.stderr
    assert summary_row(done.stdout, "cleartax") == {
        "provider": "cleartax", "outcome": "loaded", "requests": "3", "jobs seen": "3",
        "polled": "3", "new": "3", "changed": "0", "unfinished": "3", "bad input": "0",
        "errors": "0"}
    assert count(tmp_path / "upload_status_data.duckdb", "cleartax_upload_activities") == 3


def test_polled_provider_tokens_never_reach_output_or_files(polled_sim, tmp_path: Path):
    lobstr_secret, up_secret = SECRET + "-lobstr", SECRET + "-upload-post"
    polled_sim.fixtures["lobstr"].token = lobstr_secret
    polled_sim.fixtures["lobstr"].add("a" * 32, ["PENDING"])
    env = {"SOURCES__LOBSTR__API_KEY": lobstr_secret, "SOURCES__LOBSTR__UPLOAD_TASK_IDS":
           f'["{"a" * 32}"]', "SOURCES__UPLOAD_POST__API_KEY": up_secret,  # rejected: 401
           "RUNTIME__LOG_LEVEL": "DEBUG"}

    done = cli("run", "--source", "lobstr", "--source", "upload_post", cwd=tmp_path, env=env)

    assert done.returncode == 1, done.stderr  # upload_post failed, lobstr loaded
    assert "SOURCES__UPLOAD_POST__API_KEY" in done.stderr
    assert count(tmp_path / "upload_status_data.duckdb", "lobstr_upload_tasks") == 1
    for secret in (lobstr_secret, up_secret):
        assert secret not in done.stdout + done.stderr
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_the_filesystem_destination_is_refused_before_anything_is_written(polled_sim,
                                                                          tmp_path: Path):
    """dlt falls back from merge to append on plain files: every run would store every job
    again (90 rows for 30 imports after 3 runs), so nothing starts."""
    lobstr = polled_sim.fixtures["lobstr"]
    env = {"SOURCES__LOBSTR__UPLOAD_TASK_IDS": json.dumps([lobstr.add("a" * 32, ["SUCCESS"])]),
           "DESTINATION__FILESYSTEM__BUCKET_URL": str(tmp_path / "lake")}

    for command in (("run", "--destination", "filesystem"),
                    ("track", "lobstr", "b" * 32, "--destination", "filesystem")):
        done = cli(*command, cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "appends every run" in done.stderr and "Delta" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "lake").exists()
    assert polled_sim.requests() == []
