#!/usr/bin/env bash
# Soak run: 2 ranks of the tiny preset for STEPS steps with EDGC (r_max 16 given, so that shared
# memory compresses too and the rank moves), checkpointing every 1000 steps,
# sampling each rank's resident memory (VmRSS) every 10 s. Prints RSS after the first sample and
# at the end, and the growth; the samples go to OUT/rss.tsv.
#   scripts/soak.sh BUILD [STEPS] [OUT]      (default 20000 steps, out/soak)
set -euo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ $# -ge 1 ] && [ $# -le 3 ] || { echo "soak.sh: expected BUILD [STEPS] [OUT] (see --help)" >&2; exit 2; }
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
build=$1 steps=${2:-20000} out=${3:-out/soak}
train="$build/apps/edgc-train/edgc-train"
case $steps in '' | *[!0-9]* | 0) echo "soak: STEPS '$steps': expected a positive whole number" >&2; exit 2 ;; esac
# checked before OUT is cleared, so a mistyped command loses no earlier soak's results
[ -x "$train" ] || { echo "soak: no trainer in $build (build it with make build)" >&2; exit 2; }
[ -f data/kjv.txt ] || { echo "soak: data/kjv.txt missing (make data)" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
mpirun -np 2 -x OPENBLAS_NUM_THREADS=1 -x GLIBC_TUNABLES "$train" --preset tiny --batch 2 \
    --steps "$steps" --compress edgc --rmax 16 --checkpoint-every 1000 --eval-every 2000 --print-every 1000 \
    --sample-len 0 --out "$out/ckpt" >"$out/train.log" 2>&1 &
job=$!
printf 't_s\tpid\trss_kb\n' >"$out/rss.tsv"
t0=$(date +%s)
while kill -0 "$job" 2>/dev/null; do
    for p in $(pgrep -f "$out/ckpt" | grep -v "^$job$"); do
        rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        [ -n "$rss" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = edgc-train ] &&
            printf '%d\t%d\t%d\n' $(($(date +%s) - t0)) "$p" "$rss" >>"$out/rss.tsv"
    done
    sleep 10
done
wait "$job"
tail -4 "$out/train.log"
awk 'NR > 1 { if (!($2 in first)) first[$2] = $3; last[$2] = $3; t = $1 }
     END { for (p in first) printf "rank pid %d: RSS %.1f MB at the first sample, %.1f MB after %d s (%+.1f MB)\n",
           p, first[p] / 1024, last[p] / 1024, t, (last[p] - first[p]) / 1024 }' "$out/rss.tsv"
