#!/usr/bin/env bash
# The trainer end to end under mpirun, on a small model and a generated corpus:
#   1. 2 ranks x batch B (dense) == 1 rank x batch 2B, to float tolerance;
#   2. --stop-after + --resume gives bit-identical weights and losses to an uninterrupted run;
#   3. a 2-rank edgc run goes through profile, warm-up and compress and ends with identical
#      weights on both ranks (the trainer's own hash check) and compressed bytes;
#   4. a non-finite gradient on one rank skips the step on all ranks and the run goes on;
#   5. --threads 2 gives the losses of --threads 1 to 1e-5 relative;
#   6. --dump-grads writes the synchronised gradient of the listed steps: the 2-rank average of
#      test 1 equals the 1-rank gradient of the doubled batch.
set -euo pipefail
train=$1 diff=$2
source "$(dirname "$0")/trainer_lib.sh"
make_corpus 400 "$work/corpus.txt"
model=(--data "$work/corpus.txt" --layers 2 --dim 32 --heads 2 --seq 16 --print-every 1000
       --sample-len 0 --eval-batches 2 --warmup 2)

echo "== 1. two ranks with batch 4 == one rank with batch 8"
mkdir "$work/g2" "$work/g1"
mpirun -np 2 "$train" "${model[@]}" --batch 4 --steps 6 --compress dense --out "$work/r2" --log "$work/r2.jsonl" \
    --dump-grads "$work/g2" --dump-steps 1,3-4 >/dev/null
mpirun -np 1 "$train" "${model[@]}" --batch 8 --steps 6 --compress dense --out "$work/r1" --log "$work/r1.jsonl" \
    --dump-grads "$work/g1" --dump-steps 1,3-4 >/dev/null
"$diff" "$work/r2/latest/model.bin" "$work/r1/latest/model.bin" 1e-5 || fail "2 x 4 and 1 x 8 differ"
paste <(field "$work/r2.jsonl" loss) <(field "$work/r1.jsonl" loss) |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) { print "loss differs: " $0; exit 1 } }' ||
    fail "losses differ"

echo "== 2. stop after 7 steps, resume, and compare with an uninterrupted run"
common=(--batch 4 --steps 14 --compress edgc --rmax 4 --window 4 --alpha 0.5 --edgc-warmup 0.2)
mpirun -np 2 "$train" "${model[@]}" "${common[@]}" --out "$work/full" --log "$work/full.jsonl" >/dev/null
mpirun -np 2 "$train" "${model[@]}" "${common[@]}" --out "$work/part" --stop-after 7 --log "$work/part.jsonl" >/dev/null
mpirun -np 2 "$train" "${model[@]}" "${common[@]}" --out "$work/part" --resume "$work/part" --log "$work/part.jsonl" >/dev/null
"$diff" "$work/full/latest/model.bin" "$work/part/latest/model.bin" 0 || fail "resumed run is not bit-identical"
cmp <(field "$work/full.jsonl" loss) <(field "$work/part.jsonl" loss) || fail "resumed losses differ"
[ "$(grep -c '"phase":"compress"' "$work/full.jsonl")" -ge 8 ] || fail "the resume run never compressed"

echo "== 3. edgc with profiling: every phase, identical weights, fewer bytes"
mpirun -np 2 "$train" "${model[@]}" --batch 4 --steps 60 --compress edgc --window 10 --alpha 0.5 \
    --edgc-warmup 0.6 --hash-every 5 --log "$work/edgc.jsonl" >"$work/edgc.out"
for p in profile warmup compress; do
    grep -q "\"phase\":\"$p\"" "$work/edgc.jsonl" || fail "edgc run never reached phase $p"
done
# phases in order; back to profiling only from compression, when the measured sync time drifted
# from the profile (docs/ALGORITHM.md 4.4: under the sanitizers' slow, noisy timing, or a loaded
# machine, it can), and a re-profile may still be running when the run ends
field "$work/edgc.jsonl" phase | uniq | tr -d '"' | tr '\n' ' ' |
    grep -qxE 'profile warmup compress (profile compress )*(profile )?' ||
    fail "phases out of order: $(field "$work/edgc.jsonl" phase | uniq | tr '\n' ' ')"
grep -q '^done: 60 steps' "$work/edgc.out" || fail "edgc run did not finish"

echo "== 4. a NaN on rank 0 at step 5 is skipped everywhere"
mpirun -np 2 "$train" "${model[@]}" --batch 4 --steps 10 --compress powersgd:2 --debug-nan-step 5 \
    >"$work/nan.out"
grep -q 'step 6: non-finite gradient on some rank; step skipped on all ranks' "$work/nan.out" ||
    fail "no skip message"
grep -q '1 steps skipped' "$work/nan.out" || fail "summary does not count the skipped step"
echo "== 5. threads inside a rank change no loss beyond float rounding (20 steps, 1 vs 2 threads)"
for th in 1 2; do
    mpirun -np 1 --bind-to none "$train" "${model[@]}" --batch 8 --steps 20 --compress dense \
        --threads "$th" --log "$work/th$th.jsonl" >"$work/th$th.out"
    grep -q "1 ranks x $th threads" "$work/th$th.out" || fail "--threads $th not in effect"
done
paste <(field "$work/th1.jsonl" loss) <(field "$work/th2.jsonl" loss) |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1) { print "loss differs: " $0; exit 1 } }' ||
    fail "losses with 1 and 2 threads differ"
echo "== 6. --dump-grads: the listed steps' synchronised gradients (test 1's runs)"
[ "$(ls "$work/g2")" = "$(printf 'grad-00000001.f32\ngrad-00000003.f32\ngrad-00000004.f32\nlayout.txt')" ] ||
    fail "dumped files: $(ls "$work/g2" | tr '\n' ' ')"
cmp "$work/g2/layout.txt" "$work/g1/layout.txt" || fail "the layouts differ"
python3 - "$work/g2" "$work/g1" <<'PY' || fail "dumped gradients differ"
import array, math, os, sys
total = int(open(sys.argv[1] + "/layout.txt").readline().split("total ")[1].rstrip(")\n"))
for name in sorted(os.listdir(sys.argv[1])):
    if not name.endswith(".f32"):
        continue
    a, b = (array.array("f", open(d + "/" + name, "rb").read()) for d in sys.argv[1:])
    assert len(a) == len(b) == total, (name, len(a), len(b), total)
    norm = math.sqrt(sum(x * x for x in b))
    diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    assert norm > 0 and diff <= 1e-4 * norm, (name, diff, norm)
PY
echo "all trainer checks passed"
