#!/usr/bin/env bash
# Turnaround of a trivial job on a real single-node Slurm (Debian's slurm-wlm 22.05): submitted
# through berth (a Slurm reservation's job, `berth submit` to `completed`) next to Slurm's own
# (`sbatch` to COMPLETED), one job after another, on the same machine in the same run. Both
# run /bin/true on one GPU of the node's GRES (character devices made with mknod, no driver),
# so the figures are the overhead of getting a job started, followed and recorded.
#
# It installs what it lacks (munge, slurmctld, slurmd, slurm-client; apt-get), builds berth
# (debug, as the tests do, unless BERTH_BIN names a folder with berthd and berth), starts
# munged, slurmctld, slurmd and berthd as background processes on a temporary folder, and stops
# them by PID. It runs as root, as slurmd must. Under a minute plus a build.
#
#     Benchmarks/run-slurm-bench.sh
#
# Environment: BENCH_JOBS (jobs each way, default 10), BENCH_KEEP=1 keeps the temporary folder,
# SWIFT (default swift, else /opt/swift/usr/bin/swift), BERTH_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
export PATH="$PATH:/usr/sbin:/sbin"
[ "$(id -u)" -eq 0 ] || { echo "slurmd needs root: run this as root" >&2; exit 1; }
jobs_n=${BENCH_JOBS:-10}

need=()
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
    echo "installing: ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

swift=${SWIFT:-swift}
if ! command -v "$swift" >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then swift=/opt/swift/usr/bin/swift; fi
if [ -n "${BERTH_BIN:-}" ]; then
    bin=$BERTH_BIN
else
    "$swift" build --product berthd >&2
    "$swift" build --product berth >&2
    bin=$("$swift" build --show-bin-path)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-slurm-bench.XXXXXX")
chmod 755 "$tmp"
mkdir -p "$tmp/shared" "$tmp/logs" "$tmp/out"
source Benchmarks/slurm-cluster.sh
export BERTH_SOCKET=$tmp/berthd.sock
berthd_pid=
finish() {
    status=$?
    trap - EXIT INT TERM
    stop_pid "$berthd_pid"
    slurm_stop
    if [ "$status" -ne 0 ]; then
        for log in berthd.log slurm/slurmctld.log slurm/slurmd.log; do
            [ -s "$tmp/$log" ] && { echo "--- $log" >&2; tail -15 "$tmp/$log" >&2; }
        done
    fi
    if [ "${BENCH_KEEP:-}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# 1. Slurm: munged, slurmctld and slurmd, with four GPUs in the node's GRES.
slurm_start bench 4 "SchedulerParameters=batch_sched_delay=0"

# 2. berthd on the node's four GPUs, every runner /bin/true.
{
    printf '[daemon]\nsocket_group = "%s"\nadmins = []\nlog_level = "info"\nlog_directory = "%s/logs"\nstop_grace_seconds = 2\n\n' "$(id -gn)" "$tmp"
    for i in 0 1 2 3; do
        printf '[[units]]\nid = "gpu-%d"\nkind = "gpu"\ndevice = %d\npool = "dedicated"\nexecutor = "slurm"\nnode = "%s"\n\n' "$i" "$i" "$host"
    done
    printf '[executors.slurm]\npartition = "bench"\nshared_folder = "%s/shared"\npoll_seconds = 0.2\n\n' "$tmp"
    cat Benchmarks/bench-model.toml
    cat <<'TOML'

[runners]
train = ["/bin/true"]
batch = ["/bin/true"]
serve = ["/bin/true"]
TOML
} >"$tmp/berthd.toml"
"$bin/berthd" --config "$tmp/berthd.toml" --socket "$BERTH_SOCKET" --database "$tmp/berth.db" >"$tmp/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 600); do
    "$bin/berth" status >/dev/null 2>&1 && break
    kill -0 "$berthd_pid" 2>/dev/null || { echo "berthd did not start" >&2; exit 1; }
    sleep 0.05
done
"$bin/berth" reserve bench --model amazon.nova-micro-v1:0 --units 1 --purpose training --duration 1h >/dev/null
reservation=$(scontrol show reservation --oneliner | sed -n 's/^ReservationName=\([^ ]*\).*/\1/p' | head -1)
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) cores  $(sinfo --version)  reservation $reservation" >&2

# 3. sbatch alone: into the same Slurm reservation, one GPU, polled every 50 ms until COMPLETED.
: >"$tmp/slurm.times"
for _ in $(seq "$jobs_n"); do
    t0=$EPOCHREALTIME
    id=$(sbatch --parsable --no-requeue --reservation="$reservation" --gres=gpu:1 --output=/dev/null --chdir="$tmp" --wrap /bin/true)
    until [ "$(squeue -h -t all -j "$id" -o %T 2>/dev/null)" = COMPLETED ]; do sleep 0.05; done
    calc "$EPOCHREALTIME - $t0" >>"$tmp/slurm.times"
    echo >>"$tmp/slurm.times"
done

# 4. Through berth: submit (dataset checked), sbatch, follow, record; polled every 50 ms.
: >"$tmp/berth.times"
for i in $(seq "$jobs_n"); do
    t0=$EPOCHREALTIME
    id=$("$bin/berth" submit "b$i" --reservation bench --kind fine-tuning --data "$PWD/examples/fine-tuning.jsonl" \
        --output "$tmp/out/b$i" --model-name "bench-$i" | awk '{ print $3 }')
    until "$bin/berth" jobs "$id" --json | grep -q '"status" *: *"completed"'; do sleep 0.05; done
    calc "$EPOCHREALTIME - $t0" >>"$tmp/berth.times"
    echo >>"$tmp/berth.times"
done

slurm_median=$(median <"$tmp/slurm.times")
berth_median=$(median <"$tmp/berth.times")
printf '%-44s %10s\n' "turnaround of one trivial job, median of $jobs_n" "seconds"
printf '%-44s %10s\n' "sbatch alone (submit to COMPLETED)" "$slurm_median"
printf '%-44s %10s\n' "berth submit (submit to completed)" "$berth_median"
printf '%-44s %10s\n' "berth's overhead" "$(calc "$berth_median - $slurm_median")"
