#!/usr/bin/env bash
# Bad input to edgc-train: each case must print one line starting 'edgc-train:' that names the
# problem, exit non-zero on every rank, and neither hang (timeout) nor dump core (exit >= 128).
# One exception: a damaged checkpoint with an older one beside it is skipped, with a line.
set -uo pipefail
train=$1
source "$(dirname "$0")/trainer_lib.sh"
head -c 20000 /dev/urandom | base64 >"$work/ok.txt"
echo "too short" >"$work/short.txt"
small=(--layers 1 --dim 16 --heads 2 --seq 8 --batch 2 --sample-len 0 --print-every 1000)
failures=0 cases=0

# expect NAME WORDS -- ARGS...: runs under mpirun -np 2 (NP=N expect ...: N ranks)
expect() {
    local name=$1 words=$2
    shift 3
    cases=$((cases + 1))
    timeout 60 mpirun -np "${NP:-2}" "$train" "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    local line
    line=$(grep '^edgc-train:' "$work/err" | head -1)
    if [ $rc -eq 0 ] || [ $rc -ge 124 ] || [ -z "$line" ] || ! grep -q -- "$words" <<<"$line"; then
        echo "FAIL $name: exit $rc, message '$line' (wanted '$words')"
        sed 's/^/    /' "$work/err" | head -5
        failures=$((failures + 1))
    else
        echo "ok   $name: $line"
    fi
}

expect missing-data "cannot open data file" -- --data "$work/nope.txt"
expect short-data "too short for one batch" -- --data "$work/short.txt" "${small[@]}"
# shard FILE VERSION COUNT TOKENS: an llm.c token shard (magic 20240520, a 1024-byte header)
# of COUNT tokens, TOKENS as printf escapes (2 bytes a token in version 1, 4 in version 2)
shard() {
    printf "\x88\xd8\x34\x01\x0$2\x00\x00\x00\x0$3\x00\x00\x00" >"$1"
    head -c 1012 /dev/zero >>"$1"
    printf "$4" >>"$1"
}
shard "$work/bad.bin" 1 4 '\x01\x00\x02\x00\xff\xff\x03\x00' # token 65535 is not GPT-2
expect token-range "outside the GPT-2 vocabulary" -- --data "$work/bad.bin" "${small[@]}"
expect negative-steps "--steps -5" -- --steps -5 --data "$work/ok.txt"
expect heads-dim "does not divide" -- --dim 30 --heads 4 --data "$work/ok.txt"
expect bad-compress "--compress zip" -- --compress zip --data "$work/ok.txt"
expect bad-preset "--preset huge" -- --preset huge --data "$work/ok.txt"
expect unknown-flag "unknown option" -- --frobnicate --data "$work/ok.txt"
expect bad-number "--lr abc" -- --lr abc --data "$work/ok.txt"
expect bad-rule "expected trend | cqm | error | decay" -- --rule foo --data "$work/ok.txt"
expect bad-rmax-rule "--rmax-rule x" -- --rmax-rule x --data "$work/ok.txt"
expect bad-rmax-slack "--rmax-slack 2" -- --rmax-slack 2 --data "$work/ok.txt"
expect rmin-above-rmax "r_min = 8 > r_max = 4" -- --rmax 4 --rmin 8 --data "$work/ok.txt" "${small[@]}"
expect bad-warmup-sync "--warmup-sync x" -- --warmup-sync x --data "$work/ok.txt"
expect window-one "--window 1" -- --window 1 --data "$work/ok.txt"
expect data-directory "is a directory" -- --data "$work" "${small[@]}"
expect keep-zero "--keep-checkpoints 0" -- --keep-checkpoints 0 --data "$work/ok.txt"
expect resume-nothing "no checkpoint there" -- "${small[@]}" --data "$work/ok.txt" --resume "$work"
expect dump-steps-bad "--dump-steps 3-2" -- --dump-grads "$work" --dump-steps 3-2 --data "$work/ok.txt"
expect dump-steps-zero "--dump-steps 0,4" -- --dump-grads "$work" --dump-steps 0,4 --data "$work/ok.txt"
expect dump-alone "go together" -- --dump-grads "$work" --data "$work/ok.txt"
expect dump-dir-missing "cannot write --dump-grads" -- "${small[@]}" --data "$work/ok.txt" \
    --dump-grads "$work/nope" --dump-steps 1
