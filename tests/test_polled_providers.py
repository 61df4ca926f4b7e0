"""Upload-Post, Lobstr and ClearTax job tracking over real HTTP (bundled simulator) into a real
DuckDB file: what is polled, what is recorded, and what survives a wiped pipeline folder."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO
from polled_helpers import FINISHED, history_rows, polled_refs, statuses

from pipelines.commands.track import track_jobs
from pipelines.run.runner import run_providers


def test_four_runs_poll_exactly_the_unfinished_jobs_and_record_each_status_once(
        polled_sim, pipeline, run_polled, query, monkeypatch):
    up, lb, ct = (polled_sim.fixtures[n] for n in ("upload_post", "lobstr", "cleartax"))
    steps: dict[str, tuple[str, list[str]]] = {}

    def job(provider: str, ref: str, trajectory: list[str]) -> str:
        steps[ref] = (provider, trajectory)
        return ref

    by_config = [
        job("upload_post", up.add("request", "req-a", ["pending", "in_progress", "completed"],
                                  platforms=["x", "linkedin", "tiktok"],
                                  failures={"tiktok": "Account token expired"}),
            ["pending", "in_progress", "completed"]),
        job("lobstr", lb.add("a" * 32, ["PENDING", "PROGRESS", "SUCCESS"]),
            ["PENDING", "PROGRESS", "SUCCESS"]),
        job("cleartax", ct.add("te-1", "act-1", ["INIT", "PROCESSING", "PROCESSED"]),
            ["INIT", "PROCESSING", "PROCESSED"]),
    ]
    by_track = {
        "upload_post": job("upload_post", up.add("job", "job-b", ["pending", "completed"],
                                                 in_history=False), ["pending", "completed"]),
        "lobstr": job("lobstr", lb.add("b" * 32, ["PENDING", "SUCCESS"]), ["PENDING", "SUCCESS"]),
        "cleartax": job("cleartax", ct.add("te-2", "act-2", ["UPLOADED", "ABORTED"]),
                        ["UPLOADED", "ABORTED"]),
    }
    # found only in the history listing: it already has a platform result
    job("upload_post", up.add("request", "req-d", ["in_progress", "completed"]),
        ["in_progress", "completed"])
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", '["req-a"]')
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{"a" * 32}"]')
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", '["te-1/act-1"]')
    for provider, ref in by_track.items():
        assert track_jobs(provider, [ref], pipeline=pipeline).registered == 1

    reports = []
    for run_index in range(4):
        # a job is polled unless the previous run saw it finished
        expected = sorted(
            ref for ref, (provider, trajectory) in steps.items()
            if run_index == 0 or trajectory[min(run_index - 1, len(trajectory) - 1)]
            not in FINISHED[provider])
        polled_sim.clear_log()

        report = run_polled(*FINISHED)

        assert report.exit_code == 0, [p.errors for p in report.providers]
        assert sorted(polled_refs(polled_sim)) == expected, f"run {run_index + 1}"
        reports.append(report)
        polled_sim.advance()

    assert polled_refs(polled_sim) == []  # run 4: nothing left to poll
    assert sum(p.counts["polled"] for p in reports[3].providers) == 0
    assert history_rows(query) == {ref: len(set(t)) for ref, (_, t) in steps.items()}
    # run 2: req-a, a*32 and te-1 moved on; job-b, b*32, te-2 and req-d finished
    second = {p.provider: p.counts for p in reports[1].providers}
    assert {n: (c["polled"], c["changed"], c["unfinished"]) for n, c in second.items()} == {
        "upload_post": (3, 3, 1), "lobstr": (2, 2, 1), "cleartax": (2, 2, 1)}
    final = statuses(query, "upload_post_uploads")
    assert final["request:req-a"] == ("completed", "partial")  # tiktok failed, two published
    assert final["job:job-b"] == ("completed", "succeeded")
    assert final["request:req-d"] == ("completed", "succeeded")
    assert statuses(query, "cleartax_upload_activities")["te-2/act-2"] == ("ABORTED", "failed")
    assert query("""select registered_by, count(*) from {ds}.upload_post_tracked_jobs
        group by 1 order by 1""") == [("config", 1), ("history", 1), ("track", 1)]
    for provider, ref in zip(("upload_post", "lobstr", "cleartax"), by_config,
                             strict=True):  # followed through config
        assert query(f"""select registered_by from {{ds}}.{provider}_tracked_jobs
            where job_ref = '{ref}'""") == [("config",)], provider


def test_registrations_and_finished_jobs_survive_a_wiped_pipeline_folder(
        polled_sim, new_pipeline, tmp_path, query):
    lb = polled_sim.fixtures["lobstr"]
    done = lb.add("1" * 32, ["SUCCESS"])
    running = lb.add("2" * 32, ["PENDING", "PROGRESS", "SUCCESS"])
    track_jobs("lobstr", [done, running], pipeline=new_pipeline())
    shutil.rmtree(tmp_path / "pipelines")  # registered, never polled, folder gone

    first = run_providers(["lobstr"], pipeline=new_pipeline())

    assert first.exit_code == 0, first.providers[0].errors
    assert sorted(polled_refs(polled_sim)) == sorted([done, running])
    shutil.rmtree(tmp_path / "pipelines")
    polled_sim.advance()
    polled_sim.clear_log()

    second = run_providers(["lobstr"], pipeline=new_pipeline())

    assert polled_refs(polled_sim) == [running]  # the finished one is known from the destination
    assert second.providers[0].counts["new"] == 0
    assert history_rows(query) == {done: 1, running: 2}


def test_not_found_from_404_or_from_the_body_is_final(polled_sim, run_polled, query,
                                                      monkeypatch):
    ct = polled_sim.fixtures["cleartax"]
    ct.add("te-1", "act-1", ["PROCESSING"])
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", '["no-such-request"]')
    monkeypatch.setenv("SOURCES__UPLOAD_POST__JOB_IDS", '["job-200-not-found"]')
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{"f" * 32}"]')
    # an activity of te-1 asked for under another taxable entity does not exist there
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", '["te-9/act-1"]')
    # the status word without the 404 code
    polled_sim.fixtures["upload_post"].add("job", "job-200-not-found", ["not_found"],
                                           in_history=False)

    report = run_polled()

    assert report.exit_code == 0, [p.errors for p in report.providers]
    rows = query("""select job_ref, native_status, canonical_status, is_terminal, http_status
        from {ds}.upload_post_uploads order by job_ref""")
    assert sorted(rows) == [
        ("job:job-200-not-found", "not_found", "not_found", True, 200),
        ("request:no-such-request", "not_found", "not_found", True, 404)]
    assert query("""select native_status, canonical_status, http_status, error__type, id
        from {ds}.lobstr_upload_tasks""") == [
        ("HTTP 404", "not_found", 404, "not_found_error", "f" * 32)]
    assert query("""select native_status, canonical_status, activity_id, taxable_entity_id
        from {ds}.cleartax_upload_activities""") == [("HTTP 404", "not_found", "act-1", "te-9")]
    polled_sim.clear_log()

    run_polled()

    assert polled_refs(polled_sim) == []


def test_an_invalid_configured_id_is_a_configuration_error_the_valid_ones_load(
        polled_sim, run_polled, monkeypatch):
    monkeypatch.setenv("SOURCES__CLEARTAX__ACTIVITIES", '["te-1/act-1", "no-entity-part"]')

    report = run_polled("cleartax")

    assert report.exit_code == 2
    assert "no-entity-part" in report.providers[0].errors[0]
    assert polled_refs(polled_sim) == ["te-1/act-1"]


@pytest.mark.parametrize("provider", ["lobstr", "upload_post"])
def test_a_rejected_key_fails_that_provider_naming_the_key(polled_sim, run_polled,
                                                          monkeypatch, provider):
    key = f"SOURCES__{provider.upper()}__API_KEY"
    monkeypatch.setenv(key, "wrong-key-0123")
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{"a" * 32}"]')
    polled_sim.fixtures["lobstr"].add("a" * 32, ["PENDING"])

    report = run_polled(provider)

    assert report.exit_code == 1
    assert key in report.providers[0].errors[0]
    assert "wrong-key-0123" not in report.providers[0].errors[0]


def test_full_refresh_polls_finished_jobs_again_without_new_history(polled_sim, run_polled,
                                                                    query, monkeypatch):
    lb = polled_sim.fixtures["lobstr"]
    finished, running = lb.add("1" * 32, ["SUCCESS"]), lb.add("2" * 32, ["PENDING"])
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", f'["{finished}", "{running}"]')
    run_polled("lobstr")
    polled_sim.clear_log()

    plain = run_polled("lobstr")
    assert polled_refs(polled_sim) == [running]
    polled_sim.clear_log()
    refreshed = run_polled("lobstr", full_refresh=True)

    assert sorted(polled_refs(polled_sim)) == sorted([finished, running])
    assert plain.providers[0].counts["changed"] == refreshed.providers[0].counts["changed"] == 0
    assert history_rows(query) == {finished: 1, running: 1}


def test_a_code_declared_retry_makes_the_job_wait_without_an_error(polled_sim, pipeline, query,
                                                                   tmp_path, monkeypatch):
    """`status.codes = { 409 = "retry" }`: a job answering 409 waits for the next run (no
    reject, no error); `fail` and `reject` codes make a reject row."""
    import re

    from simulator import Fault
    from sources.common.declaration import load_declaration

    text = (REPO / "sources" / "lobstr" / "provider.toml").read_text()
    folder = tmp_path / "lobstr"
    folder.mkdir()
    (folder / "provider.toml").write_text(text.replace(
        'codes = { 202 = "body" }', 'codes = { 202 = "body", 409 = "retry", 418 = "reject" }'))
    declared = load_declaration(folder / "provider.toml")
    lobstr = polled_sim.fixtures["lobstr"]
    busy, teapot, fine = (lobstr.job(["SUCCESS"]) for _ in range(3))
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps([busy, teapot, fine]))
    polled_sim.inject(Fault(409, re.escape(f"/v1/tasks/upload/{busy}"), times=1))
    polled_sim.inject(Fault(418, re.escape(f"/v1/tasks/upload/{teapot}"), times=1))

    pipeline.run(declared.source())

    assert {r for (r,) in query("select job_ref from {ds}.lobstr_upload_tasks")} == {fine}
    assert query("select job_ref from {ds}.lobstr_rejects") == [(teapot,)]
    pipeline.run(declared.source())
    assert {r for (r,) in query("select job_ref from {ds}.lobstr_upload_tasks")} == {
        busy, teapot, fine}


def test_a_run_makes_dlt_warn_about_nothing(polled_sim, run_polled, monkeypatch):
    """History rows written from the jobs resource (a table variant) and reject rows agree
    with their tables' hints: no dlt warning in an operator's log on every run."""
    import logging

    lobstr = polled_sim.fixtures["lobstr"]
    tasks = [lobstr.job(["PENDING", "SUCCESS"]) for _ in range(3)] + ["f" * 32]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS", json.dumps(tasks))
    warned: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warned.append  # type: ignore[method-assign]
    dlt_logger = logging.getLogger("dlt")  # dlt's logger does not propagate
    dlt_logger.addHandler(handler)
    try:
        for _ in range(2):
            assert run_polled("lobstr").exit_code == 0
            polled_sim.advance()
    finally:
        dlt_logger.removeHandler(handler)
    assert [r.getMessage() for r in warned] == []
