#!/usr/bin/env bash
# Prints the path of a cached virtualenv holding Dagster and this project's runtime dependencies
# (the Dagster test).
set -euo pipefail
here=$(dirname "$0")
{ echo "dagster==${UPLOAD_STATUS_DAGSTER_VERSION:-1.13.29}"; "${PYTHON:-python3}" "$here/requirements.py" runtime; } \
    | "$here/cached-venv.sh" dagster
