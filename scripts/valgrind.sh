#!/usr/bin/env bash
# Runs every unit-test binary under valgrind memcheck; fails on any error or leak, and when BUILD
# holds no test binaries (nothing checked is not a pass).
#   scripts/valgrind.sh [BUILD]      (default build)
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "valgrind.sh: expected [BUILD] (see --help)" >&2; exit 2; }
build=${1:-build}
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
status=0 checked=0 tests=() cores=$(nproc)
# As many tests at a time as there are cores (one at a time took about 8 min here); each
# test's exit status goes to a file, then the results are printed in order.
for t in "$build"/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    case "$t" in *mpi* | *.log | *.rc) continue ;; esac # MPI: below
    while [ "$(jobs -rp | wc -l)" -ge "$cores" ]; do wait -n || true; done
    rm -f "$t.valgrind.rc"
    (
        rc=0
        valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=9 "$t" >/dev/null 2>"$t.valgrind.log" || rc=$?
        echo "$rc" >"$t.valgrind.rc"
    ) &
    tests+=("$t")
done
wait
for t in "${tests[@]}"; do
    checked=$((checked + 1))
    if [ "$(cat "$t.valgrind.rc" 2>/dev/null)" = 0 ]; then
        echo "valgrind ok    $(basename "$t")"
    else
        echo "valgrind FAIL  $(basename "$t") (see $t.valgrind.log)"
        status=1
    fi
    rm -f "$t.valgrind.rc"
done
# The MPI reducer test on 2 ranks, with Open MPI's suppressions and one for libpmix.
mpi="$build/tests/test_reducer_mpi"
if [ -x "$mpi" ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    if mpirun -np 2 valgrind -q --error-exitcode=9 \
        --suppressions=/usr/share/openmpi/openmpi-valgrind.supp \
        --suppressions="$(dirname "$0")/../tests/valgrind-pmix.supp" "$mpi" >"$mpi.valgrind.log" 2>&1; then
        echo "valgrind ok    test_reducer_mpi (2 ranks)"
    else
        echo "valgrind FAIL  test_reducer_mpi (see $mpi.valgrind.log)"
        status=1
    fi
fi
if [ "$checked" -eq 0 ]; then
    echo "valgrind.sh: no test binaries in $build/tests (build them with make build)" >&2
    exit 2
fi
exit $status
