#!/usr/bin/env bash
# The decay rule's floor, side by side (docs/ALGORITHM.md 6.1): edgc from a given r_max down to
# several floors, against a static rank, on one emulated link, in rounds taken in turn. The
# losses of a given floor are the same bits in every round (no profile: --rmax is given); the
# rounds are there for the times. Prints one summary line per run and a table of medians.
#
# Usage (root, from the repository root, after building into build/):
#   dev/floor/floor.sh [LINK PRESET STEPS BATCH RMAX STATIC ROUNDS FLOORS...]
# defaults: 100mbit tiny 600 8 24 16 3 6 8 12 16
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
link=${1:-100mbit} preset=${2:-tiny} steps=${3:-600} batch=${4:-8} rmax=${5:-24}
static=${6:-16} rounds=${7:-3}
shift $(($# < 7 ? $# : 7))
floors=("$@")
[ ${#floors[@]} -gt 0 ] || floors=(6 8 12 16)
t=$PWD/build/apps/edgc-train/edgc-train
[ -x "$t" ] || { echo "floor.sh: build first (no $t)" >&2; exit 1; }
[ -f data/kjv.txt ] || make --no-print-directory data/kjv.txt >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 GLIBC_TUNABLES=glibc.malloc.hugetlb=1
out=$(mktemp -d)
trap 'scripts/netsim.sh down 2 >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
modes=("powersgd:$static")
for f in "${floors[@]}"; do modes+=("edgc --rmax $rmax --rmin $f"); done
scripts/netsim.sh up 2 "$link"
for ((r = 1; r <= rounds; r++)); do
    for m in "${modes[@]}"; do
        echo "floor.sh: round $r of $rounds: $m" >&2
        # shellcheck disable=SC2086 # $m is a mode plus its flags
        scripts/netsim.sh mpirun 2 "$t" --preset "$preset" --steps "$steps" --batch "$batch" \
            --compress $m --data "$PWD/data/kjv.txt" --eval-every 25 --eval-batches 8 \
            --sample-len 0 --hash-every 0 --print-every 100000 2>&1 |
            grep '^summary:' | sed "s|^|$m\t|" | tee -a "$out/summaries"
    done
done
echo
echo "$link, $preset, $steps steps of batch $batch, 2 ranks, $rounds rounds (median train s)"
python3 - "$out/summaries" "$static" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    mode, summary = line.rstrip("\n").split("\t")
    f = dict(kv.split("=") for kv in summary.split()[1:])
    runs.setdefault(mode, []).append(f)
base = statistics.median(float(f["train_s"]) for f in runs[f"powersgd:{sys.argv[2]}"])
print("| mode | final val loss | MB sent | train s (median) | vs static |")
print("|---|---|---|---|---|")
for mode, fs in runs.items():
    s = statistics.median(float(f["train_s"]) for f in fs)
    print(f"| {mode} | {fs[0]['val_loss']} | {fs[0]['sent_mb']} | {s:.1f} | {s / base:.2f} |")
PY
