#!/usr/bin/env bash
# Runs every libFuzzer harness of a `make fuzz` build for SECONDS, all at the same time, starting
# from the seed corpus in tests/fuzz/corpus/ (new inputs go to BUILD/fuzz-corpus/, never into the
# repository). Prints executions and crashes per harness; exits non-zero if any harness crashed,
# with the crashing input in BUILD/fuzz-artifacts/ (replay it: BUILD/tests/fuzz/fuzz_NAME FILE).
#   scripts/fuzz.sh BUILD [SECONDS]      (default 60)
set -uo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "fuzz.sh: expected BUILD [SECONDS] (see --help)" >&2; exit 2; }
build=$1 secs=${2:-60}
case $secs in '' | *[!0-9]* | 0) echo "fuzz.sh: SECONDS '$secs': expected a positive whole number" >&2; exit 2 ;; esac
harnesses=(state_blob checkpoint token_shard)
for h in "${harnesses[@]}"; do # a missing harness is a build problem, not a crash
    [ -x "$build/tests/fuzz/fuzz_$h" ] ||
        { echo "fuzz.sh: no harness $build/tests/fuzz/fuzz_$h (build them with make fuzz)" >&2; exit 2; }
done
crashed=0
mkdir -p "$build/fuzz-artifacts"
# Side by side: SECONDS of wall time in all (one after another took three times as long).
pids=()
for h in "${harnesses[@]}"; do
    mkdir -p "$build/fuzz-corpus/$h"
    "$build/tests/fuzz/fuzz_$h" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$build/fuzz-artifacts/$h-" "$build/fuzz-corpus/$h" \
        "tests/fuzz/corpus/$h" >"$build/fuzz-$h.log" 2>&1 &
    pids+=($!)
done
for i in "${!harnesses[@]}"; do
    h=${harnesses[$i]}
    log="$build/fuzz-$h.log"
    wait "${pids[$i]}"
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    if [ $rc -ne 0 ]; then
        crashed=1
        echo "fuzz $h: CRASH after ${execs:-?} executions (exit $rc); see $log"
        grep -m 5 -E 'ERROR|SUMMARY|Test unit written' "$log" | sed 's/^/    /'
    else
        echo "fuzz $h: ${execs:-?} executions in ${secs}s, coverage ${cov:-?} edges, 0 crashes"
    fi
done
exit $crashed
