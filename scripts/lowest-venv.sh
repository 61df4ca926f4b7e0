#!/usr/bin/env bash
# Prints the path of a cached virtualenv holding the lowest versions pyproject.toml allows (every
# `>=X` of the runtime, Postgres and dlt test extras pinned to X) and the test tools.
set -euo pipefail
here=$(dirname "$0")
"${PYTHON:-python3}" "$here/requirements.py" lowest | "$here/cached-venv.sh" lowest
