"""Lobstr: 202 while an upload task runs, 200 with its row counts once done."""

from __future__ import annotations


def test_lobstr_202_while_running_then_200_with_counts(polled_sim, run_polled, query,
                                                       monkeypatch):
    lb = polled_sim.fixtures["lobstr"]
    task = lb.add("c" * 32, ["PROGRESS", "SUCCESS"], valid=120, invalid=4, duplicates=7)
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{task}"]')
    sql = """select http_status, state, canonical_status, meta__valid, meta__invalid,
        meta__inserted, meta__duplicates from {ds}.lobstr_upload_tasks"""

    run_polled("lobstr")
    assert query(sql) == [(202, "PROGRESS", "running", None, None, None, None)]
    polled_sim.advance()
    run_polled("lobstr")

    assert query(sql) == [(200, "SUCCESS", "succeeded", 120, 4, 113, 7)]
    assert query("select native_status from {ds}.lobstr_status_history order by observed_at"
                 ) == [("PROGRESS",), ("SUCCESS",)]
