"""Dependency bounds as users meet them: the project resolves beside Apache Airflow 2 and 3 in
one environment (pip's resolver, nothing installed), and the lock CI installs from
(`constraints.txt`) stays inside pyproject.toml's bounds. The lowest bounds themselves are
exercised by `make test` (scripts/test-lowest-bounds.sh)."""

from __future__ import annotations

import subprocess

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest
from conftest import REPO
from packaging.requirements import Requirement


@pytest.mark.parametrize("airflow", ["apache-airflow==2.11.0", "apache-airflow==3.3.2"])
def test_installs_beside_airflow(airflow: str):
    done = subprocess.run([str(REPO / "scripts/resolves-beside.sh"), airflow],
                          capture_output=True, text=True, timeout=900)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("resolves"), done.stdout


def test_the_lock_is_inside_the_bounds():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name.lower().replace("_", "-")] = version
    extras = project["optional-dependencies"]
    requirements = [Requirement(d) for d in project["dependencies"] + extras["dev"]]
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = requirement.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is not in constraints.txt (make lock)"
        assert requirement.specifier.contains(pinned[name]), (name, pinned[name])
