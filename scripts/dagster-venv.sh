#!/usr/bin/env bash
# Prints the path of a virtualenv holding Dagster and this project's runtime dependencies,
# created on first use in a cache folder kept between runs. The project itself is not
# installed there: the Dagster test puts the checkout on PYTHONPATH.
set -euo pipefail
DAGSTER_VERSION=${UPLOAD_STATUS_DAGSTER_VERSION:-1.13.29}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
deps=$("$python" - "$root/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"]))
PY
)
key=$(printf '%s\n%s\n' "$DAGSTER_VERSION" "$deps" | sha256sum | cut -c1-12)
venv="${UPLOAD_STATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-status}/dagster-$DAGSTER_VERSION-py$pyver-$key"
if [[ ! -f "$venv/.complete" ]]; then
    echo "dagster-venv: creating $venv (Dagster $DAGSTER_VERSION, once)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip >&2
    mapfile -t requirements <<<"$deps"
    "$venv/bin/pip" install --quiet "dagster==$DAGSTER_VERSION" "${requirements[@]}" \
        2> >(grep -v "is ignored: it is neither" >&2)
    touch "$venv/.complete"
fi
echo "$venv"
