#!/usr/bin/env bash
# The tests that exercise the dependencies against the lowest versions pyproject.toml allows
# (scripts/lowest-venv.sh): the conformance suite (every provider over real HTTP, views and
# report on DuckDB, Postgres and SQLite, a crash and its resume, tokens through the command
# line), the command line (but the demo: it runs what the suite runs, ten times), the Arrow
# and dlt contracts, the pure functions. Run by `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/scripts/lowest-venv.sh")
cd "$root"
"$venv/bin/python" -c 'from importlib.metadata import version as v
print("lowest bounds:", ", ".join(f"{p} {v(p)}" for p in ("dlt", "duckdb", "sqlglot", "pyarrow",
      "rich", "typer", "requests", "pendulum")))'
PYTHONPATH="$root" exec "$venv/bin/python" -m pytest -n 2 --dist worksteal -q -p no:cacheprovider \
    tests/conformance tests/test_cli.py tests/test_arrow_contract.py tests/test_units.py \
    tests/test_dlt_contract.py -k "not demo_needs_no_credentials" "$@"
