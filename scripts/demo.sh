#!/usr/bin/env bash
# `make run`: the tour. Builds berth (compile lines go to run/build.log unless the build
# fails), starts berthd with the shipped config on ./run/berthd.sock, and walks through
# reservations, a fine-tuning job, a batch job, real-time calls and a usage report, printing
# each command as you would type it and its real output, trimmed. The daemon keeps running
# afterwards; `make stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

run="$PWD/run"
mkdir -p "$run"

bold=$'\e[1m'
plain=$'\e[0m'
[ -t 1 ] || { bold=""; plain=""; }
headline() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$plain"; }

echo "Building berth (swift build; the compiler's output goes to run/build.log)..."
if ! swift build >"$run/build.log" 2>&1; then
    tail -40 "$run/build.log"
    echo "the build failed; the whole log is run/build.log"
    exit 1
fi
bin=$(swift build --show-bin-path)
export PATH="$bin:$PATH"
export BERTH_SOCKET="$run/berthd.sock"

# A word as a shell would need it to read it back: bare when it is safe, else single-quoted.
quote() {
    if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}
show() {
    local word line="\$"
    for word in "$@"; do line+=" $(quote "$word")"; done
    printf '\n%s\n' "$line"
}
# Runs a command as shown; with `trim N` first, prints only its first N lines of output.
step() {
    local keep=0
    if [ "$1" = trim ]; then keep=$2; shift 2; fi
    show "$@"
    local out status=0
    out=$("$@" 2>&1) || status=$?
    if [ "$keep" -gt 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -gt "$keep" ]; then
        printf '%s\n' "$out" | head -n "$keep"
        local more=$(($(printf '%s\n' "$out" | wc -l) - keep))
        [ "$more" -eq 1 ] && echo "… (1 more line)" || echo "… ($more more lines)"
    else
        printf '%s\n' "$out"
    fi
    [ "$status" -eq 0 ] || echo "(exit $status)"
}
wait_for_job() {
    for _ in $(seq 300); do
        berth jobs "$1" --json | grep -Eq '"status" *: *"(completed|failed|stopped)"' && return 0
        sleep 0.2
    done
}

if [ -f "$run/berthd.pid" ] && kill -0 "$(cat "$run/berthd.pid")" 2>/dev/null; then
    echo "Stopping the berthd an earlier make run started (pid $(cat "$run/berthd.pid"))."
    kill -TERM "$(cat "$run/berthd.pid")"
    while kill -0 "$(cat "$run/berthd.pid")" 2>/dev/null; do sleep 0.1; done
fi
# The usage report at the end covers the tour from here on.
tour_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)

headline "Start the daemon"
echo "berthd checks its config, then serves the socket; its log goes to run/berthd.log."
step berthd check-config --config config/berthd.toml
printf '\n$ berthd --config config/berthd.toml --socket run/berthd.sock --database run/berth.db &\n'
berthd --config config/berthd.toml --socket "$BERTH_SOCKET" --database "$run/berth.db" >>"$run/berthd.log" 2>&1 &
echo $! >"$run/berthd.pid"
for _ in $(seq 100); do
    berth status >/dev/null 2>&1 && break
    kill -0 "$(cat "$run/berthd.pid")" 2>/dev/null || { echo "berthd did not start:"; tail -20 "$run/berthd.log"; exit 1; }
    sleep 0.1
done
echo "(pid $(cat "$run/berthd.pid"); the commands below run with berth on PATH and BERTH_SOCKET=run/berthd.sock)"

headline "The pool and the catalog"
step berth status
step trim 6 berth units
step trim 6 berth models

headline "Reserve capacity: training, inference, one too big, one for tomorrow"
step berth reserve demo-train --model meta.llama3-8b-instruct-v1:0 --units 2 --purpose training --duration 8h
step berth reserve demo-serve --model amazon.nova-micro-v1:0 --units 2 --purpose inference
step berth reserve demo-too-big --model amazon.nova-micro-v1:0 --units 6
step berth reserve demo-later --model amazon.nova-micro-v1:0 --units 4 --start +1d --duration 2h

headline "What is reserved, and what is free over the next two days"
step berth reservations --status pending,active
step berth capacity --to +2d

headline "Grow a reservation"
step berth update demo-serve --units 3

headline "Fine-tune a model on the training reservation"
custom="demo-llama-$(date +%s)"
show berth submit demo-ft --reservation demo-train --kind fine-tuning --data examples/fine-tuning.jsonl \
    --validation-data examples/fine-tuning-validation.jsonl --output "run/out/$custom" --model-name "$custom" \
    --epochs 3 --batch-size 10
submitted=$(berth submit demo-ft --reservation demo-train --kind fine-tuning --data examples/fine-tuning.jsonl \
    --validation-data examples/fine-tuning-validation.jsonl --output "run/out/$custom" --model-name "$custom" \
    --epochs 3 --batch-size 10 2>&1) || true
echo "$submitted"
ft=$(echo "$submitted" | awk '/^submitted job/ {print $3}')
[ -n "$ft" ] && wait_for_job "$ft"
step trim 12 berth jobs "${ft:-0}"
step trim 12 berth models "$custom"

headline "Serve the custom model, and run a batch job through it"
step berth reserve demo-custom --model "$custom" --units 1 --purpose inference
show berth submit demo-batch --reservation demo-custom --kind batch-inference --data examples/batch-inference.jsonl \
    --output "run/out/$custom-batch"
submitted=$(berth submit demo-batch --reservation demo-custom --kind batch-inference --data examples/batch-inference.jsonl \
    --output "run/out/$custom-batch" 2>&1) || true
echo "$submitted"
batch=$(echo "$submitted" | awk '/^submitted job/ {print $3}')
[ -n "$batch" ] && wait_for_job "$batch"
step trim 4 berth jobs
step head -3 "run/out/$custom-batch/output.jsonl"

headline "Call models in real time"
step berth invoke demo-custom --prompt "what does the ledger keep" --max-tokens 12
step berth invoke amazon.nova-micro-v1:0 --prompt "what does the ledger keep" --max-tokens 12
echo "A custom model is served only through a reservation made for it, never by its id:"
step berth invoke "$custom" --prompt "what does the ledger keep"
step berth compare demo-custom amazon.nova-micro-v1:0 --prompt "what does the scheduler do" --max-tokens 12

headline "Release what the tour reserved"
for name in demo-custom demo-train demo-serve demo-later; do step berth release "$name"; done

headline "What the tour used and cost"
# A report to now ends after the current second, so the calls just made are in it.
step berth usage --from "$tour_start" --chart run/usage.svg
step berth usage --from "$tour_start" --by model --format csv

cat <<MSG

${bold}berthd keeps running${plain} (pid $(cat "$run/berthd.pid")): its log is run/berthd.log, its ledger run/berth.db,
the tour's chart run/usage.svg. To use it from this shell:

    export PATH="$bin:\$PATH" BERTH_SOCKET="$BERTH_SOCKET"
    berth status
    berth reserve mine --model amazon.nova-micro-v1:0 --units 1 --purpose inference
    berth invoke mine --prompt "what does the ledger keep"
    curl --unix-socket "\$BERTH_SOCKET" http://localhost/v1/reservations

Stop it with: make stop
MSG
