#!/usr/bin/env bash
# Exit 0 when pip resolves this project's dependencies (runtime + postgres) together with the
# requirement given (e.g. apache-airflow==2.11.0), without installing anything; a success is
# remembered in the cache folder for these exact dependencies, so it is asked once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
beside=$1
deps=$("$python" "$root/scripts/requirements.py" postgres)
cache="${UPLOAD_STATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-status}/resolved"
key=$(printf '%s\n%s\n' "$beside" "$deps" | sha256sum | cut -c1-16)
[[ -f "$cache/$key" ]] && { echo "resolves (cached): $beside"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
mapfile -t requirements <<<"$deps"
"$work/venv/bin/pip" install --quiet --dry-run --ignore-installed --report "$work/report.json" \
    "$beside" "${requirements[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
"$work/venv/bin/python" - "$work/report.json" <<'PY'
import json, sys
names = {i["metadata"]["name"].lower(): i["metadata"]["version"]
         for i in json.load(open(sys.argv[1]))["install"]}
print("resolves:", ", ".join(f"{n} {names[n]}" for n in ("apache-airflow", "dlt", "rich", "typer",
                                                           "sqlglot", "duckdb") if n in names))
PY
mkdir -p "$cache" && touch "$cache/$key"
