#!/usr/bin/env bash
# The losses of two fixed 20-step runs (tiny preset, generated corpus) against the values the
# trainer gave before the speed work of issue 10, to 1e-5 relative: a faster kernel may round
# differently, it may not compute something else.
#   1. one rank, dense;  2. two ranks, static PowerSGD at rank 4 (the engine and error feedback).
# The expected values are tests/data/golden_losses.txt. After a change that is meant to alter the
# numbers, regenerate it with: EDGC_GOLDEN_WRITE=1 bash tests/test_train_golden.sh build/apps/edgc-train/edgc-train
set -euo pipefail
train=$1
golden="$(dirname "$0")/data/golden_losses.txt"
source "$(dirname "$0")/trainer_lib.sh"
make_corpus 400 "$work/corpus.txt"
run=(--data "$work/corpus.txt" --preset tiny --batch 4 --steps 20 --warmup 5 --print-every 1000
     --sample-len 0 --eval-every 0 --eval-batches 1 --threads 1)
timeout 120 mpirun -np 1 "$train" "${run[@]}" --compress dense --out "$work/a" --log "$work/a.jsonl" >/dev/null
timeout 120 mpirun -np 2 "$train" "${run[@]}" --compress powersgd:4 --out "$work/b" --log "$work/b.jsonl" >/dev/null
paste <(field "$work/a.jsonl" loss) <(field "$work/b.jsonl" loss) >"$work/got.txt"
[ "$(wc -l <"$work/got.txt")" -eq 20 ] || fail "expected 20 steps, got $(wc -l <"$work/got.txt")"
if [ "${EDGC_GOLDEN_WRITE:-0}" = 1 ]; then
    cp "$work/got.txt" "$golden"
    echo "wrote $golden"
    exit 0
fi
paste "$golden" "$work/got.txt" |
    awk 'function rel(a, b) { d = a - b; if (d < 0) d = -d; return d / (b < 0 ? -b : b) }
         { if (rel($3, $1) > 1e-5 || rel($4, $2) > 1e-5) { print "step " NR ": expected " $1 " " $2 ", got " $3 " " $4; bad = 1 } }
         END { exit bad }' || fail "losses moved from tests/data/golden_losses.txt"
echo "20-step losses match the golden values (dense 1 rank, powersgd:4 2 ranks)"
