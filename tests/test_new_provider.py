"""A fifth provider is one folder and its test file: a copy of the project gets a throwaway
provider ("Acme", `tests/new_provider/`: a declaration and a simulator fixture) and its test,
which runs end to end there, and nothing else in the copy changes. A declaration with a
mistake fails with the field named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sources.common.declaration import DeclarationError, load_declaration

REPO = Path(__file__).parents[1]
ACME = REPO / "tests" / "new_provider"
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


def in_copy(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SOURCES__"))}
    return subprocess.run([sys.executable, *args], cwd=copy, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(copy), "COLUMNS": "200"}, timeout=600)


def test_a_new_provider_is_one_folder_and_its_test_file(project_copy):
    acme = project_copy / "sources" / "acme"
    acme.mkdir()
    shutil.copy(ACME / "provider.toml", acme / "provider.toml")
    shutil.copy(ACME / "fixture.py", acme / "fixture.py")
    shutil.copy(ACME / "test_acme.py", project_copy / "tests" / "providers" / "test_acme.py")

    done = in_copy(project_copy, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "-o", "addopts=", "tests/providers/test_acme.py")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
    helped = in_copy(project_copy, "-m", "pipelines.cli", "track", "--help")
    assert "acme" in helped.stdout, helped.stdout + helped.stderr
    listed = in_copy(project_copy, "-m", "pipelines.cli", "providers")
    assert "SOURCES__ACME__API_KEY" in listed.stdout, listed.stdout

    changed = git("status", "--porcelain", "--untracked-files=all", cwd=project_copy)
    assert sorted(changed.splitlines()) == [
        "?? sources/acme/fixture.py", "?? sources/acme/provider.toml",
        "?? tests/providers/test_acme.py"]

    # a mistake in the declaration: every command says which field, exit 2
    broken = (acme / "provider.toml").read_text().replace('field = "phase"\n', "")
    (acme / "provider.toml").write_text(broken)
    done = in_copy(project_copy, "-m", "pipelines.cli", "run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "sources/acme/provider.toml" in done.stderr and "status.field" in done.stderr
    assert "Traceback" not in done.stderr


def _declaration(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "acme"
    folder.mkdir()
    text = (ACME / "provider.toml").read_text()
    assert old in text
    (folder / "provider.toml").write_text(text.replace(old, new))
    return folder / "provider.toml"


@pytest.mark.parametrize(("old", "new", "named"), [
    ('field = "phase"\n', "", "status.field: required field is missing"),
    ('[auth]\nsecret = "api_key"', '[auth]\nsecret = "Api Key"', "auth.secret"),
    ('DONE = "succeeded"', 'DONE = "success"', "status.map.DONE"),
    ('base_url = "https://api.acme.example"', 'base_url = "http://api.acme.example/v2"',
     "base_url"),
    ('rows_ok = "bigint"', 'rows_ok = "integer"', "columns.rows_ok"),
    ('name = "acme"', 'name = "acme2"', "name: 'acme2' is not the folder's name"),
    ('jobs_per_run = 4', 'jobs_per_run = "four"', "demo.jobs_per_run"),
    ('path = "v2/imports/{job_id}"', 'path = "v2/imports/{job_id}"\nverb = "GET"',
     "status: Additional properties are not allowed ('verb'"),
    ("[ids]\n", '[ids]\nformat = "{scope_id}{job_id}"\n', "ids.format"),
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
