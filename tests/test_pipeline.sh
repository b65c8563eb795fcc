#!/usr/bin/env bash
# Pipeline parallelism (--pp) end to end under mpirun, on a 4-layer model and a generated corpus:
#   1. dense: PP=2 x DP=1, PP=2 x DP=2 and PP=4 x DP=1 give the per-step losses and the gathered
#      model.bin of PP=1 with the same global batch, to float tolerance;
#   2. randomised small grids (P <= layers, M >= P) finish: the 1F1B schedule does not deadlock;
#   3. edgc under PP=2 x DP=2 with --wam on: the replicas of each stage stay identical every
#      step (hash check) and both stages reach compression (shared memory profiles no paying
#      rank, so the aligned decisions themselves are test_reducer's, on a simulated slow link);
#   4. --stop-after + --resume under PP is bit-identical; with r_max given, stage 1 takes stage
#      0's rank every step (WAM without timings), also after a NaN skipped on one stage;
#      resuming with another --pp is refused;
#   5. bad grids (P not dividing the world, P > layers, M < P, M not dividing the batch) stop
#      every rank with one line.
set -euo pipefail
train=$1 diff=$2
source "$(dirname "$0")/trainer_lib.sh"
make_corpus 400 "$work/corpus.txt"
model=(--data "$work/corpus.txt" --layers 4 --dim 32 --heads 2 --seq 16 --print-every 1000
       --sample-len 0 --eval-batches 2 --warmup 2 --eval-every 3)
run() { timeout 120 mpirun "$@"; }
same_losses() { # A.jsonl B.jsonl FIELDS: the same values of FIELDS per step, to 1e-5 relative
    for f in $3; do
        paste <(field "$1" $f) <(field "$2" $f) | awk -v f=$f '
            $1 == "null" && $2 == "null" { next }
            { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) { print f " differs: " $0; bad = 1 } }
            END { exit bad }' || return 1
    done
    [ "$(wc -l <"$1")" -eq "$(wc -l <"$2")" ] || { echo "different numbers of steps"; return 1; }
}

echo "== 1. dense pipelines equal PP=1 with the same global batch"
run -np 1 "$train" "${model[@]}" --batch 8 --steps 6 --compress dense --out "$work/ref" \
    --log "$work/ref.jsonl" >/dev/null
for grid in "2 2 1 8" "4 2 2 4" "4 4 1 8"; do # ranks, P, D, batch per replica
    read -r np P D B <<<"$grid"
    name="pp${P}dp${D}"
    run -np "$np" "$train" "${model[@]}" --batch "$B" --steps 6 --compress dense --pp "$P" \
        --micro-batches $((2 * P)) --hash-every 1 --out "$work/$name" --log "$work/$name.jsonl" \
        >"$work/$name.out" || fail "$name failed: $(tail -3 "$work/$name.out")"
    grep -q "pipeline: $P stages x $D replicas" "$work/$name.out" || fail "$name: no grid line"
    # validation batches are --batch sequences each: comparable when the batch per replica is
    fields="loss"
    [ "$B" -eq 8 ] && fields="loss val_loss"
    same_losses "$work/$name.jsonl" "$work/ref.jsonl" "$fields" || fail "$name: losses differ from PP=1"
    "$diff" "$work/$name/latest/model.bin" "$work/ref/latest/model.bin" 2e-5 ||
        fail "$name: gathered model.bin differs from PP=1's"
    for s in $(seq 1 $((P - 1))); do
        [ -s "$work/$name.jsonl.stage$s" ] || fail "$name: stage $s wrote no log"
    done
done

echo "== 2. randomised grids finish (no deadlock)"
RANDOM=7
for k in 1 2 3 4 5 6; do
    P=$((2 + RANDOM % 3))       # 2..4 stages
    M=$((P + RANDOM % 4))       # M >= P
    D=$((1 + RANDOM % 2))
    [ $((P * D)) -le 6 ] || D=1
    L=$((P + RANDOM % 3))       # P <= layers
    run -np $((P * D)) "$train" --data "$work/corpus.txt" --layers "$L" --dim 16 --heads 2 \
        --seq 8 --batch "$M" --micro-batches "$M" --pp "$P" --steps 3 --eval-every 2 \
        --eval-batches 3 --sample-len 8 --print-every 1000 --compress powersgd:2 \
        >"$work/rand$k.out" 2>&1 || fail "P=$P M=$M D=$D L=$L: $(tail -3 "$work/rand$k.out")"
    grep -q '^done: 3 steps' "$work/rand$k.out" || fail "P=$P M=$M D=$D L=$L did not finish"
