#!/usr/bin/env bash
# The control-plane benchmarks (issue 8), end to end:
#   1. scheduling decisions with 1k, 10k and 100k queued jobs over 100 and 1,000 units (in-process);
#   2. berthd's start-up on a ledger of about a million rows (built once into BENCH_BIG_LEDGER,
#      default /tmp/berth-control-bench/big.db), timed until `berth status` answers, 3 times;
#   3. reservations made+released and jobs submitted per second over the socket with 1, 8 and
#      64 clients, against a throwaway berthd with 100 dedicated units;
#   4. berthd's peak RSS over that run (VmHWM).
#
#     Benchmarks/run-control-bench.sh            # SWIFT, BENCH_DURATION (default 5 s per run)
set -euo pipefail
cd "$(dirname "$0")/.."

swift=${SWIFT:-swift}
duration=${BENCH_DURATION:-5}
big=${BENCH_BIG_LEDGER:-/tmp/berth-control-bench/big.db}

for product in berthd berth berth-bench; do
    echo "building $product (release, scripts/release-build.sh)" >&2
    SWIFT="$swift" ./scripts/release-build.sh --product "$product" >&2
done
bin=$(SWIFT="$swift" ./scripts/release-build.sh --show-bin-path)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-control-bench.XXXXXX")
pid=
finish() {
    status=$?
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fi
    [ "$status" -ne 0 ] && [ -f "$tmp/berthd.log" ] && tail -20 "$tmp/berthd.log" >&2
    rm -rf "$tmp"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Starts berthd on $1 (config) and $2 (ledger) and waits until it answers; the seconds it took
# are left in $elapsed (not printed: a command substitution would run it in a subshell).
elapsed=
start_berthd() {
    local started
    started=$(date +%s.%N)
    "$bin/berthd" --config "$1" --socket "$tmp/berthd.sock" --database "$2" >"$tmp/berthd.log" 2>&1 &
    pid=$!
    for _ in $(seq 2000); do
        "$bin/berth" --socket "$tmp/berthd.sock" status >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { echo "berthd did not start" >&2; exit 1; }
        sleep 0.01
    done
    elapsed=$(echo "$(date +%s.%N) - $started" | bc)
}
stop_berthd() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

echo "== scheduling decisions (in-process)"
[ -n "${BENCH_SKIP_SCHEDULER:-}" ] || "$bin/berth-bench" scheduler --folder "$tmp/scheduler"

echo
echo "== start-up on a ledger of about a million rows"
if [ ! -f "$big" ]; then "$bin/berth-bench" big-ledger --ledger "$big" --rows 1000000; fi
sed -e "s|^socket = .*|socket = \"$tmp/berthd.sock\"|" -e "s|^log_directory = .*|log_directory = \"$tmp/logs\"|" \
    config/berthd.toml >"$tmp/shipped.toml"
rows=$(sqlite3 "$big" "SELECT (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM job_events) + (SELECT COUNT(*) FROM leases) + (SELECT COUNT(*) FROM reservations)" 2>/dev/null || echo "?")
for run in 1 2 3; do
    start_berthd "$tmp/shipped.toml" "$big"
    echo "run $run: berthd answered after $elapsed s ($rows rows, $(du -h "$big" | cut -f1))"
    stop_berthd
done

echo
echo "== control-plane throughput over the socket"
{
    printf '[daemon]\nsocket_group = "%s"\nadmins = []\nlog_level = "warning"\nlog_directory = "%s/logs"\nstop_grace_seconds = 2\n\n' "$(id -gn)" "$tmp"
    printf '[limits]\nmax_queued_jobs_per_user = 10000000\nmax_connections = 4096\n\n'
    for i in $(seq 0 99); do printf '[[units]]\nid = "u-%d"\nkind = "cpu"\npool = "dedicated"\n\n' "$i"; done
    cat Benchmarks/bench-model.toml
    cat <<'TOML'

[runners]
train = ["/bin/sleep", "3600"]
batch = ["/bin/sleep", "3600"]
serve = ["/bin/sleep", "3600"]
TOML
} >"$tmp/control.toml"
"$bin/berthd" check-config --config "$tmp/control.toml" >/dev/null
printf '{"prompt": "what does the ledger keep", "completion": "every lease and every call"}\n' >"$tmp/train.jsonl"
mkdir -p "$tmp/out"
start_berthd "$tmp/control.toml" "$tmp/control.db"
echo "berthd started in $elapsed s"
"$bin/berth-bench" control --socket "$tmp/berthd.sock" --data "$tmp/train.jsonl" --output "$tmp/out" --duration "$duration"
echo "berthd peak RSS: $(grep VmHWM "/proc/$pid/status" | awk '{print $2, $3}'), ledger $(du -h "$tmp/control.db" | cut -f1)"
stop_berthd
