"""Finished jobs of polled providers kept as compact digests (`FinishedJobs`): never polled
again, polled by a full refresh from the destination's own list, and a state written before
(finished jobs in `jobs`) carried over without losing one."""

from __future__ import annotations

from conftest import cli, read_duckdb
from polled_helpers import history_rows, polled_refs


def lobstr_state(pipeline) -> dict:
    return pipeline.state["sources"]["lobstr"]


def test_tracked_finished_jobs_leave_the_state_and_a_full_refresh_polls_them(
        polled_sim, run_polled, pipeline, query):
    from pipelines.commands.track import track_jobs

    lb = polled_sim.fixtures["lobstr"]
    done = [lb.add(f"{i:032x}", ["SUCCESS"]) for i in range(5)]
    running = lb.add("f" * 32, ["PENDING"])
    track_jobs("lobstr", [*done, running], pipeline=pipeline)
    run_polled("lobstr")

    state = lobstr_state(pipeline)
    assert list(state["jobs"]) == [running]  # the finished ones are digests now
    assert state["finished_jobs"]["keys"]
    polled_sim.clear_log()
    run_polled("lobstr")
    assert polled_refs(polled_sim) == [running]
    polled_sim.clear_log()
    refreshed = run_polled("lobstr", full_refresh=True)
    assert sorted(polled_refs(polled_sim)) == sorted([*done, running])
    assert refreshed.providers[0].counts["changed"] == 0
    assert history_rows(query) == dict.fromkeys([*done, running], 1)


def old_layout(pipeline, finished: list[str]) -> None:
    """Store the state as runs before compact finished jobs did (finished jobs in `jobs`),
    in the destination too (a run reconciles with what the destination holds)."""
    import dlt

    @dlt.source(name="lobstr")
    def rewrite():
        @dlt.resource(name="lobstr_state_rewrite", selected=True)
        def nothing():
            source = dlt.current.source_state()
            code = source["job_statuses"].index(["FAILURE", "failed"])
            source["jobs"] = dict.fromkeys(finished, code)
            del source["finished_jobs"]
            yield from ()

        return nothing

    pipeline.run(rewrite())
    assert set(lobstr_state(pipeline)["jobs"]) == set(finished)


def test_a_state_from_before_keeps_every_finished_job(polled_sim, run_polled, pipeline,
                                                      query):
    from pipelines.commands.track import track_jobs

    lb = polled_sim.fixtures["lobstr"]
    done = [lb.add(f"{i:032x}", ["FAILURE"]) for i in range(3)]
    track_jobs("lobstr", done, pipeline=pipeline)
    run_polled("lobstr")
    old_layout(pipeline, done)

    for _ in range(2):  # nothing is polled, so nothing is observed: the move must be stored
        polled_sim.clear_log()
        report = run_polled("lobstr")
        assert report.exit_code == 0
        assert polled_refs(polled_sim) == []
        assert lobstr_state(pipeline)["jobs"] == {}
    assert track_jobs("lobstr", done, pipeline=pipeline).registered == 0  # still known
    run_polled("lobstr")
    assert history_rows(query) == dict.fromkeys(done, 1)


def test_untrack_and_track_again_with_compact_state(polled_sim, tmp_path):
    lb = polled_sim.fixtures["lobstr"]
    finished = lb.add("a" * 32, ["SUCCESS"])
    assert cli("track", "lobstr", finished, cwd=tmp_path).returncode == 0
    assert cli("run", cwd=tmp_path).returncode == 0
    again = cli("track", "lobstr", finished, cwd=tmp_path)
    assert "0 newly followed, 1 already followed" in again.stdout  # known as finished
    gone = cli("untrack", "lobstr", finished, cwd=tmp_path)
    assert "1 already finished" in gone.stdout
    rows = read_duckdb(tmp_path / "upload_status_data.duckdb",
                       "select count(*) from {ds}.upload_job_status_history")
    assert rows == [(1,)]
