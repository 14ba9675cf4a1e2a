#!/usr/bin/env bash
# `make run`: starts berthd with the shipped config on ./run/berthd.sock and walks through a
# reservation with the CLI. The daemon keeps running afterwards; `make stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(swift build --show-bin-path)
run="$PWD/run"
mkdir -p "$run"
export BERTH_SOCKET="$run/berthd.sock"

if [ -f "$run/berthd.pid" ] && kill -0 "$(cat "$run/berthd.pid")" 2>/dev/null; then
    echo "stopping the berthd already running from ./run (pid $(cat "$run/berthd.pid"))"
    kill -TERM "$(cat "$run/berthd.pid")"
    while kill -0 "$(cat "$run/berthd.pid")" 2>/dev/null; do sleep 0.1; done
fi

"$bin/berthd" check-config --config config/berthd.toml
"$bin/berthd" --config config/berthd.toml --socket "$BERTH_SOCKET" --database "$run/berth.db" >>"$run/berthd.log" 2>&1 &
echo $! >"$run/berthd.pid"
for _ in $(seq 100); do
    "$bin/berth" status >/dev/null 2>&1 && break
    kill -0 "$(cat "$run/berthd.pid")" 2>/dev/null || { echo "berthd did not start:"; tail -20 "$run/berthd.log"; exit 1; }
    sleep 0.1
done

step() { printf '\n$ berth %s\n' "$*"; "$bin/berth" "$@" || true; }
step status
step units
step models
step reserve demo-train --model meta.llama3-8b-instruct-v1:0 --units 2 --purpose training --duration 8h
step reserve demo-serve --model amazon.nova-micro-v1:0 --units 2 --purpose inference
step reserve demo-too-big --model amazon.nova-micro-v1:0 --units 6
step reserve demo-later --model amazon.nova-micro-v1:0 --units 4 --start +1d --duration 2h
step reservations
step reservations demo-train
step capacity --to +2d
step update demo-serve --units 3

# A fine-tuning job on the training reservation, run by the reference runner, and then a batch
# job through an inference reservation of the custom model it made.
custom="demo-llama-$(date +%s)"
wait_for() {
    [ -n "$1" ] || return 0
    for _ in $(seq 300); do
        "$bin/berth" jobs "$1" --json | grep -Eq '"status" *: *"(completed|failed|stopped)"' && return 0
        sleep 0.2
    done
}
printf '\n$ berth submit demo-ft --reservation demo-train --kind fine-tuning --data examples/fine-tuning.jsonl ...\n'
submitted=$("$bin/berth" submit demo-ft --reservation demo-train --kind fine-tuning --data examples/fine-tuning.jsonl \
    --validation-data examples/fine-tuning-validation.jsonl --output "run/out/$custom" --model-name "$custom" \
    --epochs 3 --batch-size 10) || true
echo "$submitted"
ft=$(echo "$submitted" | awk '{print $3}')
wait_for "$ft"
step jobs "$ft"
step models "$custom"
step reserve demo-custom --model "$custom" --units 1 --purpose inference
printf '\n$ berth submit demo-batch --reservation demo-custom --kind batch-inference --data examples/batch-inference.jsonl ...\n'
submitted=$("$bin/berth" submit demo-batch --reservation demo-custom --kind batch-inference --data examples/batch-inference.jsonl \
    --output "run/out/$custom-batch") || true
echo "$submitted"
batch=$(echo "$submitted" | awk '{print $3}')
wait_for "$batch"
step jobs
printf '\n$ head -3 run/out/%s-batch/output.jsonl\n' "$custom"
head -3 "run/out/$custom-batch/output.jsonl" || true
# Calls: through the reservation (provisioned), a base model on demand, the custom model
# refused on demand, and the two side by side.
step invoke demo-custom --prompt "what does the ledger keep" --max-tokens 12
step invoke amazon.nova-micro-v1:0 --prompt "what does the ledger keep" --max-tokens 12
step invoke "$custom" --prompt "what does the ledger keep"
step compare demo-custom amazon.nova-micro-v1:0 --prompt "what does the scheduler do" --max-tokens 12
step reservations demo-custom --json
step release demo-custom
step release demo-train
step release demo-serve
step release demo-later
step units
# What it all used and cost, over the last hour, and a chart of it.
step usage --from -1h --chart run/usage.svg
step usage --from -1h --by model --format csv

cat <<MSG

berthd is running (pid $(cat "$run/berthd.pid")), its log is run/berthd.log, its ledger run/berth.db.
Use the CLI against it:

    export BERTH_SOCKET=$BERTH_SOCKET
    $bin/berth status
    $bin/berth usage --from -1h          # the chart of this run is run/usage.svg
    $bin/berth reserve mine --model amazon.nova-micro-v1:0 --units 1
    curl --unix-socket \$BERTH_SOCKET http://localhost/v1/reservations

Stop it with: make stop
MSG
