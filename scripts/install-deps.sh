#!/usr/bin/env bash
# Installs what berth needs to build and test on Debian or Ubuntu, and nothing that is already there.
set -euo pipefail

need=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)   # GRDB links the system SQLite
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)           # tests run the CLI as other users
command -v curl >/dev/null 2>&1 || need+=(curl)                     # the README's curl examples

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
