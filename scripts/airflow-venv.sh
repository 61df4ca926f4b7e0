#!/usr/bin/env bash
# Prints the path of a cached virtualenv holding Apache Airflow and this project's runtime and
# Postgres dependencies (the DAG test; it takes a few minutes, once).
set -euo pipefail
here=$(dirname "$0")
{ echo "apache-airflow==3.3.2"; "${PYTHON:-python3}" "$here/requirements.py" postgres; } \
    | "$here/cached-venv.sh" airflow-3.3.2
