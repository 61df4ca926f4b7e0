#!/usr/bin/env bash
# Installs the Debian tools the test suite runs besides Python packages, when missing:
# faketime (a process whose wall clock is set back). Needs root and apt-get; otherwise the
# tests that need a tool are skipped, except under CI=true, where they fail.
set -euo pipefail
missing=()
command -v faketime >/dev/null || missing+=(faketime)
if [[ ${#missing[@]} -gt 0 && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "ensure-test-tools: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && \
             apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi
