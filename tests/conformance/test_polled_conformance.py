"""Every polled provider in the registry meets the same guarantees, checked against its
fixture's facts alone: a provider folder added is a provider checked here."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import cli, point_at, warehouse_at

from pipelines.analytics.report import build_report
from pipelines.commands.track import track_jobs
from pipelines.run.runner import run_providers
from simulator import Reply
from simulator.hostile import credential_of, nested
from sources.common.status import NOT_FOUND, TERMINAL

from .conftest import Polled, killed_then_rerun


def trajectories(polled: Polled) -> list[list[str]]:
    """Every documented status, each unfinished one on the way to a final one."""
    facts = polled.fixture
    finals = [s for s in facts.contract if s in facts.finished]
    waiting = [s for s in facts.contract if s not in facts.finished]
    return ([[w, finals[i % len(finals)]] for i, w in enumerate(waiting)]
            + [[f] for f in finals] + [[*waiting[:2], finals[-1]]])


def test_jobs_are_followed_until_final_and_never_again(polled: Polled):
    """Each run polls exactly the jobs not seen finished, each status maps as the contract
    says, an unknown job is final `not_found` (or its declared action), history has one row
    per status."""
    facts = polled.fixture
    steps = {facts.job(t): t for t in trajectories(polled)}
    unknown = [facts.unknown_job(), facts.unknown_job()]
    polled.track(*steps, *unknown)
    finished: set[str] = set()

    for run in range(max(map(len, steps.values())) + 1):
        report = polled.run()
        assert report.exit_code == 0, report.providers[0].errors
        expected = [r for r in [*steps, *unknown] if r not in finished]
        assert polled.polled() == dict.fromkeys(expected, 1), f"run {run + 1}"
        for ref, (native, canonical) in polled.statuses().items():
            if ref in unknown:
                assert canonical == NOT_FOUND, (ref, native)
            else:
                assert canonical == facts.contract[native], (ref, native)
            if canonical in TERMINAL:
                finished.add(ref)
        polled.sim.advance()

    assert finished == {*steps, *unknown}
    polled.run()
    assert polled.polled() == {}
    history = polled.query(f"select job_ref, count(*) from {{ds}}.{polled.name}_status_history "
                           "group by 1")
    assert dict(history) == {**{r: len(set(t)) for r, t in steps.items()},
                             **dict.fromkeys(unknown, 1)}


def test_unreadable_answers_are_rejects_and_the_other_jobs_load(polled: Polled):
    facts, code = polled.fixture, polled.body_code()
    jobs = [facts.job(trajectories(polled)[0]) for _ in range(4)]
    html, no_status, deep, healthy = jobs
    polled.track(*jobs)
    polled.sim.inject(polled.fault_for(html, status=code, body=b"<html>busy</html>",
                                       content_type="text/html", times=1 << 30))
    polled.sim.inject(polled.fault_for(no_status, status=None, times=1 << 30, answer=lambda r:
                                       Reply(code, {"unexpected": "shape"})))
    polled.sim.inject(polled.fault_for(deep, status=None, times=1 << 30, answer=lambda r:
                                       Reply(code, {"deep": nested(300)})))

    report = polled.run().providers[0]

    rejects = dict(polled.query(f"select job_ref, reason from {{ds}}.{polled.name}_rejects"))
    assert set(rejects) == {html, no_status, deep}, report.errors
    assert "not JSON" in rejects[html] or "unreadable" in rejects[html]
    assert repr(polled.provider.status_field) in rejects[no_status]
    assert "deeper than" in rejects[deep]
    assert set(polled.statuses()) == {healthy}
    status_warnings = [w for w in report.warnings if polled.provider.status_field in w]
    assert len(status_warnings) == 1, report.warnings

    polled.sim.faults.clear()
    assert polled.run().exit_code == 0
    assert set(polled.statuses()) == set(jobs)


def test_the_token_is_never_in_output_files_or_tables(polled: Polled, tmp_path: Path):
    token = f"tok-{polled.name}-DISTINCTIVE-91c4e7"
    polled.fixture.token = token
    facts = polled.fixture
    jobs = [facts.job(t) for t in trajectories(polled)[:3]]
    echo = lambda status: lambda req: Reply(  # noqa: E731 - an API quoting what it was sent
        status, {"echo": credential_of(req), "message": f"token {credential_of(req)} bad"})
    polled.sim.inject(polled.fault_for(jobs[0], status=None, answer=echo(polled.body_code())))
    polled.sim.inject(polled.fault_for(jobs[1], status=None, answer=echo(500), times=9))
    env = {"RUNTIME__LOG_LEVEL": "DEBUG", "COLUMNS": "200",
           polled.provider.env_key("base_url"): polled.sim.base_url,
           polled.provider.secret_env_key: token}
    done = [cli("track", polled.name, *jobs, cwd=tmp_path, env=env),
            cli("run", "--source", polled.name, cwd=tmp_path, env=env),
            cli("report", "--format", "json", cwd=tmp_path, env=env),
            cli("run", "--source", polled.name, cwd=tmp_path,
                env={**env, polled.provider.secret_env_key: token[::-1]})]

    assert [d.returncode for d in done[:3]] == [0, 1, 0], [d.stderr[-800:] for d in done]
    assert done[3].returncode != 0
    for result in done:
        assert token not in result.stdout + result.stderr and token[::-1] not in result.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in files)
    for path in files:
        content = path.read_bytes()
        assert token.encode() not in content and token[::-1].encode() not in content, path


def test_a_run_killed_mid_load_resumes_exactly(polled: Polled, tmp_path: Path):
    """Killed (SIGKILL) once its second load job has committed, before dlt notes it: the
    run after it leaves the tables a run never killed leaves, no change recorded twice."""
    jobs = [polled.fixture.job(t) for t in trajectories(polled)]

    def track(place: Path, env: dict[str, str]) -> None:
        done = cli("track", polled.name, *jobs, cwd=place, env=env)
        assert done.returncode == 0, done.stderr[-2000:]

    env = point_at(polled.sim, polled.fixture)
    clean, resumed = killed_then_rerun(polled.name, polled.sim, env, tmp_path, "load-job:2",
                                       before=track)
    assert clean == resumed and clean[f"{polled.name}_status_history"]


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "sqlite"])
def test_views_and_report_show_its_jobs(polled: Polled, tmp_path: Path, kind: str):
    facts = polled.fixture
    steps = {facts.job(t): t for t in trajectories(polled)}
    (tmp_path / kind).mkdir()
    with warehouse_at(kind, tmp_path / kind, tmp_path / kind / "w.duckdb") as place:
        track_jobs(polled.name, list(steps), pipeline=place.pipeline)
        assert run_providers([polled.name], pipeline=place.pipeline).exit_code == 0

        jobs = place.query(f"select job_ref, status from {{ds}}.upload_jobs "
                           f"where provider = '{polled.name}'")
        assert dict(jobs) == {r: facts.contract[t[0]] for r, t in steps.items()}
        report = build_report(place.pipeline)
    totals = {t["provider"]: t for t in report.totals}
    assert totals[polled.name]["jobs"] == len(steps)


def test_it_takes_part_in_the_demo(polled: Polled):
    start = datetime.now(timezone.utc)
    scenario = polled.package.scenario(start)
    refs = scenario.submit(1, start)
    assert refs, "a demo run submits jobs"
    config = scenario.config(refs)
    assert config and all(isinstance(json.loads(v), list) for v in config.values())
