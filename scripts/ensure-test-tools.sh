#!/usr/bin/env bash
# Installs the Debian tools the test suite runs besides Python packages, when missing:
# faketime (a process whose wall clock is set back). Needs root and apt-get; otherwise the
# tests that need a tool are skipped, except under CI=true, where they fail.
set -euo pipefail
missing=()
command -v faketime >/dev/null || missing+=(faketime)
if [[ ${#missing[@]} -gt 0 ]]; then
    "$(dirname "$0")/install-debian.sh" "${missing[@]}"
fi
