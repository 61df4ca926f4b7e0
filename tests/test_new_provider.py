"""A provider is one folder: a copy of the project gets a throwaway provider ("Acme",
`tests/new_provider/`: a declaration and a simulator fixture, no test of its own; its status
nested in a JSON:API document, 410 Gone for expired imports), two listed ones (Beta, Gamma) and
loses one of its own; there the conformance suite collects every provider the copy has (not the
removed one) and runs every one of its checks on the new ones (the main run checks the others),
and nothing else in the copy changes. A declaration with a mistake fails with the field named."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from simulator import Simulator
from sources.common.declaration import DeclarationError, load_declaration

REPO = Path(__file__).parents[1]
ACME = REPO / "tests" / "new_provider"
BETA = REPO / "tests" / "new_listed_provider"  # a listed provider: batches, their rows
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, **GIT_ENV}).stdout


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """The project as a clone would have it (tracked and new files), committed in a git
    repository of its own."""
    copy = tmp_path_factory.mktemp("clone") / "upload-status"
    for name in git("ls-files", "-co", "--exclude-standard", cwd=REPO).splitlines():
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    git("init", "-q", cwd=copy)
    git("add", "-A", cwd=copy)
    git("commit", "-qm", "the project", cwd=copy)
    return copy


def in_copy(copy: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SOURCES__"))}
    return subprocess.run([sys.executable, *args], cwd=copy, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(copy), "COLUMNS": "200", **(env or {})},
                          timeout=600)


def test_a_provider_is_one_folder_checked_by_the_whole_conformance_suite(project_copy):
    acme, beta = project_copy / "sources" / "acme", project_copy / "sources" / "beta"
    for folder, origin in ((acme, ACME), (beta, BETA)):
        folder.mkdir()
        shutil.copy(origin / "provider.toml", folder / "provider.toml")
        shutil.copy(origin / "fixture.py", folder / "fixture.py")
    # Gamma: Beta whose items name no scope (the scope they were listed under is kept)
    gamma = project_copy / "sources" / "gamma"
    gamma.mkdir()
    for name in ("provider.toml", "fixture.py"):
        text = (BETA / name).read_text().replace("beta", "gamma").replace("Beta", "Gamma")
        (gamma / name).write_text(text.replace('scope_field = "account"\n', ""))
    shutil.rmtree(project_copy / "sources" / "cleartax")

    done = in_copy(project_copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                   "addopts=", "-n", "2", "tests/conformance", "-k", "acme or beta or gamma")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = [line.split("[", 1)[1].split("]")[0].split("-")[0]
                 for line in in_copy(project_copy, "-m", "pytest", "-q", "--collect-only", "-p",
                                     "no:cacheprovider", "-o", "addopts=", "tests/conformance"
                                     ).stdout.splitlines() if "[" in line]
    assert set(collected) >= {"acme", "beta", "gamma", "highlevel", "lobstr", "upload_post"}
    assert "cleartax" not in collected
    new = sum(name in ("acme", "beta", "gamma") for name in collected)
    assert f"{new} passed" in done.stdout.splitlines()[-1], done.stdout[-500:]  # none skipped
    own = in_copy(project_copy, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                  "-o", "addopts=", "tests/providers")  # a removed provider's own tests too
    assert own.returncode == 0 and "test_cleartax" not in own.stdout, own.stdout[-2000:]
    assert "test_lobstr" in own.stdout
    helped = in_copy(project_copy, "-m", "pipelines", "track", "--help")
    assert "acme" in helped.stdout and "cleartax" not in helped.stdout, helped.stdout
    listed = in_copy(project_copy, "-m", "pipelines", "providers")
    assert "SOURCES__ACME__API_KEY" in listed.stdout, listed.stdout

    changed = git("status", "--porcelain", "--untracked-files=all", cwd=project_copy)
    assert sorted({line.split("/")[1] for line in changed.splitlines()}) == [
        "acme", "beta", "cleartax", "gamma"]
    assert all(line[3:].startswith(("sources/acme/", "sources/beta/", "sources/cleartax/",
                                    "sources/gamma/"))
               for line in changed.splitlines()), changed

    # a mistake in the declaration: every command says which field, exit 2
    text = (acme / "provider.toml").read_text()
    broken = text.replace('field = "data.attributes.state"', 'field = "data..[["')
    (acme / "provider.toml").write_text(broken)
    done = in_copy(project_copy, "-m", "pipelines", "run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "sources/acme/provider.toml" in done.stderr and "status.field" in done.stderr
    assert "Traceback" not in done.stderr
    (acme / "provider.toml").write_text(text)


def test_a_misspelled_status_path_warns_naming_it_and_keeps_the_answer(project_copy, tmp_path):
    """Not `unknown` for ever: the first run names the field, the answer is a reject row and
    the job is polled again; fixed, the next run loads it."""
    acme = project_copy / "sources" / "acme"
    acme.mkdir(exist_ok=True)
    text = (ACME / "provider.toml").read_text()
    (acme / "provider.toml").write_text(text.replace('"data.attributes.state"',
                                                     '"data.atributes.state"'))
    shutil.copy(ACME / "fixture.py", acme / "fixture.py")
    spec = importlib.util.spec_from_file_location("acme_fixture", ACME / "fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fixture = module.FIXTURE()
    job = fixture.job(["QUEUED", "DONE"])
    with Simulator(fixture) as sim:
        env = {"SOURCES__ACME__BASE_URL": sim.base_url, "SOURCES__ACME__API_KEY": fixture.token,
               "DLT_DATA_DIR": str(tmp_path / "dlt"),
               "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "w.duckdb")}
        assert in_copy(project_copy, "-m", "pipelines", "track", "acme", job,
                       env=env).returncode == 0
        first = in_copy(project_copy, "-m", "pipelines", "run", "--source", "acme", env=env)
        assert first.returncode == 0, first.stderr
        assert "'data.atributes.state'" in first.stdout + first.stderr
        with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
            assert con.execute("select job_ref, reason from upload_status.acme_rejects"
                               ).fetchall() == [(job, "HTTP 200 without the status field "
                                                      "'data.atributes.state'")]
            assert con.execute("select count(*) from upload_status.upload_jobs").fetchone() \
                == (0,)
        (acme / "provider.toml").write_text(text)
        fixed = in_copy(project_copy, "-m", "pipelines", "run", "--source", "acme", env=env)
    assert fixed.returncode == 0, fixed.stderr
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("select job_id, native_status, status from upload_status.upload_jobs"
                           ).fetchall() == [(job, "QUEUED", "pending")]
    shutil.rmtree(acme)


def _declaration(tmp_path: Path, old: str, new: str, origin: Path = ACME) -> Path:
    """The example declaration of `origin` with `old` made `new`, in a folder of its name."""
    text = (origin / "provider.toml").read_text()
    assert old in text
    folder = tmp_path / ("acme" if origin == ACME else "beta")
    folder.mkdir()
    (folder / "provider.toml").write_text(text.replace(old, new))
    return folder / "provider.toml"


@pytest.mark.parametrize(("old", "new", "named"), [
    ('field = "data.attributes.state"', "", "status.field: required field is missing"),
    ('field = "data.attributes.state"', 'field = "data.[attributes"', "status.field: "),
    ('codes = { 410 = "not_found" }', 'codes = { 410 = "gone" }', "status.codes.410"),
    ('codes = { 410 = "not_found" }', 'codes = { 41 = "fail" }', "status.codes"),
    ('[auth]\nsecret = "api_key"', '[auth]\nsecret = "Api Key"', "auth.secret"),
    ('DONE = "succeeded"', 'DONE = "success"', "status.map.DONE"),
    ('base_url = "https://api.acme.example"', 'base_url = "http://api.acme.example/v2"',
     "base_url"),
    ('rows_ok = "bigint"', 'rows_ok = "integer"', "columns.data__attributes__rows_ok"),
    ('name = "acme"', 'name = "acme2"', "name: 'acme2' is not the folder's name"),
    ('jobs_per_run = 4', 'jobs_per_run = "four"', "demo.jobs_per_run"),
    ('path = "v2/imports/{job_id}"', 'path = "v2/imports/{job_id}"\nverb = "GET"',
     "status: Additional properties are not allowed ('verb'"),
    ("[ids]\n", '[ids]\nformat = "{scope_id}{job_id}"\n', "ids.format"),
    ('kind = "polled"', 'kind = "pushed"', "kind"),
    ("[demo]", "[demo\n", "cannot be read"),
])
def test_a_declaration_with_a_mistake_names_the_field(tmp_path, old, new, named):
    path = _declaration(tmp_path, old, new)
    with pytest.raises(DeclarationError) as error:
        load_declaration(path)
    assert str(error.value).startswith(str(path)) and named in str(error.value)


def test_the_declaration_as_given_loads(tmp_path):
    declared = load_declaration(_declaration(tmp_path, "", ""))
    assert declared.provider.name == "acme" and declared.ids_key == "import_ids"
    assert declared.provider.parse_ref("imp-1").job_id == "imp-1"


@pytest.mark.parametrize(("old", "new", "named"), [
    ('gone = "deleted"', 'gone = "removed"', "status.gone: 'removed' is not a status"),
    ('id = "id"', 'id = "$.id"', "listing.id"),
    ('items = "data"\ntable = "beta_batches"', 'table = "beta_batches"',
     "listing.items: required field is missing"),
    ('kind = "listed"', 'kind = "listd"', "kind: 'listd' is not one of"),
    ('per_scope = true', 'per_scope = "yes"', "rate_limit.per_scope"),
    ('[scopes]\nconfig_key = "account_ids"', '[scopes]\nconfig_key = "Account IDs"',
     "scopes.config_key"),
])
def test_a_listed_declaration_with_a_mistake_names_the_field(tmp_path, old, new, named):
    path = _declaration(tmp_path, old, new, BETA)
    with pytest.raises(DeclarationError) as error:
        load_declaration(path)
    assert str(error.value).startswith(str(path)) and named in str(error.value)


def test_a_python_provider_without_a_demo_sits_the_demo_out(tmp_path):
    """`demo.py` is optional (CONTRIBUTING): the demo leaves such a provider out instead of
    failing on it."""
    from datetime import datetime, timezone

    from sources import ProviderPackage, providers

    upload_post = providers()["upload_post"]
    bare = ProviderPackage(upload_post.name, tmp_path, upload_post.provider, upload_post.source)
    assert bare.scenario(datetime.now(timezone.utc)) is None
