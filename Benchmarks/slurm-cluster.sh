# A private single-node Slurm (Debian's slurm-wlm 22.05) for the benchmarks: munged with its
# own key and socket, slurmctld and slurmd on a minimal config under "$tmp", all plain
# background processes of the sourcing shell, stopped by PID. Sourced by run-cli-bench.sh and
# run-slurm-bench.sh, which set `tmp` (a folder of their own, mode 755) first.
#
#   slurm_start PARTITION [GPUS [LINE]]  starts it; GPUS > 0 puts that many GPUs in the node's
#                                  GRES over character devices made with mknod (major 195);
#                                  LINE is one more line of slurm.conf
#   slurm_stop                     cancels every job, then stops slurmd, slurmctld and munged
#   stop_pid PID                   TERM, up to 10 s, then KILL

munged_pid= ctld_pid= slurmd_pid=
mkdir -p "$tmp/munge" "$tmp/run" "$tmp/slurm/state" "$tmp/slurm/spool"
chmod 700 "$tmp/munge"
export SLURM_CONF=$tmp/slurm/slurm.conf
unset SLURM_JOB_ID SLURM_JOBID SLURM_CLUSTERS SQUEUE_FORMAT SQUEUE_FORMAT2 SINFO_FORMAT
host=$(hostname -s)

stop_pid() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

slurm_stop() {
    if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2>/dev/null; then
        # No job of this private cluster outlives it: a running one's slurmstepd would.
        timeout 10 scancel --user=root >/dev/null 2>&1 || true
        for _ in $(seq 100); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
    fi
    stop_pid "$slurmd_pid"
    stop_pid "$ctld_pid"
    stop_pid "$munged_pid"
}

slurm_start() {
    local partition=$1 gpus=${2:-0} extra=${3:-}
    dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$tmp/munge/munge.key"
    munged --foreground --socket="$tmp/run/munge.sock" --key-file="$tmp/munge/munge.key" \
        --pid-file="$tmp/run/munged.pid" --seed-file="$tmp/munge/munged.seed" --log-file="$tmp/munge/munged.log" \
        >>"$tmp/munge/munged.log" 2>&1 &
    munged_pid=$!
    for _ in $(seq 100); do [ -S "$tmp/run/munge.sock" ] && break; sleep 0.05; done
    [ -S "$tmp/run/munge.sock" ] || { echo "munged did not start" >&2; exit 1; }

    # Two free TCP ports for slurmctld and slurmd (6817/6818 unless a Slurm already has them).
    local port=6817 listening gres=
    if command -v ss >/dev/null 2>&1; then
        listening=$(ss -Hltn | awk '{ n = split($4, a, ":"); print a[n] }')
        while grep -qx -e "$port" -e "$((port + 1))" <<<"$listening"; do port=$((port + 2)); done
    fi
    if [ "$gpus" -gt 0 ]; then
        mkdir -p "$tmp/dev"
        for ((i = 0; i < gpus; i++)); do mknod "$tmp/dev/nvidia$i" c 195 "$i"; done
        gres=" Gres=gpu:$gpus"
        echo "NodeName=$host Name=gpu File=$tmp/dev/nvidia[0-$((gpus - 1))]" >"$tmp/slurm/gres.conf"
    fi
    cat >"$SLURM_CONF" <<EOF
ClusterName=berthbench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/run/munge.sock
StateSaveLocation=$tmp/slurm/state
SlurmdSpoolDir=$tmp/slurm/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/slurm/slurmctld.log
SlurmdLogFile=$tmp/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
$([ "$gpus" -gt 0 ] && echo "GresTypes=gpu")
$extra
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc)$gres State=UNKNOWN
PartitionName=$partition Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld -D -f "$SLURM_CONF" >>"$tmp/slurm/slurmctld.out" 2>&1 &
    ctld_pid=$!
    slurmd -D -f "$SLURM_CONF" >>"$tmp/slurm/slurmd.out" 2>&1 &
    slurmd_pid=$!
    local idle=
    for _ in $(seq 120); do
        kill -0 "$ctld_pid" 2>/dev/null || { echo "slurmctld exited" >&2; exit 1; }
        kill -0 "$slurmd_pid" 2>/dev/null || { echo "slurmd exited" >&2; exit 1; }
        [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ] && { idle=1; break; }
        sleep 0.5
    done
    [ -n "$idle" ] || { echo "sinfo never showed $host idle: $(sinfo -N 2>&1)" >&2; exit 1; }
}
