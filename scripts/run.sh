#!/usr/bin/env bash
# make run: trains the tiny GPT-2 on the King James Bible with EDGC's defaults. When root can
# create network namespaces, the ranks talk over an emulated link (LINK, default 100mbit: the
# slow network where compression pays); otherwise over shared memory, where EDGC measures that
# no rank pays and stays dense.
#   scripts/run.sh BUILD_DIR NP LINK TRAINER_FLAGS...     (LINK: 100mbit, 1gbit, ... or shm)
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ $# -ge 3 ] || { echo "run.sh: expected BUILD_DIR NP LINK [TRAINER_FLAGS...] (see --help)" >&2; exit 2; }
cd "$(dirname "$0")/.."
build=$1 np=$2 link=$3
case $np in '' | *[!0-9]* | 0) echo "run.sh: NP '$np': expected a positive whole number" >&2; exit 2 ;; esac
[ -x "$build/apps/edgc-train/edgc-train" ] ||
    { echo "run.sh: no trainer in $build (build it with make build)" >&2; exit 2; }
shift 3
train=("$PWD/$build/apps/edgc-train/edgc-train" "$@" --data "$PWD/data/kjv.txt"
    --log "$PWD/out/run.jsonl" --out "$PWD/out/run")
mkdir -p out
rm -rf out/run.jsonl out/run # each make run starts afresh (its checkpoints go to out/run/)

if [ "$link" != shm ] && [ "$(id -u)" -eq 0 ] && ip netns add edgc-probe 2>/dev/null; then
    ip netns del edgc-probe
    scripts/netsim.sh up "$np" "$link"
    trap 'scripts/netsim.sh down "$np"' EXIT
    echo "make run: $np ranks in network namespaces over an emulated $link link (scripts/netsim.sh)"
    scripts/netsim.sh mpirun "$np" "${train[@]}"
else
    [ "$link" = shm ] || echo "make run: cannot create network namespaces here (needs root):" \
        "running over shared memory, where compression does not pay"
    mpirun -np "$np" -x OPENBLAS_NUM_THREADS -x GLIBC_TUNABLES "${train[@]}"
fi
