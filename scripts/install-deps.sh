#!/usr/bin/env bash
# Installs what berth needs to build and test on Debian or Ubuntu, and nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)   # GRDB links the system SQLite
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)           # tests run the CLI as other users
command -v curl >/dev/null 2>&1 || need+=(curl)                     # the manual's curl examples; tests call as other users
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)  # the OpenAPI validator's packages
# A private single-node Slurm for the Slurm executor's tests (Tests/SlurmTests).
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)

if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${need[@]}"
fi

if ! command -v swift >/dev/null 2>&1; then
    for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        [ -x "$candidate/swift" ] && { echo "swift is at $candidate: add it to PATH"; exit 1; }
    done
    echo "swift 6.x is needed: install it from https://www.swift.org/install/linux/ and add it to PATH" >&2
    exit 1
fi

# Python packages the tests use (Tests/requirements.txt, pinned), in a virtual environment under
# .build so the system's Python stays as it is. Installed again only when the list changes.
venv=.build/venv
if ! [ -x "$venv/bin/python3" ] || ! cmp -s Tests/requirements.txt "$venv/requirements.txt"; then
    echo "installing the tests' Python packages into $venv"
    python3 -m venv --clear "$venv"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check --no-input -r Tests/requirements.txt
    cp Tests/requirements.txt "$venv/requirements.txt"
fi
