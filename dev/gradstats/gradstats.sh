#!/usr/bin/env bash
# Gradient statistics that might tell how much rank a model needs (docs/ALGORITHM.md 4.2): the
# averaged gradient's signal-to-noise ratio in dense runs, and the PowerSGD error memory against
# the new gradient, per worker (2 workers) and for one worker with the 2 workers' batch (which
# runs the same arithmetic as the 2 workers' *mean* memory). The counters are not in the
# library: instrument.patch adds them, printed to stderr when EDGC_GRADSTATS is set, to a
# throw-away worktree at the commit it was written for; this tree's build is not touched.
#
# Usage (from the repository root, shared memory, about 17 min on 2 cores):
#   dev/gradstats/gradstats.sh [OUTDIR]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
base=9ee490cf7ac16f9e093d3ec5c7d34dc28e6ee6d3 # instrument.patch applies here
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
[ -f data/kjv.txt ] || make --no-print-directory data/kjv.txt >&2
work=$(mktemp -d)
trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/tree" "$base" >/dev/null
git -C "$work/tree" apply "$here/instrument.patch"
cmake -S "$work/tree" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGC_BUILD_TESTS=OFF \
    -DEDGC_BUILD_BENCH=OFF -DEDGC_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$work/build" -j "$(nproc)" --target edgc-train >/dev/null
t=$work/build/apps/edgc-train/edgc-train
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 GLIBC_TUNABLES=glibc.malloc.hugetlb=1 EDGC_GRADSTATS=1

# run NAME NP PRESET STEPS BATCH MODE: one run, its stderr in OUTDIR/NAME.txt
run() {
    local name=$1 np=$2 preset=$3 steps=$4 batch=$5 mode=$6
    echo "gradstats.sh: $name" >&2
    local cmd=("$t" --preset "$preset" --steps "$steps" --batch "$batch" --compress "$mode"
        --data "$PWD/data/kjv.txt" --eval-every 0 --sample-len 0 --hash-every 0 --print-every 1000)
    if [ "$np" = 1 ]; then
        "${cmd[@]}" >/dev/null 2>"$out/$name.txt"
    else
        mpirun -x OPENBLAS_NUM_THREADS -x GLIBC_TUNABLES -x EDGC_GRADSTATS -np "$np" "${cmd[@]}" \
            >/dev/null 2>"$out/$name.txt"
    fi
    specs+=("$name=$out/$name.txt")
}

specs=()
run "tiny, 2 workers, dense" 2 tiny 600 8 dense
run "mini, 2 workers, dense" 2 mini 300 4 dense
run "mini, 4 workers, dense" 4 mini 300 4 dense
echo "### The averaged gradient's signal-to-noise ratio (dense runs), median over each part"
echo
echo "| run | first tenth | second tenth | to the half | second half |"
echo "|---|---|---|---|---|"
python3 "$here/gradstats.py" "${specs[@]}"

specs=()
for r in 8 16 32; do run "tiny, 2 workers, powersgd:$r" 2 tiny 600 8 "powersgd:$r"; done
for r in 4 8 16; do run "mini, 2 workers, powersgd:$r" 2 mini 300 4 "powersgd:$r"; done
for r in 8 16 24 32; do run "tiny, 1 worker of batch 16, powersgd:$r" 1 tiny 600 16 "powersgd:$r"; done
for r in 4 8 16; do run "mini, 1 worker of batch 8, powersgd:$r" 1 mini 300 8 "powersgd:$r"; done
echo
echo "### The error memory against the new gradient"
echo
echo "| run | first tenth | second tenth | to the half | second half |"
echo "|---|---|---|---|---|"
python3 "$here/gradstats.py" "${specs[@]}"
