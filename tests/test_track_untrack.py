"""`track` and `untrack` as an operator uses them: the real command, real HTTP, a real DuckDB
file; nothing registered when any id is invalid, untracked jobs never polled again."""

from __future__ import annotations

from pathlib import Path

from conftest import cli, read_duckdb

DB = "upload_status_data.duckdb"


def tracked(tmp_path: Path, provider: str) -> list[str]:
    if not (tmp_path / DB).exists():
        return []
    tables = {t for (t,) in read_duckdb(tmp_path / DB, "select table_name from "
                                        "information_schema.tables")}
    if f"{provider}_tracked_jobs" not in tables:
        return []
    return sorted(r for (r,) in read_duckdb(
        tmp_path / DB, f"select tracked_id from {{ds}}.{provider}_tracked_jobs"))


def test_nothing_is_registered_when_any_id_is_invalid(tmp_path: Path):
    bad = cli("track", "lobstr", " abc", "ok123", cwd=tmp_path)
    cleartax = cli("track", "cleartax", "te-1/act-1", "missing-entity", "a/b/c", cwd=tmp_path)
    listed = cli("track", "highlevel", "abc", cwd=tmp_path)
    upload_post = cli("track", "upload_post", "plain-id", cwd=tmp_path)

    assert bad.returncode == 2 and "' abc'" in bad.stderr and "nothing was registered" in \
        bad.stderr
    assert cleartax.returncode == 2
    assert "'missing-entity'" in cleartax.stderr and "'a/b/c'" in cleartax.stderr
    assert listed.returncode == 2 and "listed from the API" in listed.stderr
    assert upload_post.returncode == 2 and "request:ID or job:ID" in upload_post.stderr
    assert tracked(tmp_path, "lobstr") == [] and tracked(tmp_path, "cleartax") == []


def test_a_file_with_several_columns_needs_column(tmp_path: Path):
    table = tmp_path / "q.csv"
    table.write_text('id,note\n"te-2/act-9","a, b"\nte-2/act-8,c\n')
    lines = tmp_path / "ids.txt"
    lines.write_text("te-2/act-9\nte-2/act-8, late\n")

    for path in (table, lines):
        done = cli("track", "cleartax", "--from-file", str(path), cwd=tmp_path)
        assert done.returncode == 2 and "--column" in done.stderr, done.stderr
    assert tracked(tmp_path, "cleartax") == []
    ok = cli("track", "cleartax", "--from-file", str(table), "--column", "id", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert tracked(tmp_path, "cleartax") == ["act-8", "act-9"]


def test_untracked_jobs_are_not_polled_keep_their_history_and_can_be_followed_again(
        polled_sim, tmp_path: Path):
    lobstr = polled_sim.fixtures["lobstr"]
    done_id = lobstr.add("d" * 32, ["SUCCESS"])
    stay, leave = lobstr.add("a" * 32, ["PENDING"] * 9), lobstr.add("b" * 32, ["PENDING"] * 9)
    assert cli("track", "lobstr", done_id, stay, leave, cwd=tmp_path).returncode == 0
    assert cli("run", "--source", "lobstr", cwd=tmp_path).returncode == 0

    gone = cli("untrack", "lobstr", leave, done_id, "f" * 32, cwd=tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert "1 no longer followed, 1 already finished, 1 not followed" in gone.stdout
    polled_sim.clear_log()
    again = cli("run", "--source", "lobstr", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    polled = {r.path.rsplit("/", 1)[-1] for r in polled_sim.requests("lobstr")}
    assert polled == {stay}  # the untracked job is not asked for, the finished one neither
    jobs = dict(read_duckdb(tmp_path / DB, "select job_id, untracked_at is not null "
                                            "from {ds}.upload_jobs"))
    assert jobs == {done_id: False, stay: False, leave: True}
    history = read_duckdb(tmp_path / DB, "select count(*) from {ds}.upload_job_status_history "
                                         f"where job_id = '{leave}'")
    assert history == [(1,)]  # its observation before the untrack stays

    back = cli("track", "lobstr", leave, cwd=tmp_path)
    assert back.returncode == 0 and "1 newly followed" in back.stdout, back.stdout
    polled_sim.clear_log()
    assert cli("run", "--source", "lobstr", cwd=tmp_path).returncode == 0
    assert {r.path.rsplit("/", 1)[-1] for r in polled_sim.requests("lobstr")} == {stay, leave}
    jobs = dict(read_duckdb(tmp_path / DB, "select job_id, untracked_at is not null "
                                            "from {ds}.upload_jobs"))
    assert jobs[leave] is False


def test_untrack_with_an_invalid_id_changes_nothing(polled_sim, tmp_path: Path):
    job = polled_sim.fixtures["lobstr"].add("a" * 32, ["PENDING"] * 9)
    assert cli("track", "lobstr", job, cwd=tmp_path).returncode == 0

    done = cli("untrack", "lobstr", job, " bad", cwd=tmp_path)

    assert done.returncode == 2 and "nothing was untracked" in done.stderr
    polled_sim.clear_log()
    assert cli("run", "--source", "lobstr", cwd=tmp_path).returncode == 0
    assert len(polled_sim.requests("lobstr")) == 1