done

echo "== 3. edgc under PP=2 x DP=2, --wam on: replicas identical every step, both stages compress"
run -np 4 "$train" "${model[@]}" --batch 4 --steps 30 --compress edgc --pp 2 --micro-batches 2 \
    --window 6 --alpha 0.5 --edgc-warmup 0.3 --wam on --hash-every 1 --log "$work/edgc.jsonl" \
    >"$work/edgc.out" || fail "edgc under PP failed: $(tail -3 "$work/edgc.out")"
for f in "$work/edgc.jsonl" "$work/edgc.jsonl.stage1"; do
    grep -q '"phase":"compress"' "$f" || fail "$f never compressed"
done

echo "== 4. resume under PP is bit-identical; another --pp is refused"
common=(--batch 4 --steps 40 --compress edgc --rmax 8 --window 4 --alpha 0.5 --edgc-warmup 0.1
        --pp 2 --micro-batches 2)
run -np 2 "$train" "${model[@]}" "${common[@]}" --out "$work/full" --log "$work/full.jsonl" >/dev/null
run -np 2 "$train" "${model[@]}" "${common[@]}" --out "$work/part" --stop-after 17 \
    --log "$work/part.jsonl" >/dev/null
run -np 2 "$train" "${model[@]}" "${common[@]}" --out "$work/part" --resume "$work/part" \
    --log "$work/part.jsonl" >/dev/null
"$diff" "$work/full/latest/model.bin" "$work/part/latest/model.bin" 0 ||
    fail "resumed pipeline run is not bit-identical"
cmp <(field "$work/full.jsonl" loss) <(field "$work/part.jsonl" loss) || fail "resumed losses differ"
# r_max given: no timings to align on, so stage 1 takes stage 0's rank, the same step
cmp <(field "$work/full.jsonl" rank) <(field "$work/full.jsonl.stage1" rank) ||
    fail "stage 1 did not follow stage 0's rank"
[ "$(field "$work/full.jsonl" rank | sort -u | wc -l)" -ge 2 ] || fail "the rank never changed"
# a NaN on stage 0 alone: every stage skips that step, so the stages' windows stay aligned and
# stage 1 still takes stage 0's rank on the same steps
run -np 2 "$train" "${model[@]}" "${common[@]}" --debug-nan-step 9 --log "$work/nan.jsonl" \
    >"$work/nan.out" 2>&1 || fail "the run with a NaN failed: $(tail -3 "$work/nan.out")"
grep -q "step 10: non-finite gradient on some rank; step skipped on all ranks" "$work/nan.out" ||
    fail "the NaN step was not skipped: $(cat "$work/nan.out")"
cmp <(field "$work/nan.jsonl" rank) <(field "$work/nan.jsonl.stage1" rank) ||
    fail "after a skipped step stage 1 no longer takes stage 0's rank on the same steps"
if run -np 2 "$train" "${model[@]}" --batch 4 --steps 40 --compress edgc --rmax 8 --window 4 \
    --alpha 0.5 --edgc-warmup 0.1 --resume "$work/part" >"$work/other.out" 2>&1; then
    fail "resuming a PP=2 checkpoint with PP=1 was accepted"
fi
grep -q "2 pipeline stages x 1 replicas; this run has 1 x 2" "$work/other.out" ||
    fail "no clear message for another --pp: $(cat "$work/other.out")"

echo "== 5. bad grids stop every rank with one line"
bad() { # expected-message np options...
    local want=$1 np=$2
    shift 2
    if run -np "$np" "$train" "${model[@]}" --steps 2 "$@" >"$work/bad.out" 2>&1; then
        fail "accepted: $*"
    fi
    grep -q -- "$want" "$work/bad.out" || fail "for $*: expected '$want', got: $(cat "$work/bad.out")"
    [ "$(grep -c 'edgc-train:' "$work/bad.out")" -eq 1 ] || fail "not one line: $(cat "$work/bad.out")"
}
bad "does not divide the 4 ranks" 4 --pp 3
bad "more stages than the model's 4 layers" 5 --pp 5
bad "needs at least 2 micro-batches" 2 --pp 2 --micro-batches 1
bad "does not split into --micro-batches 3" 2 --pp 2 --batch 8 --micro-batches 3
echo "all pipeline tests passed"
