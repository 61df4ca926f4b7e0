#!/usr/bin/env bash
# Prints the path of a virtualenv holding a DuckDB 1.x (the readers BI tools still embed), created
# on first use in a cache folder kept between runs. Used by the test that opens our DuckDB files
# read-only with it.
set -euo pipefail
DUCKDB_VERSION=${UPLOAD_STATUS_DUCKDB1_VERSION:-1.4.4}
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
packages=("duckdb==$DUCKDB_VERSION" "pytz")  # pytz: DuckDB's Python timestamptz results
key=$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-8)
venv="${UPLOAD_STATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-status}/duckdb-$DUCKDB_VERSION-py$pyver-$key"
if [[ ! -f "$venv/.complete" ]]; then
    echo "duckdb1-venv: creating $venv (DuckDB $DUCKDB_VERSION, once)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "${packages[@]}" >&2
    touch "$venv/.complete"
fi
echo "$venv"
