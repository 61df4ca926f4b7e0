#!/usr/bin/env bash
# The contract tests of dlt's private API and the Arrow contract against the newest dlt and
# urllib3 that pyproject.toml's bounds allow. Run by `make test`. When the resolver's newest are
# the versions installed from the lock (.venv), the main run has covered them and nothing runs;
# else (or with UPLOAD_STATUS_NEWEST_ALWAYS=1) a cached virtualenv pinned to what the resolver
# chose runs them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=.venv/bin/python
report=$(mktemp)
trap 'rm -f "$report"' EXIT
mapfile -t wanted < <("$python" scripts/requirements.py newest)
"$python" -m pip install --quiet --dry-run --ignore-installed --report "$report" "${wanted[@]}" \
    2> >(grep -v "is ignored: it is neither" >&2)
pins=$("$python" - "$report" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print("\n".join(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in report["install"]))
PY
)
installed=$("$python" -c 'from importlib.metadata import version as v
print(" ".join(f"{p}=={v(p)}" for p in ("dlt", "urllib3")))')
newest=$(grep -iE '^(dlt|urllib3)==' <<<"$pins" | tr 'A-Z' 'a-z' | sort | tr '\n' ' ' | sed 's/ $//')
if [[ "$newest" == "$installed" && -z "${UPLOAD_STATUS_NEWEST_ALWAYS:-}" ]]; then
    echo "newest bounds: $newest, as locked: covered by the main run"
    exit 0
fi
echo "newest bounds: $newest (locked: $installed)"
venv=$(grep -v '^upload-status==' <<<"$pins" | scripts/cached-venv.sh newest)
PYTHONPATH="$root" exec "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_dlt_contract.py tests/test_arrow_contract.py "$@"
