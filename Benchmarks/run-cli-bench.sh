#!/usr/bin/env bash
# berth's command line against a real single-node Slurm (Debian's slurm-wlm 22.05), side by side,
# on the same machine in the same run. Each row does the same work with both and prints a ratio
# that is above 1 when berth is faster:
#
#   1. 1,000 job submissions, one CLI call after another: `sbatch` vs `berth submit`, jobs/s;
#   2. a reservation made and deleted, CLI: `scontrol create|delete reservation` vs
#      `berth reserve|release`, ms per call;
#   3. listing those 1,000 queued jobs: `squeue` vs `berth jobs --all` (and the default
#      `berth jobs`), median ms; and the default `berth jobs` of a second berthd whose ledger
#      holds 100,000 finished jobs (built by `berth-bench big-ledger`);
#   4. 20 trivial jobs on one unit, from the first submit to the last one done, seconds;
#   5. a CLI's start-up: `berth status` vs `squeue --version` (process start only) and vs `sinfo`
#      (start plus one round trip to its daemon), median ms of 200 runs; also `berth status`
#      with no daemon to answer, its start-up alone.
#
# It installs what it lacks (munge, slurmctld, slurmd, slurm-client, hyperfine; apt-get), builds
# berth's release binaries if they are missing or older than the sources, and starts munged,
# slurmctld, slurmd and berthd as plain background processes on a temporary folder (no systemd,
# no accounting database), all stopped by PID when it ends. It runs as root, as slurmd must;
# berthd runs as root too, as it does in production. About two and a half minutes, plus a build.
#
#     Benchmarks/run-cli-bench.sh
#
# Environment: BENCH_JOBS (default 1000), BENCH_TRIVIAL (20), BENCH_RESERVATIONS (create/delete
# pairs, 100), BENCH_STARTUP_RUNS (200), BENCH_LIST_RUNS (20), BENCH_LEDGER_JOBS (100000),
# BENCH_KEEP=1 keeps the temporary folder (configs, ledgers, logs; otherwise it is removed, even
# after a failure, once the last lines of each log are shown), SWIFT (default swift, else
# /opt/swift/usr/bin/swift).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C   # "." in $EPOCHREALTIME and in awk's numbers
export PATH="$PATH:/usr/sbin:/sbin"

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "slurmd needs root: run this as root" >&2; exit 1; }
    echo "slurmd needs root: running again under sudo" >&2
    exec sudo -E env "PATH=$PATH" bash "$0" "$@"
fi

jobs_n=${BENCH_JOBS:-1000}
trivial_n=${BENCH_TRIVIAL:-20}
reservations_n=${BENCH_RESERVATIONS:-100}
startup_runs=${BENCH_STARTUP_RUNS:-200}
list_runs=${BENCH_LIST_RUNS:-20}
ledger_jobs=${BENCH_LEDGER_JOBS:-100000}
model=amazon.nova-micro-v1:0   # one compute unit per model unit in the config below
data=$PWD/examples/fine-tuning.jsonl

