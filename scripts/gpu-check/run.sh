#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU, the driver and PyTorch, but no Swift and no
# network: release binaries built elsewhere by pack.sh (.build/gpu-check.tar.xz), `berthd
# discover-units` against the real nvidia-smi, berthd started as root on the discovered GPUs, and a
# job whose runner (see_gpu.py) prints what CUDA shows it and keeps its GPU busy. Everything it
# sees goes to $OUT (check.log, berthd.log, the job's log, /metrics samples, a summary).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
W=/tmp/berth-gpu-check
rm -rf "$W"
mkdir -p "$W/bin" "$W/dev" "$W/logs"
exec > >(tee "$OUT/check.log") 2>&1
step() { echo; echo "=== $*"; }
fail=0
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; fail=1; fi; }

tar -xJf .build/gpu-check.tar.xz -C "$W/bin"
ldconfig -p | grep -q 'libsqlite3.so.0 ' || export LD_LIBRARY_PATH="$W/bin"
export PATH="$W/bin:$PATH" BERTH_SOCKET="$W/berthd.sock"

step machine
uname -r; id; nproc; stat -fc 'cgroup fs: %T' /sys/fs/cgroup; head -3 /proc/self/cgroup
nvidia-smi -L
nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits | tee "$OUT/query-gpu.csv"
ldconfig -p | grep -m1 libnvidia-ml || echo "no libnvidia-ml in ldconfig"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
berthd --version; ldd "$W/bin/berthd" | sed 's/^/  /'

# The runner's Python (CHECK_PYTHON: a wrapper, to dry-run this with a stand-in for PyTorch).
python=${CHECK_PYTHON:-$(command -v python3)}

step "berthd discover-units --gpus nvidia"
berthd discover-units --gpus nvidia | tee "$W/units.toml"
check "discover-units found the GPU" "grep -q 'kind = \"h200\"' '$W/units.toml' || grep -q '^kind = ' '$W/units.toml'"
uuid=$(sed -n 's/^uuid = "\(.*\)"/\1/p' "$W/units.toml" | head -1)
unit=$(sed -n 's/^id = "\(.*\)"/\1/p' "$W/units.toml" | head -1)
echo "first unit $unit uuid $uuid"

# A node for a GPU the job does not hold: the cgroup must refuse to open it.
mknod "$W/dev/nvidia7" c 195 7 && echo "made $W/dev/nvidia7 (195:7)"

cat > "$W/berthd.toml" <<TOML
[daemon]
socket = "$W/berthd.sock"
database = "$W/berth.db"
admins = ["root"]
log_level = "info"
log_directory = "$W/logs"
stop_grace_seconds = 5

[confinement]
enabled = true
memory_per_unit_mib = 65536
max_tasks = 4096

[discovery]
sample_seconds = 1

$(cat "$W/units.toml")

[[models]]
id = "meta.llama3-8b-instruct-v1:0"
provider = "Meta"
input_modalities = ["text"]
output_modalities = ["text"]
max_tokens = 8192
on_demand = false
customizations = ["fine-tuning"]
units_per_model_unit = 1
tokens_per_minute = 30000
[models.hyperparameters]
epochs = [1, 10]
[models.price]
model_unit_hour = 24.5
model_unit_hour_1m = 21.18
model_unit_hour_6m = 13.08
on_demand_input_per_1k = 0.0003
on_demand_output_per_1k = 0.0006

[runners]
train = ["$python", "$PWD/scripts/gpu-check/see_gpu.py", "{spec}"]
batch = ["$python", "$PWD/scripts/gpu-check/see_gpu.py", "{spec}"]
serve = ["berth-runner", "serve", "--model-dir", "{model_dir}", "--port", "{port}", "--model-id", "{model}"]
TOML

step "berthd check-config"
berthd check-config --config "$W/berthd.toml"
step "berthd starts"
berthd --config "$W/berthd.toml" > "$OUT/berthd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$W/berthd.sock" ] && berth status >/dev/null 2>&1 && break; sleep 0.1; done
if ! berth status | tee "$OUT/status.txt"; then
    echo "FAIL: berthd did not start"; cat "$OUT/berthd.log"; exit 1
fi
berth units

step "a one-GPU training reservation and a PyTorch job on it"
berth reserve gpu-train --model meta.llama3-8b-instruct-v1:0 --units 1 --purpose training --duration 1h
job=$(berth submit see-gpu --reservation gpu-train --kind fine-tuning --data examples/fine-tuning.jsonl --output "$W/out" --model-name see-gpu-model --json | tee "$OUT/submit.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("id") or d.get("job", {}).get("id"))')
echo "job $job"
case "$job" in '' | *[!0-9]*) echo "FAIL: no job id from berth submit"; cat "$OUT/submit.json" "$OUT/berthd.log"; exit 1 ;; esac
: > "$OUT/metrics-samples.txt"
for i in $(seq 90); do
    curl -s --unix-socket "$W/berthd.sock" http://localhost/metrics | grep -E '^berth_(reservation_)?gpu_' >> "$OUT/metrics-samples.txt"
    echo "--- sample $i $(date +%T.%N)" >> "$OUT/metrics-samples.txt"
    berth jobs "$job" --json | grep -Eq '"status" *: *"(completed|failed|stopped)"' && break
    sleep 1
done
berth jobs "$job" | tee "$OUT/job.txt"
berth logs "$job" | tee "$OUT/job-log.txt"
berth jobs "$job" --json > "$OUT/job.json"
berth usage --from -1h > "$OUT/usage.txt" 2>&1; cat "$OUT/usage.txt"
curl -s --unix-socket "$W/berthd.sock" http://localhost/metrics > "$OUT/metrics-final.txt"

step results
check "the job completed" "grep -q 'completed' '$OUT/job.txt'"
check "the runner saw exactly one CUDA device" "grep -q 'device_count=1' '$OUT/job-log.txt'"
check "CUDA_VISIBLE_DEVICES is the unit's UUID" "grep -qx 'CUDA_VISIBLE_DEVICES=$uuid' '$OUT/job-log.txt'"
check "torch's device 0 is that UUID" "grep -q 'uuid=$uuid' '$OUT/job-log.txt'"
check "the other GPU's node was refused (EPERM)" "grep -q 'nvidia7: errno 1 ' '$OUT/job-log.txt'"
check "telemetry saw the GPU busy (utilization > 0.5 at some sample)" \
    "awk '/^berth_gpu_utilization_ratio/ { if (\$NF + 0 > 0.5) found = 1 } END { exit !found }' '$OUT/metrics-samples.txt'"
check "telemetry saw GPU memory in use (> 8 GiB at some sample)" \
    "awk '/^berth_gpu_memory_used_bytes/ { if (\$NF + 0 > 8 * 2^30) found = 1 } END { exit !found }' '$OUT/metrics-samples.txt'"
grep -m3 -i 'telemetry\|confinement' "$OUT/berthd.log"
kill -TERM $pid; wait $pid; echo "berthd exited $?"
echo; [ $fail = 0 ] && echo "GPU CHECK: ALL PASS" || echo "GPU CHECK: SOME FAILED"
