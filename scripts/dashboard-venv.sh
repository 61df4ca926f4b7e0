#!/usr/bin/env bash
# Prints the path of a cached virtualenv holding dlt's workspace dashboard (marimo, ibis, dlt's
# hub extra) and this project's runtime dependencies (the `upload-status dlt show` test).
set -euo pipefail
here=$(dirname "$0")
{ printf '%s\n' marimo "ibis-framework[duckdb]" "dlt[hub]==1.31.0"
  "${PYTHON:-python3}" "$here/requirements.py" runtime; } | "$here/cached-venv.sh" dashboard
