#!/usr/bin/env bash
# Builds the release binaries the GPU check carries (the Swift standard library and Foundation
# linked statically, stripped, with this machine's libsqlite3.so.0 beside them in case the GPU
# machine lacks it) into .build/gpu-check.tar.xz. berth-runner stays behind: the check's runner is
# a PyTorch script, and the three binaries together are over what the device machine takes.
set -euo pipefail
cd "$(dirname "$0")/../.."
for product in berthd berth; do
    ./scripts/release-build.sh --product "$product"
done
bin=$(./scripts/release-build.sh --show-bin-path)
stage=$(mktemp -d)
for product in berthd berth; do strip -o "$stage/$product" "$bin/$product"; done
cp -L "$(ldconfig -p | awk '/libsqlite3.so.0 / { print $NF; exit }')" "$stage/libsqlite3.so.0"
XZ_OPT=-9e tar -cJf .build/gpu-check.tar.xz -C "$stage" .
rm -rf "$stage"
ls -l .build/gpu-check.tar.xz
