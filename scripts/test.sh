#!/usr/bin/env bash
# Install everything the test suite needs (system packages included) and run the whole suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    openssh-server sudo procps prometheus-alertmanager
    prometheus prometheus-node-exporter prometheus-pushgateway chromium
    sysstat iproute2 golang-go postgresql zsh fish
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "scripts/test.sh: need root to apt-get install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m pip install --quiet --disable-pip-version-check ".[test]"

ruff check checkrunner modules tests bench scripts

# Run from tests/ so the installed package (not the source tree) is what gets imported.
# Three workers, one test file each at a time (--dist loadfile: a file's module fixtures, its
# sshd and servers, stay in one worker): most tests wait on real servers, not on the CPU.
status=0
(cd tests && python3 -m pytest -p no:cacheprovider -n 3 --dist loadfile "$@") || status=$?
if [[ $status -eq 5 ]]; then
    echo "scripts/test.sh: pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit $status
