#!/usr/bin/env bash
# Prints the path of a virtualenv NAME holding the requirements given on standard input (one per
# line), created on first use in a cache folder kept between runs; the folder's name carries a
# digest of the requirements, so other requirements make another. The project itself is not
# installed there: tests put the checkout on PYTHONPATH.
#   usage: printf '%s\n' REQUIREMENT... | scripts/cached-venv.sh NAME
set -euo pipefail
name=$1
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
requirements=$(cat)
key=$(printf '%s\n' "$requirements" | sha256sum | cut -c1-12)
venv="${UPLOAD_STATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-status}/$name-py$pyver-$key"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9  # two test workers asking at once: one creates it, the other waits and takes it
if [[ ! -f "$venv/.complete" ]]; then
    echo "cached-venv: creating $venv (once)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
    mapfile -t packages <<<"$requirements"
    "$venv/bin/pip" install --quiet "${packages[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
    touch "$venv/.complete"
fi
echo "$venv"