# an llm.c version-2 shard (uint32 tokens) names no vocabulary: refused without --init
shard "$work/v2.bin" 2 2 '\x01\x00\x00\x00\x02\x00\x00\x00'
expect shard-v2-no-init "version-2 shard" -- --data "$work/v2.bin" "${small[@]}"
# --val-data: too short for one batch; another vocabulary than --data's (a GPT-2 token shard
# against bytes of text); then used: training losses unchanged by it, validation losses not
expect val-short "validation data: 10 tokens, too short" -- --data "$work/ok.txt" --val-data "$work/short.txt" \
    "${small[@]}"
shard "$work/good.bin" 1 4 '\x01\x00\x02\x00\x03\x00\x04\x00'
expect val-vocab "has vocabulary 50257, --data 256" -- --data "$work/ok.txt" --val-data "$work/good.bin" \
    "${small[@]}"
cases=$((cases + 1))
head -c 3000 "$work/ok.txt" >"$work/val1.txt"
tail -c 3000 "$work/ok.txt" >"$work/val2.txt"
for v in 1 2; do
    timeout 60 mpirun -np 2 "$train" "${small[@]}" --data "$work/ok.txt" --steps 3 --eval-every 1 \
        --val-data "$work/val$v.txt" --log "$work/val$v.jsonl" >/dev/null 2>&1 ||
        echo "run $v failed" >"$work/val.err"
done
v1=$(field "$work/val1.jsonl" val_loss) v2=$(field "$work/val2.jsonl" val_loss)
if [ ! -e "$work/val.err" ] && cmp -s <(field "$work/val1.jsonl" loss) <(field "$work/val2.jsonl" loss) &&
    [ "$v1" != "$v2" ] && [ "$(grep -c -v null <<<"$v1")" -eq 3 ]; then
    echo "ok   val-data: evaluated on the given file every step, training unchanged"
else
    echo "FAIL val-data: $(cat "$work/val.err" 2>/dev/null) validation losses $(echo $v1) and $(echo $v2)"
    failures=$((failures + 1))
fi

# Ranks started with different options or data: every rank stops within seconds, rank 0 names
# the option and the differing rank says what it has. Rank 1 gets the extra arguments.
mismatch() {
    local name=$1 words=$2
    shift 3
    cases=$((cases + 1))
    local base=("${small[@]}" --data "$work/ok.txt" --steps 3)
    timeout 60 mpirun -np 1 "$train" "${base[@]}" : -np 1 "$train" "${base[@]}" "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 124 ] || ! grep -q "^edgc-train: $words differs between ranks" "$work/err" ||
        ! grep -q "^edgc-train: rank 1: $words is" "$work/err"; then
        echo "FAIL mismatch-$name: exit $rc (wanted both ranks to name '$words')"
        sed 's/^/    /' "$work/err" | head -5
        failures=$((failures + 1))
    else
        echo "ok   mismatch-$name: $(grep '^edgc-train: rank 1' "$work/err")"
    fi
}
head -c 20000 /dev/urandom | base64 >"$work/other.txt"
mismatch batch "--batch" -- --batch 3
mismatch seq "--seq" -- --seq 4
mismatch seed "--seed" -- --seed 7
mismatch lr "--lr" -- --lr 0.002
mismatch schedule "--lr-schedule" -- --lr-schedule constant
mismatch warmup "--warmup" -- --warmup 3
mismatch shape "--layers" -- --layers 2
mismatch compress "--compress" -- --compress powersgd:2
mismatch rule "--rule" -- --rule cqm
mismatch data "the training data (--data)" -- --data "$work/other.txt"
# a checkpoint to corrupt and mismatch
timeout 120 mpirun -np 2 "$train" "${small[@]}" --data "$work/ok.txt" --steps 2 --out "$work/ck" >/dev/null 2>&1 ||
    { echo "FAIL: could not make a checkpoint"; exit 1; }
