#!/usr/bin/env bash
# Runs the benchmarks and writes their figures, with the command that reproduces them, to
# docs/bench/<name>.md; then assembles docs/BENCHMARKS.md from those sections.
#   scripts/bench.sh [BUILD_DIR] [core ...]     (default: every benchmark that exists)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
which=${*:-core}
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
        echo "Reproduce with: \`OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS GLIBC_TUNABLES=$GLIBC_TUNABLES $*\`"
        echo
        "$@"
    } >"$tmp"
    mv "$tmp" "$out"
}

for w in $which; do
    case "$w" in
    core) section core "$build/bench/bench_core" ;;
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
