#!/usr/bin/env bash
# The usage-report benchmark (issue 6): builds release binaries, builds a ledger with a month
# (October 2026) of reservations, jobs and BENCH_CALLS invocation records (default 10 million,
# about 2.5 minutes and 1.8 GB the first time; kept for the next run), times the report
# in-process, then starts berthd on that ledger and times GET /v1/usage over the socket.
#
#     Benchmarks/run-usage-bench.sh [--runs N] [--json]
#
# Environment: BENCH_LEDGER (default /tmp/berth-usage-bench/berth.db), BENCH_CALLS, SWIFT.
set -euo pipefail
cd "$(dirname "$0")/.."

swift=${SWIFT:-swift}
ledger=${BENCH_LEDGER:-/tmp/berth-usage-bench/berth.db}
calls=${BENCH_CALLS:-10000000}

for product in berthd berth berth-bench; do
    echo "building $product (release, scripts/release-build.sh)" >&2
    SWIFT="$swift" ./scripts/release-build.sh --product "$product" >&2
done
bin=$(SWIFT="$swift" ./scripts/release-build.sh --show-bin-path)

# 1. In-process: the ledger read and the computation, as berthd's handler does them.
"$bin/berth-bench" usage --ledger "$ledger" --calls "$calls" --config config/berthd.toml "$@"

# 2. Through berthd, on the same ledger: the shipped config with its socket in a temporary folder.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-usage-bench.XXXXXX")
export BERTH_SOCKET="$tmp/berthd.sock"
sed -e "s|^socket = .*|socket = \"$tmp/berthd.sock\"|" -e "s|^log_directory = .*|log_directory = \"$tmp/logs\"|" \
    config/berthd.toml >"$tmp/berthd.toml"
pid=
finish() {
    status=$?
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ "$status" -ne 0 ] && [ -f "$tmp/berthd.log" ] && tail -20 "$tmp/berthd.log" >&2
    rm -rf "$tmp"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM
started=$(date +%s.%N)
"$bin/berthd" --config "$tmp/berthd.toml" --socket "$BERTH_SOCKET" --database "$ledger" >"$tmp/berthd.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
    "$bin/berth" status >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "berthd did not start" >&2; exit 1; }
    sleep 0.05
done
echo "berthd answered $(echo "$(date +%s.%N) - $started" | bc) s after it was started on the $(du -h "$ledger" | cut -f1) ledger" >&2
"$bin/berth-bench" usage --ledger "$ledger" --socket "$BERTH_SOCKET" "$@"