expect resume-other-shape "shape" -- "${small[@]/16/32}" --data "$work/ok.txt" --resume "$work/ck"
head -c 2000 "$work/ck/latest/model.bin" >"$work/trunc.bin"
expect init-truncated "truncated" -- --data "$work/ok.txt" --init "$work/trunc.bin" --seq 8 --batch 2
expect seq-beyond-table "longer than the model's position table" -- --data "$work/ok.txt" --init "$work/ck/latest/model.bin" --seq 64
cp -a "$work/ck" "$work/ck2"
# flip every bit of byte 200 (writing a fixed byte could leave it unchanged)
st1="$work/ck2/latest/state.rank1.bin"
b=$(od -An -tu1 -j200 -N1 "$st1" | tr -d ' ')
printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$st1" bs=1 seek=200 conv=notrunc 2>/dev/null
cmp -s "$work/ck/latest/state.rank1.bin" "$st1" && { echo "FAIL: corruption did not change the file"; exit 1; }
expect corrupt-state "checksum" -- "${small[@]}" --data "$work/ok.txt" --steps 2 --resume "$work/ck2"
expect resume-other-shape-batch "ranks" -- "${small[@]}" --data "$work/ok.txt" --steps 2 --resume "$work/ck" --batch 3
NP=1 expect resume-other-world "written by 2 ranks; this run has 1" -- "${small[@]}" --data "$work/ok.txt" \
    --steps 2 --resume "$work/ck"
# A checkpoint whose model.bin is another step's (a sound file, not the one its manifest names):
# skipped, with a line that says why, for the older one; with none older, the run stops.
cases=$((cases + 1))
ck=(timeout 120 mpirun -np 2 "$train" "${small[@]}" --data "$work/ok.txt" --steps 4)
"${ck[@]}" --checkpoint-every 2 --keep-checkpoints 2 --out "$work/ck3" >/dev/null 2>&1 ||
    { echo "FAIL: could not make two checkpoints"; exit 1; }
cp "$work/ck3/step-00000002/model.bin" "$work/ck3/step-00000004/model.bin"
cp -a "$work/ck3/step-00000004" "$work/lone" # the same damage with nothing older beside it
"${ck[@]}" --resume "$work/ck3" --out "$work/ck3" >"$work/out" 2>"$work/err"
rc=$?
skip="^edgc-train: skipping an incomplete checkpoint: .*step-00000004/model.bin' does not match"
if [ $rc -eq 0 ] && grep -q "$skip" "$work/err" && grep -q "resuming from .*step-00000002" "$work/out"; then
    echo "ok   swapped-model: $(grep '^edgc-train' "$work/err")"
else
    echo "FAIL swapped-model: exit $rc, wanted a skip to step 2"
    sed 's/^/    /' "$work/err" | head -5
    failures=$((failures + 1))
fi
expect swapped-model-alone "no older complete checkpoint" -- "${small[@]}" --data "$work/ok.txt" --steps 4 \
    --resume "$work/lone"
expect resume-other-steps "--steps 2" -- "${small[@]}" --data "$work/ok.txt" --steps 4 --resume "$work/ck"

# --help works without mpirun and exits 0
cases=$((cases + 1))
# (captured first: grep -q would close the pipe early, and a help text longer than one stdio
# buffer then dies of SIGPIPE)
help=$("$train" --help) || help="exit status $?"
if grep -q -- '--compress' <<<"$help"; then echo "ok   help"; else echo "FAIL help"; failures=$((failures + 1)); fi

echo "$((cases - failures)) passed, $failures failed"
[ $failures -eq 0 ]
