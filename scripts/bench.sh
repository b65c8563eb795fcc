#!/usr/bin/env bash
# Runs the benchmarks and writes their figures, with the command that reproduces them, to
# docs/bench/<name>.md; then assembles docs/BENCHMARKS.md from those sections.
#   scripts/bench.sh [BUILD_DIR] [core ...]     (default: every benchmark that exists)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
which=${*:-core sync}
mkdir -p docs/bench

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}

machine() {
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
        "$(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)," \
        "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
}

section() { # name, command...
    local name=$1
    shift
    local out="docs/bench/$name.md" tmp
    tmp=$(mktemp)
    echo "bench: $name: $*" >&2
    {
        echo "## $name"
        echo
        echo "Measured $(date -u +%Y-%m-%d) on $(machine)."
        if [ "$1" = sync_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build sync\` (root: it creates network namespaces)"
        else
            echo "Reproduce with: \`OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS GLIBC_TUNABLES=$GLIBC_TUNABLES $*\`"
        fi
        echo
        "$@"
    } >"$tmp"
    mv "$tmp" "$out"
}

sync_table() { # the shared-memory and network runs of bench_sync, one table
    local mpi="mpirun -x OPENBLAS_NUM_THREADS -x GLIBC_TUNABLES"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    echo "Time per synchronisation step (barrier, reducer step, slowest rank), mean over the timed"
    echo "steps after untimed warm-up steps; bytes are what one rank put into allreduces per step."
    echo "edgc profiles r_max from step 0 (no warm-up) and is timed over its first compressed steps."
    echo "Network rows: one rank per network namespace, TCP through a veth shaped with tbf"
    echo "(\`scripts/netsim.sh\`); shm rows: Open MPI shared memory on 2 cores."
    echo
    echo "| link | layout | floats | mode | ms/step | MB sent/step | time vs dense | bytes vs dense |"
    echo "|---|---|---|---|---|---|---|---|"
    local b="$build/bench/bench_sync"
    for np in 2 4; do
        $mpi -np $np "$b" --layout tiny --label "shm np=$np"
        $mpi -np $np "$b" --layout gpt2 --label "shm np=$np" --steps 3
    done
    for np in 2 4; do
        scripts/netsim.sh up $np 1gbit
        scripts/netsim.sh mpirun $np "$b" --layout tiny --label "1 Gbit/s np=$np"
        scripts/netsim.sh mpirun $np "$b" --layout gpt2 --label "1 Gbit/s np=$np" --steps 3 --warmup 1
        scripts/netsim.sh down $np
    done
    scripts/netsim.sh up 2 100mbit
    scripts/netsim.sh mpirun 2 "$b" --layout tiny --label "100 Mbit/s np=2"
    scripts/netsim.sh mpirun 2 "$b" --layout gpt2 --label "100 Mbit/s np=2" --steps 1 --warmup 1 \
        --modes dense,powersgd:8,edgc
    scripts/netsim.sh down 2
}

for w in $which; do
    case "$w" in
    core) section core "$build/bench/bench_core" ;;
    sync) section sync sync_table ;;
    *) echo "bench: unknown benchmark '$w'" >&2; exit 2 ;;
    esac
done

{
    echo "# Benchmarks"
    echo
    echo "Figures in each section were measured side by side in one run of the command shown;"
    echo "this machine is shared and noisy (about +-30 % between runs), so compare within a"
    echo "section, not across sections or runs. Regenerate with \`make bench\`."
    echo
    for f in docs/bench/*.md; do
        cat "$f"
        echo
    done
} >docs/BENCHMARKS.md
echo "bench: wrote docs/BENCHMARKS.md" >&2