# 1. What Slurm and the measuring need, from Debian's packages.
need=()
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
command -v python3 >/dev/null 2>&1 || need+=(python3)   # reads berth jobs --json
if ((${#need[@]})); then
    echo "installing: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${need[@]}" >&2
fi

# 2. berth's release binaries as `make install` builds them (scripts/release-build.sh): the Swift
#    runtime linked in, and `berth` a fully static executable.
swift=${SWIFT:-swift}
if ! command -v "$swift" >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then swift=/opt/swift/usr/bin/swift; fi
bin=$PWD/.build/release
for product in berthd berth berth-bench; do
    if [ ! -x "$bin/$product" ] || [ -n "$(find Sources Package.swift Package.resolved scripts/release-build.sh -newer "$bin/$product" -print -quit)" ]; then
        echo "building $product (scripts/release-build.sh)" >&2
        SWIFT="$swift" ./scripts/release-build.sh --product "$product" >&2
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-cli-bench.XXXXXX")
chmod 755 "$tmp"   # munged wants its socket's folders searchable by all
mkdir -p "$tmp/slurm/work" "$tmp/logs" "$tmp/out"
source Benchmarks/slurm-cluster.sh
export BERTH_SOCKET=$tmp/berthd.sock
berthd_pid= big_pid=
finish() {
    status=$?
    trap - EXIT INT TERM
    stop_pid "$berthd_pid"
    stop_pid "$big_pid"
    slurm_stop
    if [ "$status" -ne 0 ]; then
        for log in berthd.log slurm/slurmctld.log slurm/slurmd.log munge/munged.log; do
            [ -s "$tmp/$log" ] && { echo "--- $log" >&2; tail -15 "$tmp/$log" >&2; }
        done
    fi
    if [ "${BENCH_KEEP:-}" = 1 ]; then
        echo "kept $tmp (configs, ledger, logs)" >&2
    else
        rm -rf "$tmp"
        [ "$status" -ne 0 ] && echo "(BENCH_KEEP=1 keeps the temporary folder with every log)" >&2
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Arithmetic on decimals: calc EXPRESSION [DIGITS].
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
# How many jobs of `berth jobs --json` on stdin are on reservation $1 with status $2.
count_jobs() {
    python3 -c 'import json, sys; print(sum(1 for j in json.load(sys.stdin)["jobs"] if j["reservation"] == sys.argv[1] and j["status"] == sys.argv[2]))' "$@"
}
# The rows of a listing on stdin that start with a job id (not its header or a footer).
count_rows() { grep -c '^ *[0-9]' || true; }
# The median of hyperfine's runs in ms, from its JSON export.
median_ms() { awk -F: '/"median"/ { gsub(/[ ,]/, "", $2); printf "%.2f", $2 * 1000; exit }' "$1"; }

# 3. Slurm: munged with its own key and socket, then slurmctld and slurmd on a minimal config.
slurm_start bench
slurm_version=$(sinfo --version)

# 4. berthd: a temporary config with four dedicated units, one model, and /bin/true for every
#    runner, so a job that starts is done at once; a high queued-jobs limit.
{
    printf '[daemon]\nsocket_group = "%s"\nadmins = []\nlog_level = "warning"\nlog_directory = "%s/logs"\nstop_grace_seconds = 2\n\n' "$(id -gn)" "$tmp"
    printf '[limits]\nmax_queued_jobs_per_user = 1000000\n\n'
    for i in 0 1 2 3; do printf '[[units]]\nid = "u-%d"\nkind = "cpu"\ndevice = %d\npool = "dedicated"\n\n' "$i" "$i"; done
    cat Benchmarks/bench-model.toml
    cat <<'TOML'

[runners]
train = ["/bin/true"]
batch = ["/bin/true"]
serve = ["/bin/true"]
TOML
} >"$tmp/berthd.toml"
"$bin/berthd" check-config --config "$tmp/berthd.toml" >/dev/null
"$bin/berthd" --config "$tmp/berthd.toml" --socket "$BERTH_SOCKET" --database "$tmp/berth.db" >"$tmp/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 600); do
    "$bin/berth" status >/dev/null 2>&1 && break
    kill -0 "$berthd_pid" 2>/dev/null || { echo "berthd did not start" >&2; exit 1; }
    sleep 0.05
done
berth_version=$("$bin/berth" status --json | sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p')
berth=$bin/berth

echo "$(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) cores, $(uname -sr)  $slurm_version  berth $berth_version" >&2

# 5. Start-up: each CLI run on its own, no shell between (hyperfine -N).
echo "== start-up: $startup_runs runs each" >&2
hf() {
    local out=$1
    shift
    hyperfine -N --style none --warmup 10 --export-json "$tmp/$out.json" "$@" >"$tmp/$out.txt" 2>&1 ||
        { cat "$tmp/$out.txt" >&2; return 1; }
}
hf squeue-version --runs "$startup_runs" "squeue --version"
hf sinfo --runs "$startup_runs" "sinfo"
hf berth-status --runs "$startup_runs" "$berth status"
# berth's start-up alone: the same command against a socket that does not exist (it fails at
# once, without a daemon to answer).
hf berth-nosocket --runs "$startup_runs" -i "$berth status --socket $tmp/no-such.sock"
startup_squeue=$(median_ms "$tmp/squeue-version.json")
startup_sinfo=$(median_ms "$tmp/sinfo.json")
startup_berth=$(median_ms "$tmp/berth-status.json")
startup_berth_alone=$(median_ms "$tmp/berth-nosocket.json")

# 6. Reservations made and deleted, one CLI call at a time: Slurm reserves its one node now for
#    10 minutes, berth one dedicated unit now for 10 minutes.
echo "== reservations: $reservations_n made and deleted on each" >&2
s_create=0 s_delete=0 b_create=0 b_delete=0
for i in $(seq "$reservations_n"); do
    t0=$EPOCHREALTIME
    scontrol create reservation ReservationName="r$i" StartTime=now Duration=10 Users=root NodeCnt=1 >/dev/null
    t1=$EPOCHREALTIME
    scontrol delete reservation "r$i" >/dev/null
    t2=$EPOCHREALTIME
    s_create=$(calc "$s_create + $t1 - $t0" 6) s_delete=$(calc "$s_delete + $t2 - $t1" 6)
done
for i in $(seq "$reservations_n"); do
    t0=$EPOCHREALTIME
    "$berth" reserve "r-$i" --model "$model" --units 1 --purpose training --duration 10m >/dev/null
    t1=$EPOCHREALTIME
    "$berth" release "r-$i" >/dev/null
    t2=$EPOCHREALTIME
    b_create=$(calc "$b_create + $t1 - $t0" 6) b_delete=$(calc "$b_delete + $t2 - $t1" 6)
done
s_create=$(calc "$s_create * 1000 / $reservations_n" 2) s_delete=$(calc "$s_delete * 1000 / $reservations_n" 2)
b_create=$(calc "$b_create * 1000 / $reservations_n" 2) b_delete=$(calc "$b_delete * 1000 / $reservations_n" 2)

# 7. Submissions, one CLI call after another, that stay queued on both sides: each queues behind
#    a reservation that starts in an hour. Slurm: `sbatch --wrap true` into a reservation of
#    its node from now+1h (the job pends with reason Reservation). berth: a fine-tuning job on
#    examples/fine-tuning.jsonl (100 records, which berthd reads and checks at every submit)
#    into a 1-unit training reservation that starts at +1h (the job stays queued).
echo "== submissions: $jobs_n on each" >&2
scontrol create reservation ReservationName=queue StartTime=now+1hour Duration=60 Users=root Nodes=ALL >/dev/null
"$berth" reserve queue --model "$model" --units 1 --purpose training --start +1h --duration 1h >/dev/null
t0=$EPOCHREALTIME
for i in $(seq "$jobs_n"); do
    sbatch --reservation=queue --chdir="$tmp/slurm/work" --job-name=bench --wrap true >/dev/null
done
t1=$EPOCHREALTIME
for i in $(seq "$jobs_n"); do
    "$berth" submit bench --reservation queue --kind fine-tuning --data "$data" --output "$tmp/out" --model-name "q-$i" >/dev/null
done
t2=$EPOCHREALTIME
submit_slurm=$(calc "$jobs_n / ($t1 - $t0)")
submit_berth=$(calc "$jobs_n / ($t2 - $t1)")
queued_slurm=$(squeue -h -t PD -o %i | wc -l)

# 8. Listing them. `berth jobs --all` lists every job; plain `berth jobs` shows the newest 100.
#    Before --limit/--all exist, --all is refused as an unknown option and plain `berth jobs`,
#    which then lists everything, stands in for it.
echo "== listing $jobs_n queued jobs" >&2
all_note= all=(--all)
if ! "$berth" jobs --all >/dev/null 2>"$tmp/all.err"; then
    if grep -qi 'unknown option' "$tmp/all.err"; then
        all_note="(no --all yet: plain 'berth jobs')" all=()
    else
        echo "berth jobs --all failed: $(cat "$tmp/all.err")" >&2
        exit 1
    fi
fi
queued_berth=$("$berth" jobs ${all[@]+"${all[@]}"} --json | count_jobs queue queued)
hf squeue --runs "$list_runs" "squeue"
if [ -z "$all_note" ]; then
    hf berth-jobs-all --runs "$list_runs" "$berth jobs --all"
    hf berth-jobs --runs "$list_runs" "$berth jobs"
else
    hf berth-jobs-all --runs "$list_runs" "$berth jobs"
fi
list_squeue=$(median_ms "$tmp/squeue.json")
list_berth_all=$(median_ms "$tmp/berth-jobs-all.json")
rows_squeue=$(squeue | count_rows)
if [ -z "$all_note" ]; then
    rows_berth_all=$("$berth" jobs --all | count_rows)
    list_berth=$(median_ms "$tmp/berth-jobs.json")
    rows_berth=$("$berth" jobs | count_rows)
else
    rows_berth_all=$("$berth" jobs | count_rows)
fi

# 8b. The default listing over a long history: a second berthd on a ledger of $ledger_jobs
#     finished jobs (`berth-bench big-ledger`, every one visible to root), where `berth jobs`
#     shows the newest 100 and counts the rest. Set beside the same squeue as above.
echo "== the default listing over $ledger_jobs jobs in the ledger" >&2
"$bin/berth-bench" big-ledger --ledger "$tmp/big.db" --config "$tmp/berthd.toml" --rows $((ledger_jobs * 4)) 2>/dev/null
"$bin/berthd" --config "$tmp/berthd.toml" --socket "$tmp/big.sock" --database "$tmp/big.db" >"$tmp/big.log" 2>&1 &
big_pid=$!
for _ in $(seq 600); do
    "$berth" status --socket "$tmp/big.sock" >/dev/null 2>&1 && break
    kill -0 "$big_pid" 2>/dev/null || { echo "berthd on the big ledger did not start" >&2; exit 1; }
    sleep 0.05
done
hf berth-jobs-big --runs "$list_runs" "$berth jobs --socket $tmp/big.sock"
list_berth_big=$(median_ms "$tmp/berth-jobs-big.json")
more_berth_big=$("$berth" jobs --socket "$tmp/big.sock" | sed -n 's/^… \([0-9]*\) more.*/\1/p')
stop_pid "$big_pid"
big_pid=

# Both sides drop their queue before the next row, so no scheduler has 1,000 jobs to look at.
scancel --state=PENDING --user=root
scontrol delete reservation queue
"$berth" release queue >/dev/null

# 9. 20 trivial jobs on one unit, one after another, from the first submit to the last done,
#    both polled every 50 ms. Slurm: `sbatch --exclusive -n1 --wrap true` (the node takes one
#    at a time), done when squeue is empty; run twice, with Slurm's default scheduling and then
#    with SchedulerParameters=batch_sched_delay=0 (by default slurmctld may hold a batch job's
#    scheduling for 3 s; without that delay, slurmctld's one-second background loop still starts
#    about one job a second). berth: a 1-unit training reservation whose runner is /bin/true,
#    done when its last job is completed (they run in order).
echo "== $trivial_n trivial jobs on one unit" >&2
slurm_trivial() {
    local t0
    for _ in $(seq 100); do [ -z "$(squeue -h -o %i)" ] && break; sleep 0.1; done
    t0=$EPOCHREALTIME
    for _ in $(seq "$trivial_n"); do
        sbatch --exclusive -n1 --chdir="$tmp/slurm/work" --job-name=trivial --wrap true >/dev/null
    done
    while [ -n "$(squeue -h -o %i)" ]; do sleep 0.05; done
    calc "$EPOCHREALTIME - $t0" 2
}
trivial_slurm=$(slurm_trivial)
echo "SchedulerParameters=batch_sched_delay=0" >>"$SLURM_CONF"
scontrol reconfigure >/dev/null
for _ in $(seq 100); do scontrol show config | grep -q 'batch_sched_delay=0' && break; sleep 0.1; done
trivial_slurm_tuned=$(slurm_trivial)

"$berth" reserve trivial --model "$model" --units 1 --purpose training --duration 1h >/dev/null
t0=$EPOCHREALTIME
last=
for i in $(seq "$trivial_n"); do
    last=$("$berth" submit trivial --reservation trivial --kind fine-tuning --data "$data" --output "$tmp/out" --model-name "t-$i" |
        sed -n 's/^submitted job \([0-9]*\).*/\1/p')
done
state=
for _ in $(seq 6000); do
    state=$("$berth" jobs "$last" --json | sed -n 's/.*"status" *: *"\([a-z]*\)".*/\1/p' | head -1)
    case $state in completed | failed | stopped) break ;; esac
    sleep 0.05
done
trivial_berth=$(calc "$EPOCHREALTIME - $t0" 2)
completed_berth=$("$berth" jobs ${all[@]+"${all[@]}"} --json | count_jobs trivial completed)
[ "$state" = completed ] || echo "warning: berth's last trivial job ended ${state:-nowhere}" >&2

# 10. The table: each row's figures and their ratio, above 1 when berth is faster.
ratio_rate() { calc "$2 / $1" 2; }   # berth ÷ Slurm, for rates
ratio_time() { calc "$1 / $2" 2; }   # Slurm ÷ berth, for times
row() { printf '%-44s %14s %14s %8s\n' "$@"; }
echo
echo "berth vs Slurm, CLI: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr)"
echo "$slurm_version (Debian, single node, no accounting); berth $berth_version (release; berth a static executable)"
echo "ratio: berth ÷ Slurm for rates, Slurm ÷ berth for times; above 1 means berth is faster"
echo
row "" "Slurm" "berth" "ratio"
row "submit $jobs_n jobs, one call after another (jobs/s)" "$submit_slurm" "$submit_berth" "$(ratio_rate "$submit_slurm" "$submit_berth")"
row "reservation create (ms per call)" "$s_create" "$b_create" "$(ratio_time "$s_create" "$b_create")"
row "reservation delete (ms per call)" "$s_delete" "$b_delete" "$(ratio_time "$s_delete" "$b_delete")"
row "list queued jobs, median (ms)" "$list_squeue" "$list_berth_all" "$(ratio_time "$list_squeue" "$list_berth_all")"
row "  rows listed: squeue / berth jobs --all" "$rows_squeue" "$rows_berth_all" ""
if [ -z "$all_note" ]; then
    row "  plain berth jobs (newest $rows_berth), median (ms)" "$list_squeue" "$list_berth" "$(ratio_time "$list_squeue" "$list_berth")"
else
    echo "  $all_note"
fi
row "  plain berth jobs, $ledger_jobs in the ledger (ms)" "$list_squeue" "$list_berth_big" "$(ratio_time "$list_squeue" "$list_berth_big")"
row "    of them shown / counted as more" "" "$((ledger_jobs - more_berth_big)) / $more_berth_big" ""
row "$trivial_n trivial jobs on one unit, submit to done (s)" "$trivial_slurm" "$trivial_berth" "$(ratio_time "$trivial_slurm" "$trivial_berth")"
row "  the same, Slurm with batch_sched_delay=0 (s)" "$trivial_slurm_tuned" "$trivial_berth" "$(ratio_time "$trivial_slurm_tuned" "$trivial_berth")"
row "start-up: berth status vs squeue --version (ms)" "$startup_squeue" "$startup_berth" "$(ratio_time "$startup_squeue" "$startup_berth")"
row "  berth status with no daemon (start-up only)" "$startup_squeue" "$startup_berth_alone" "$(ratio_time "$startup_squeue" "$startup_berth_alone")"
row "start-up + round trip: vs sinfo (ms)" "$startup_sinfo" "$startup_berth" "$(ratio_time "$startup_sinfo" "$startup_berth")"
echo
echo "queued after the submissions: Slurm $queued_slurm, berth $queued_berth; berth's trivial jobs completed: $completed_berth of $trivial_n"
