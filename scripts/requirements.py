"""Prints this project's requirements from pyproject.toml, one per line (for the cached
virtualenvs and the resolver check): `runtime` (the dependencies), `postgres` (and the
Postgres extra), `lowest` (those and dlt's test extras pinned at their lower bounds, then the
other test tools, ruff aside), `newest` (the same, as bounded)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
LOWER = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,\s]+)")


def lowest() -> list[str]:
    dlt_extras = [d for d in EXTRAS["dev"] if d.startswith("dlt[")]
    pinned = []
    for dep in PROJECT["dependencies"] + EXTRAS["postgres"] + dlt_extras:
        requirement, _, marker = dep.partition(";")
        if m := LOWER.match(requirement.strip()):
            pinned.append(f"{m[1]}{m[2] or ''}=={m[3]}" + (f"; {marker.strip()}" if marker else ""))
    tools = [d for d in EXTRAS["dev"] if not d.startswith(("dlt", "ruff"))]
    return list(dict.fromkeys(pinned + tools))


def newest() -> list[str]:
    """The runtime, Postgres and dlt test extras as bounded (the resolver picks the newest),
    then the other test tools."""
    dlt_extras = [d for d in EXTRAS["dev"] if d.startswith("dlt[")]
    tools = [d for d in EXTRAS["dev"] if not d.startswith(("dlt", "ruff"))]
    return list(dict.fromkeys(PROJECT["dependencies"] + EXTRAS["postgres"] + dlt_extras + tools))


SETS = {"runtime": lambda: PROJECT["dependencies"],
        "postgres": lambda: PROJECT["dependencies"] + EXTRAS["postgres"],
        "lowest": lowest, "newest": newest}

if __name__ == "__main__":
    print("\n".join(SETS[sys.argv[1]]()))
