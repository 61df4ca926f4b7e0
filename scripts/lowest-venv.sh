#!/usr/bin/env bash
# Prints the path of a virtualenv holding the lowest versions pyproject.toml allows (every
# `>=X` of the runtime and Postgres dependencies pinned to X) and the test tools, created on
# first use in a cache folder kept between runs. The project itself is not installed there:
# the tests run from the checkout (PYTHONPATH).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
spec=$("$python" - "$root/pyproject.toml" <<'PY'
import re, sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
dlt_extras = [d for d in extras["dev"] if d.startswith("dlt[")]  # dlt's, at its lowest too
for dep in project["dependencies"] + extras["postgres"] + dlt_extras:
    req, _, marker = dep.partition(";")
    m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,\s]+)", req.strip())
    if m:
        print(f"{m[1]}{m[2] or ''}=={m[3]}" + (f"; {marker.strip()}" if marker else ""))
for dep in extras["dev"]:  # test tools: any version the bounds allow
    if not dep.startswith(("dlt", "ruff")):
        print(dep)
PY
)
key=$(printf '%s\n' "$spec" | sha256sum | cut -c1-12)
venv="${UPLOAD_STATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-status}/lowest-py$pyver-$key"
if [[ ! -f "$venv/.complete" ]]; then
    echo "lowest-venv: creating $venv (the lowest allowed versions, once)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip >&2
    mapfile -t requirements <<<"$spec"
    "$venv/bin/pip" install --quiet "${requirements[@]}" >&2
    touch "$venv/.complete"
fi
echo "$venv"
