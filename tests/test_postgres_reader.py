"""The guide's read-only Postgres role, as written in docs/bi-guide.md: the pipeline loads as a
role of its own, the recipe runs once after the first run, and the reader still reads every
view and table after later runs recreate the views (and dlt adds tables)."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

import dlt
import psycopg2
import pytest
from conftest import REPO, postgres_dsn

from pipelines.run.runner import run_providers


def recipe() -> str:
    guide = (REPO / "docs/bi-guide.md").read_text()
    (sql,) = [q for q in re.findall(r"```sql\n(.*?)```", guide, re.S) if "CREATE ROLE" in q]
    return sql


def as_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{user}:unused@{parts.hostname}:{parts.port}"))


def execute(dsn: str, sql: str) -> list[tuple]:
    con = psycopg2.connect(dsn)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        con.close()


@pytest.fixture
def roles():
    """A loader role (may create schemas) and the reader's name; both dropped afterwards."""
    admin = postgres_dsn()
    suffix = uuid.uuid4().hex[:8]
    loader, reader, dataset = f"loader_{suffix}", f"reader_{suffix}", f"us_{suffix}"
    execute(admin, f"CREATE ROLE {loader} LOGIN PASSWORD 'x'; "
                   f"GRANT CREATE ON DATABASE {urlsplit(admin).path[1:]} TO {loader}")
    yield admin, loader, reader, dataset
    execute(admin, f"DROP SCHEMA IF EXISTS {dataset} CASCADE; "
                   f"DROP SCHEMA IF EXISTS {dataset}_staging CASCADE")
    for role in (reader, loader):
        execute(admin, f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                       f"THEN EXECUTE 'DROP OWNED BY {role} CASCADE'; "
                       f"EXECUTE 'DROP ROLE {role}'; END IF; END $$")


def test_the_read_only_role_keeps_reading_after_later_runs(roles, polled_sim, monkeypatch,
                                                           tmp_path):
    admin, loader, reader, dataset = roles
    pipeline = dlt.pipeline("upload_status", dataset_name=dataset,
                            destination=dlt.destinations.postgres(as_user(admin, loader)),
                            pipelines_dir=str(tmp_path / "pipelines"))
    lobstr, upload_post = polled_sim.fixtures["lobstr"], polled_sim.fixtures["upload_post"]
    monkeypatch.setenv("SOURCES__LOBSTR__UPLOAD_TASK_IDS",
                       json.dumps([lobstr.add("a" * 32, ["SUCCESS"])]))
    assert run_providers(["lobstr"], pipeline=pipeline).exit_code == 0

    grants = (recipe().replace("bi_reader", reader).replace("ROLE loader", f"ROLE {loader}")
              .replace("upload_status", dataset).replace("'...'", "'x'"))
    execute(admin, grants)
    # later runs: the views recreated, and a provider's tables new to the dataset
    monkeypatch.setenv("SOURCES__UPLOAD_POST__REQUEST_IDS", json.dumps(
        [upload_post.add("request", "r1", ["completed"]).split(":", 1)[1]]))
    for _ in range(2):
        assert run_providers(["lobstr", "upload_post"], pipeline=pipeline).exit_code == 0

    read = as_user(admin, reader)
    for relation in ("upload_jobs", "upload_success_rates", "upload_job_status_history",
                     "upload_platform_results", "lobstr_upload_tasks", "upload_post_uploads"):
        assert execute(read, f"SELECT COUNT(*) FROM {dataset}.{relation}")[0][0] >= 1, relation
    assert sorted(execute(read, f"SELECT provider FROM {dataset}.upload_jobs")) == [
        ("lobstr",), ("upload_post",)]
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        execute(read, f"DELETE FROM {dataset}.lobstr_upload_tasks")
