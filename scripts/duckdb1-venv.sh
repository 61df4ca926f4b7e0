#!/usr/bin/env bash
# Prints the path of a cached virtualenv holding a DuckDB 1.x, the reader BI tools still embed
# (the test that opens our DuckDB files read-only with it); pytz for its timestamptz results.
set -euo pipefail
printf '%s\n' "duckdb==${UPLOAD_STATUS_DUCKDB1_VERSION:-1.4.4}" pytz \
    | "$(dirname "$0")/cached-venv.sh" duckdb1
