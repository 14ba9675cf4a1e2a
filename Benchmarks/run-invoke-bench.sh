#!/usr/bin/env bash
# The invocation benchmark (issue 5), end to end: builds release binaries, starts a throwaway
# berthd whose model never throttles, reserves an inference reservation, and runs berth-bench
# through berthd and straight to the reservation's serve process. Prints the figures and stops
# berthd. Arguments go to berth-bench, e.g.:
#
#     Benchmarks/run-invoke-bench.sh --clients 64 --duration 20
#
# Environment: BENCH_MODEL (default amazon.nova-micro-v1:0, one unit per model unit),
# BENCH_RESERVATION (default bench), BENCH_KEEP=1 keeps the temporary folder (config, ledger,
# berthd's log), SWIFT (default swift).
set -euo pipefail
cd "$(dirname "$0")/.."

swift=${SWIFT:-swift}
model=${BENCH_MODEL:-amazon.nova-micro-v1:0}
name=${BENCH_RESERVATION:-bench}

# 1. Release binaries, one product per command.
for product in berthd berth berth-runner berth-bench; do
    echo "building $product (release, scripts/release-build.sh)" >&2
    if ! SWIFT="$swift" ./scripts/release-build.sh --product "$product" >&2; then
        [ "$product" = berth-bench ] && echo "is the berth-bench target in Package.swift? (Benchmarks/berth-bench)" >&2
        exit 1
    fi
done
bin=$(SWIFT="$swift" ./scripts/release-build.sh --show-bin-path)
# runners.serve names berth-runner: the release one, not whatever else is on PATH.
export PATH="$bin:$PATH"

# 2. A temporary config: the shipped one with its socket, ledger and logs in a temporary folder,
#    the model's tokens_per_minute so high that the token bucket never throttles a call, and no
#    `cpu_share` on the units: with the shipped quarter of a core (a CPU quota where berthd can
#    make cgroups, as root), the serve process would stall most of each 100 ms period and the
#    figures would measure the quota, not what berthd adds.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
export BERTH_SOCKET="$tmp/berthd.sock"
awk -v model="$model" -v tmp="$tmp" '
    /^\[/ { in_model = 0 }
    /^\[\[models\]\]/ { in_models = 1 }
    in_models && $0 == "id = \"" model "\"" { in_model = 1; found = 1 }
    /^socket = / { $0 = "socket = \"" tmp "/berthd.sock\"" }
    /^database = / { $0 = "database = \"" tmp "/berth.db\"" }
    /^log_directory = / { $0 = "log_directory = \"" tmp "/logs\"" }
    in_model && /^tokens_per_minute = / { $0 = "tokens_per_minute = 1000000000"; raised = 1 }
    /^cpu_share = / { next }
    { print }
    END { if (!found || !raised) { print "no tokens_per_minute for model " model " in config/berthd.toml" > "/dev/stderr"; exit 1 } }
' config/berthd.toml >"$tmp/berthd.toml"
"$bin/berthd" check-config --config "$tmp/berthd.toml" >&2

pid=
finish() {
    status=$?
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] || [ "${BENCH_KEEP:-}" = 1 ]; then
        echo "kept $tmp (config, ledger, berthd.log)" >&2
        [ "$status" -ne 0 ] && [ -f "$tmp/berthd.log" ] && tail -20 "$tmp/berthd.log" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

"$bin/berthd" --config "$tmp/berthd.toml" --socket "$BERTH_SOCKET" --database "$tmp/berth.db" >"$tmp/berthd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    "$bin/berth" status >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "berthd did not start" >&2; exit 1; }
    sleep 0.1
done

# 3. The reservation, and the first call that works: its serve process is up.
"$bin/berth" reserve "$name" --model "$model" --units 1 --purpose inference >&2
ready=
for _ in $(seq 600); do
    if "$bin/berth" invoke "$name" --prompt "hello" --max-tokens 1 >/dev/null 2>"$tmp/invoke.err"; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "no call through '$name' worked within 60 s; the last answer: $(cat "$tmp/invoke.err")" >&2
    "$bin/berth" reservations "$name" >&2 || true
    exit 1
fi

# 4. The serve process's port: berthd shows it as serve_port; failing that, its log says
#    "port=NNNN serve=reservation-N … serve process ready" (on-demand ones are left out).
port=$("$bin/berth" reservations "$name" --json | sed -n 's/.*"serve_port" *: *\([0-9][0-9]*\).*/\1/p' | head -1)
if [ -z "$port" ]; then
    ready_lines=$(grep 'serve process ready' "$tmp/berthd.log" | grep -v 'on-demand' || true)
    port=$( (printf '%s\n' "$ready_lines" | grep -F "$name" || printf '%s\n' "$ready_lines") |
        sed -n 's/.*port="\{0,1\}\([0-9][0-9]*\).*/\1/p' | tail -1)
fi
direct=()
if [ -n "$port" ]; then
    direct=(--direct-port "$port")
    # Its token, which berthd sends with every call and berth-runner serve wants: from the
    # environment of the serve process of this bench's ledger.
    for environ in /proc/[0-9]*/environ; do
        vars=$({ tr '\0' '\n' <"$environ"; } 2>/dev/null) || continue
        grep -qx "BERTH_LEDGER=$tmp/berth.db" <<<"$vars" || continue
        grep -q '^BERTH_SERVE=reservation-' <<<"$vars" || continue
        token=$(sed -n 's/^BERTH_SERVE_TOKEN=//p' <<<"$vars")
        [ -n "$token" ] && direct+=(--direct-token "$token")
        break
    done
else
    echo "cannot find the serve process's port: measuring through berthd only" >&2
fi

# 5. The figures.
echo "machine: $(nproc) cores, $(uname -sr); berthd $("$bin/berth" status --json | sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p')" >&2
"$bin/berth-bench" --socket "$BERTH_SOCKET" --reservation "$name" ${direct[@]+"${direct[@]}"} "$@"
