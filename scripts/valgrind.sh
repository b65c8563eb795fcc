#!/usr/bin/env bash
# Runs every unit-test binary under valgrind memcheck; fails on any error or leak.
set -euo pipefail
build=${1:-build}
status=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    case "$t" in *mpi*) continue ;; esac # MPI tests: see scripts/valgrind-mpi.sh
    if valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=9 "$t" >/dev/null 2>"$t.valgrind.log"; then
        echo "valgrind ok    $(basename "$t")"
    else
        echo "valgrind FAIL  $(basename "$t") (see $t.valgrind.log)"
        status=1
    fi
done
exit $status
