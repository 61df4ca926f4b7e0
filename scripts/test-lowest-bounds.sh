#!/usr/bin/env bash
# The tests that exercise the dependencies (the command line, views and report on DuckDB and
# Postgres, every provider over real HTTP, the Arrow contract, the pure functions) against the
# lowest versions pyproject.toml allows (scripts/lowest-venv.sh). Run by `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/scripts/lowest-venv.sh")
cd "$root"
"$venv/bin/python" -c 'from importlib.metadata import version as v
print("lowest bounds:", ", ".join(f"{p} {v(p)}" for p in ("dlt", "duckdb", "sqlglot", "pyarrow",
      "rich", "typer", "requests", "pendulum")))'
PYTHONPATH="$root" exec "$venv/bin/python" -m pytest -n 2 --dist worksteal -q -p no:cacheprovider \
    tests/test_cli.py tests/test_views.py tests/providers tests/test_arrow_contract.py \
    tests/test_units.py tests/test_dlt_contract.py "$@"
