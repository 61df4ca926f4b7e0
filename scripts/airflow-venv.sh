#!/usr/bin/env bash
# Prints the path of a virtualenv holding Apache Airflow and this project's runtime dependencies,
# creating it on first use in a cache folder kept between runs (it takes a few minutes). The
# project itself is not installed there: the DAG test puts the checkout on PYTHONPATH.
set -euo pipefail
AIRFLOW_VERSION=3.3.2
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
deps=$("$python" "$root/scripts/requirements.py" postgres)
key=$(printf '%s\n%s\n' "$AIRFLOW_VERSION" "$deps" | sha256sum | cut -c1-12)
venv="${UPLOAD_STATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-status}/airflow-$AIRFLOW_VERSION-py$pyver-$key"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9  # two test workers asking at once: one creates it, the other waits and takes it
if [[ ! -f "$venv/.complete" ]]; then
    echo "airflow-venv: creating $venv (Airflow $AIRFLOW_VERSION; a few minutes, once)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip >&2
    mapfile -t requirements <<<"$deps"
    "$venv/bin/pip" install --quiet "apache-airflow==$AIRFLOW_VERSION" "${requirements[@]}" >&2
    touch "$venv/.complete"
fi
echo "$venv"
