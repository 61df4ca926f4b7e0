"""What `pipelines/destinations/dlt_private.py` assumes of dlt's private API, one test each.
`make test` runs these against the pinned dlt, the lowest and the newest the bounds allow: a
dlt release that changes one of them fails here, not in a user's crash resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.destinations.job_client_impl import SqlJobClientBase

import pipelines.destinations.duckdb_sharing as sharing
from pipelines.destinations.dlt_private import (
    job_client,
    normalized_packages,
    restoring_state,
    table_variants,
)
from pipelines.destinations.fence import fenced


@dlt.resource(name="things", primary_key="id", write_disposition="merge")
def things(n: int = 3) -> Any:
    yield [{"id": i, "name": f"thing {i}"} for i in range(n)]


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline("contract", destination=dlt.destinations.duckdb(
        str(tmp_path / "c.duckdb")), dataset_name="contract", pipelines_dir=str(tmp_path / "p"))


def test_normalized_packages_lists_pending_jobs_and_their_transitions(pipeline):
    pipeline.extract(things())
    pipeline.normalize()
    packages = normalized_packages(pipeline)
    (load_id,) = pipeline.list_normalized_load_packages()
    jobs = packages.list_new_jobs(load_id)
    assert any("things" in job for job in jobs)
    job = packages.start_job(load_id, Path(next(j for j in jobs if "things" in j)).name)
    name = Path(job).name
    assert Path(packages.storage.make_full_path(job)).is_file()
    assert [Path(p).name for p in packages.list_started_jobs(load_id)] == [name]
    assert packages.load_pending_transition(load_id, name) is None
    packages.save_pending_transition(load_id, name, "completed")
    assert packages.load_pending_transition(load_id, name)[0] == "completed"
    assert packages.load_schema(load_id).name == pipeline.default_schema_name
    assert Path(packages.storage.make_full_path(packages.get_package_path(load_id))).is_dir()


def test_job_client_is_a_sql_client_of_the_given_schema(pipeline):
    pipeline.run(things())
    client = job_client(pipeline, pipeline.default_schema)
    assert isinstance(client, SqlJobClientBase)
    with client:
        assert client.sql_client.execute_sql("select count(*) from things")[0][0] == 3


def test_restoring_state_makes_a_sync_take_the_given_state(pipeline):
    pipeline.run(things())
    chosen = dict(pipeline.state)
    chosen["sources"] = {"contract": {"marker": "chosen"}}
    pipeline.drop()

    with restoring_state(pipeline, chosen):
        pipeline.sync_destination()

    assert pipeline.state["sources"]["contract"]["marker"] == "chosen"
    assert not hasattr(pipeline, "_restore_state_from_destination") or \
        "_restore_state_from_destination" not in vars(pipeline)


def test_table_variants_are_the_tables_a_resource_has_own_hints_for():
    resource = things()
    assert table_variants(resource) == []
    resource.apply_hints(table_name="other_things", create_table_variant=True)
    assert table_variants(resource) == ["other_things"]


def test_every_load_job_commits_through_the_fenced_sql_client(pipeline):
    class Counting:
        lost = None
        fences = 0

        def fence(self, connection: Any) -> None:
            self.fences += 1

        def check(self) -> None:
            pass

    lock = Counting()
    with fenced(pipeline, lock):
        info = pipeline.run(things())
    jobs = len(info.load_packages[0].jobs["completed_jobs"])
    assert jobs >= 1 and lock.fences >= jobs


def test_duckdb_connections_are_borrowed_through_the_wrapped_pool(pipeline, monkeypatch):
    calls = []
    original = sharing.waiting_for_readers
    monkeypatch.setattr(sharing, "waiting_for_readers",
                        lambda connect, wait=None: calls.append(1) or original(connect, wait))
    pipeline.run(things())
    assert calls
