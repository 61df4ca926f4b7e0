"""ClearTax: upload activities per taxable entity, an unknown status kept and polled again,
the reason of an aborted activity in the failures."""

from __future__ import annotations

from polled_helpers import polled_refs


def test_unknown_native_status_is_kept_and_polled_again(polled_sim, run_polled, query,
                                                        monkeypatch):
    ct = polled_sim.fixtures["cleartax"]
    ref = ct.add("te-1", "act-1", ["ON_HOLD", "PROCESSED"])
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", f'["{ref}"]')

    first = run_polled("cleartax")

    assert first.providers[0].counts["unfinished"] == 1
    assert query("""select status, native_status, canonical_status, is_terminal
        from {ds}.cleartax_upload_activities""") == [("ON_HOLD", "ON_HOLD", "unknown", False)]
    polled_sim.advance()
    polled_sim.clear_log()

    run_polled("cleartax")

    assert polled_refs(polled_sim) == [ref]
    assert query("""select native_status, status from {ds}.cleartax_status_history
        order by observed_at""") == [("ON_HOLD", "unknown"), ("PROCESSED", "succeeded")]


def test_an_activity_is_found_only_under_its_taxable_entity_and_aborts_with_its_reason(
        polled_sim, run_polled, query, monkeypatch):
    ct = polled_sim.fixtures["cleartax"]
    aborted = ct.add("te-1", "act-1", ["ABORTED"], error="HSN code is missing for item 3")
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", f'["{aborted}", "te-2/act-1"]')

    report = run_polled("cleartax")

    assert report.exit_code == 0, report.providers[0].errors
    assert query("""select job_id, scope_id, status, error_message from {ds}.upload_jobs
        where provider = 'cleartax' order by scope_id""") == [
        ("act-1", "te-1", "failed", "HSN code is missing for item 3"),
        ("act-1", "te-2", "not_found", "No activity found for id act-1")]
    assert query("""select job_id, item, reason from {ds}.upload_failures
        where provider = 'cleartax'""") == [("act-1", "te-1", "HSN code is missing for item 3")]
