#!/usr/bin/env bash
# Crash safety: a 2-rank run that checkpoints every few steps is killed with SIGKILL (the whole
# job, as a scheduler would) at random moments, TRIES times; after each kill it is resumed to the
# end. Every resume must succeed (or start afresh when the kill came before the first checkpoint)
# and the final model must equal an uninterrupted run's byte for byte.
set -uo pipefail
train=$1
tries=${TRIES:-10}
source "$(dirname "$0")/trainer_lib.sh"
make_corpus 2000 "$work/corpus.txt"
args=(--data "$work/corpus.txt" --layers 2 --dim 64 --heads 2 --seq 32 --batch 4 --steps 480
      --compress edgc --rmax 4 --window 8 --alpha 0.5 --checkpoint-every 4 --keep-checkpoints 2
      --print-every 1000 --sample-len 0 --eval-batches 2 --eval-every 160)

start=$(date +%s.%N)
timeout 120 mpirun -np 2 "$train" "${args[@]}" --out "$work/ref" >/dev/null || fail "reference run"
run_s=$(echo "$(date +%s.%N) - $start" | bc)
echo "uninterrupted run: ${run_s}s"

ok=0 resumed=0
for t in $(seq 1 "$tries"); do
    out="$work/run$t"
    # kill somewhere in the first 90 % of a run (mpirun's start-up included)
    delay=$(awk -v s="$run_s" -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.2 + (s * 0.9 - 0.2) * r / 32767 }')
    setsid mpirun -np 2 "$train" "${args[@]}" --out "$out" >"$work/log$t" 2>&1 &
    pid=$!
    sleep "$delay"
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    # stray processes of the killed job would hold the files: wait until they are gone
    for _ in $(seq 1 50); do pgrep -f "$out" >/dev/null || break; sleep 0.1; done
    pgrep -f "$out" >/dev/null && fail "try $t: processes of the killed job survived"
    resume=()
    if [ -e "$out/latest" ] || compgen -G "$out/step-*" >/dev/null; then
        resume=(--resume "$out")
        resumed=$((resumed + 1))
    fi
    if ! timeout 120 mpirun -np 2 "$train" "${args[@]}" --out "$out" "${resume[@]}" >"$work/res$t" 2>&1; then
        sed 's/^/    /' "$work/res$t" | tail -5
        fail "try $t (killed after ${delay}s): the resume failed"
    fi
    cmp -s "$work/ref/latest/model.bin" "$out/latest/model.bin" ||
        fail "try $t (killed after ${delay}s): final model differs from the uninterrupted run"
    left=$(find "$out" -name '*.tmp.*' | wc -l)
    [ "$left" -eq 0 ] || fail "try $t: $left temporary files left behind"
    echo "try $t: killed after ${delay}s, $(grep -o 'resuming from [^ ]*' "$work/res$t" | sed "s|$work/||" || echo 'no checkpoint yet: fresh start'), final model identical"
    ok=$((ok + 1))
done
echo "$ok of $tries kill-and-resume tries ended with the uninterrupted run's model ($resumed resumed from a checkpoint)"
