#!/usr/bin/env bash
# Installs the Debian packages named, when running as root with apt-get (quietly; the package
# lists are refreshed only if the first attempt fails). Does nothing otherwise: the caller
# checks for what it needs afterwards.
set -euo pipefail
if [[ $# -eq 0 || $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    exit 0
fi
echo "install-debian: installing $*" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && \
         apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
