"""Every declared listed provider meets the same guarantees, checked against its fixture's
facts alone (`simulator.facts.ListedFacts`): a provider folder added is a provider checked
here. With no declared listed provider registered, these tests are not collected."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
from conftest import cli, point_at, warehouse_at

from pipelines.analytics.report import build_report
from pipelines.run.runner import run_providers
from simulator import Fault, Reply
from simulator.hostile import credential_of

from .conftest import Listed, killed_then_rerun


def _nested(path: str, value: object) -> object:
    """`value` at a dotted path of an answer (`results.csvs` -> {"results": {"csvs": ...}})."""
    for key in reversed(path.split(".")):
        value = {key: value}
    return value


def _trajectories(facts) -> list[list[str]]:
    finals = [s for s in facts.contract if s in facts.finished]
    waiting = [s for s in facts.contract if s not in facts.finished]
    return ([[w, finals[i % len(finals)]] for i, w in enumerate(waiting)]
            + [[f] for f in finals])


def test_items_are_followed_until_final_and_a_no_change_run_reads_one_page_per_scope(
        listed: Listed):
    facts = listed.fixture
    a, b = facts.scope(), facts.scope()
    steps = {}
    for i in range(12):  # more than two pages of `a`
        steps[facts.item(a if i % 3 else b, _trajectories(facts)[i % len(_trajectories(facts))],
                         rows=2)] = _trajectories(facts)[i % len(_trajectories(facts))]
    listed.follow(a, b)

    for run in range(3):
        report = listed.run()
        assert report.exit_code == 0, report.providers[0].errors
        for item, (native, canonical) in listed.jobs().items():
            assert canonical == facts.contract[native], (run, item, native)
        reads = listed.reads()
        changed_before = {i for i, t in steps.items() if run == 0 or len(t) > run}
        assert {i for kind, i in reads if kind == "children"} == changed_before, f"run {run}"
        listed.sim.advance()

    report = listed.run()
    assert report.exit_code == 0
    assert listed.reads() == {("listing", a): 1, ("listing", b): 1}  # the window, no children
    history = dict(listed.query(f"select job_id, count(*) from {{ds}}.{listed.name}"
                                "_status_history group by 1"))
    assert history == {i: len(set(t)) for i, t in steps.items()}
    assert set(listed.jobs()) == set(steps)


def test_one_refused_scope_fails_alone_and_loads_once_it_answers(listed: Listed):
    facts = listed.fixture
    good, unknown = facts.scope(), facts.unknown_scope()
    item = facts.item(good, ["queued" if "queued" in facts.contract else
                             next(iter(facts.contract))], rows=1)
    listed.follow(good, unknown)

    report = listed.run()

    stats = report.providers[0]
    assert report.exit_code == 1 and stats.outcome == "partly failed", stats.errors
    assert any(unknown in line for line in stats.failed_parts), stats.failed_parts
    assert set(listed.jobs()) == {item}
    assert listed.query("select unit_id from {ds}.upload_failing_units") == [(unknown,)]


def test_unreadable_items_and_pages_are_rejects_and_the_rest_loads(listed: Listed):
    facts = listed.fixture
    a, b = facts.scope(), facts.scope()
    first = facts.item(a, [next(iter(facts.finished))], rows=1)
    kept = facts.item(b, [next(iter(facts.finished))], rows=1)
    listed.follow(a, b)
    spec = listed.spec
    listed.sim.inject(Fault(None, "/" + spec.listing_path(a), times=1, answer=lambda r: Reply(
        200, _nested(spec.items, [{"no": "id"}, {"also": "no id"}]))))
    listed.sim.inject(Fault(200, "/" + spec.listing_path(b), times=1,
                            body=b"<html>busy</html>", content_type="text/html"))
    listed.sim.inject(Fault(200, "/" + spec.listing_path(b), times=9,
                            body=b"<html>busy</html>", content_type="text/html"))

    report = listed.run()

    rejects = listed.query(f"select reason from {{ds}}.{listed.name}_rejects")
    assert len(rejects) >= 2, report.providers[0].errors
    assert report.exit_code == 1
    listed.sim.faults.clear()
    assert listed.run().exit_code == 0
    assert set(listed.jobs()) >= {first, kept}


def test_a_concurrent_run_equals_a_sequential_one(listed: Listed, tmp_path: Path):
    facts = listed.fixture
    scopes = [facts.scope() for _ in range(4)]
    for i in range(20):
        facts.item(scopes[i % 4], _trajectories(facts)[i % len(_trajectories(facts))], rows=2)
    listed.follow(*scopes)
    env = {listed.package.provider.env_key("base_url"): listed.sim.base_url,
           listed.package.provider.secret_env_key: facts.token,
           listed.scopes_key:
               json.dumps(scopes), "COLUMNS": "200"}
    tables = {}
    for concurrency in (1, 8):
        folder = tmp_path / f"c{concurrency}"
        folder.mkdir()
        done = cli("run", "--source", listed.name, cwd=folder,
                   env={**env, listed.package.provider.env_key("concurrency"):
                        str(concurrency)})
        assert done.returncode == 0, done.stderr[-2000:]
        con = duckdb.connect(str(folder / "upload_status_data.duckdb"), read_only=True)
        tables[concurrency] = sorted(con.execute(
            "select job_id, native_status, status from upload_status.upload_jobs "
            f"where provider = '{listed.name}'").fetchall())
        con.close()
    assert tables[1] == tables[8] and len(tables[1]) == 20


def test_an_unfinished_item_gone_from_a_complete_listing_is_cancelled(listed: Listed,
                                                                      monkeypatch):
    facts = listed.fixture
    if getattr(facts, "gone", None) is None:
        return  # the provider declares no status for items gone from the listing
    native, canonical = facts.gone
    scope = facts.scope()
    waiting = next(s for s in facts.contract if s not in facts.finished)
    staying, leaving = facts.item(scope, [waiting]), facts.item(scope, [waiting])
    listed.follow(scope)
    assert listed.run().exit_code == 0
    facts.delete(leaving)
    monkeypatch.setenv(listed.package.provider.env_key("full_pass_hours"), "0.000001")

    assert listed.run().exit_code == 0

    jobs = listed.jobs()
    assert jobs[leaving] == (native, canonical) and jobs[staying][0] == waiting


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "sqlite"])
def test_views_and_report_show_its_items(listed: Listed, tmp_path: Path, kind: str):
    facts = listed.fixture
    scope = facts.scope()
    steps = {facts.item(scope, t, rows=2): t for t in _trajectories(facts)}
    listed.follow(scope)
    (tmp_path / kind).mkdir()
    with warehouse_at(kind, tmp_path / kind, tmp_path / kind / "w.duckdb") as place:
        assert run_providers([listed.name], pipeline=place.pipeline).exit_code == 0
        jobs = place.query(f"select job_id, status from {{ds}}.upload_jobs "
                           f"where provider = '{listed.name}'")
        assert dict(jobs) == {i: facts.contract[t[0]] for i, t in steps.items()}
        report = build_report(place.pipeline)
    assert {t["provider"]: t["jobs"] for t in report.totals}[listed.name] == len(steps)


def test_a_run_killed_mid_load_resumes_exactly(listed: Listed, tmp_path: Path):
    """Killed (SIGKILL) once its second load job has committed, before dlt notes it: the
    run after it leaves the tables a run never killed leaves, no change recorded twice."""
    facts = listed.fixture
    scope = facts.scope()
    for t in _trajectories(facts):
        facts.item(scope, t, rows=2)
    env = {**point_at(listed.sim, facts), listed.scopes_key: json.dumps([scope])}
    clean, resumed = killed_then_rerun(listed.name, listed.sim, env, tmp_path, "load-job:2")
    assert clean == resumed and clean[f"{listed.name}_status_history"]


def test_the_token_is_never_in_output_files_or_tables(listed: Listed, tmp_path: Path):
    token = f"tok-{listed.name}-DISTINCTIVE-3b7e21"
    facts = listed.fixture
    facts.token = token
    scope = facts.scope()
    for t in _trajectories(facts):
        facts.item(scope, t, rows=1)
    provider = listed.package.provider
    listed.sim.inject(Fault(None, "/" + listed.spec.listing_path(scope), times=1,
                            answer=lambda req: Reply(500, {"echo": credential_of(req)})))
    env = {"RUNTIME__LOG_LEVEL": "DEBUG", "COLUMNS": "200",
           provider.env_key("base_url"): listed.sim.base_url, provider.secret_env_key: token,
           listed.scopes_key: json.dumps([scope])}
    done = [cli("run", "--source", listed.name, cwd=tmp_path, env=env),
            cli("report", "--format", "json", cwd=tmp_path, env=env),
            cli("run", "--source", listed.name, cwd=tmp_path,
                env={**env, provider.secret_env_key: token[::-1]})]
    assert [d.returncode for d in done[:2]] == [0, 0], [d.stderr[-800:] for d in done]
    assert done[2].returncode != 0
    for result in done:
        assert token not in result.stdout + result.stderr
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        content = path.read_bytes()
        assert token.encode() not in content and token[::-1].encode() not in content, path


def test_it_takes_part_in_the_demo(listed: Listed):
    start = datetime.now(timezone.utc)
    scenario = listed.package.scenario(start)
    assert scenario.submit(1, start) == []  # listed by the API: nothing to track
    env = scenario.env("https://127.0.0.1:1")
    assert json.loads(env[listed.scopes_key])
