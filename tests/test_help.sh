#!/usr/bin/env bash
# Every program a user may run answers --help (exit 0, its own name in the text, on stdout) and
# refuses a bad command line with exit 2 before doing anything: the scripts in scripts/ and dev/,
# the Python tools, and the built benchmarks and examples (edgc-train: test_cli.sh).
#   tests/test_help.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
failures=0 cases=0

fail() {
    echo "FAIL $*"
    sed 's/^/    /' "$work/err" | head -5
    failures=$((failures + 1))
}

# help NAME PROGRAM...: exit 0 within 60 s, NAME in what it prints on stdout
help() {
    local name=$1
    shift
    cases=$((cases + 1))
    (cd "$work" && timeout 60 "$@" --help) >"$work/out" 2>"$work/err"
    local rc=$?
    if [ $rc -ne 0 ] && grep -q 'ModuleNotFoundError' "$work/err"; then
        echo "skip $name --help: $(grep -m1 ModuleNotFoundError "$work/err")"
        cases=$((cases - 1))
    elif [ $rc -ne 0 ] || ! grep -q -- "$name" "$work/out"; then
        fail "$name --help: exit $rc, $(wc -c <"$work/out") bytes on stdout"
    else
        echo "ok   $name --help"
    fi
}

# refuse NAME WORDS PROGRAM ARGS...: exit 2 within 60 s, WORDS in its stderr
refuse() {
    local name=$1 words=$2
    shift 2
    cases=$((cases + 1))
    timeout 60 "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    if [ $rc -ne 2 ] || ! grep -q -- "$words" "$work/err"; then
        fail "$name: exit $rc (wanted 2 and '$words')"
    else
        echo "ok   $name: $(grep -m1 -- "$words" "$work/err")"
    fi
}

cd "$src" || exit 1
while IFS= read -r f; do
    help "$(basename "$f")" bash "$src/$f"
done < <(find scripts dev -name '*.sh' | sort)
while IFS= read -r f; do
    help "$(basename "$f")" /usr/bin/python3 "$src/$f"
done < <(find scripts dev bench examples -name '*.py' | sort)
for p in bench/bench_core bench/bench_adamw bench/bench_sync examples/example_powersgd \
    dev/linkprobe/edgc-linkprobe; do
    if [ -x "$build/$p" ]; then help "$(basename "$p")" "$build/$p"; else echo "skip $p: not built"; fi
done

# bad command lines: refused before anything runs, installs, deletes or builds
refuse "install-deps.sh with an argument" "takes no arguments" bash scripts/install-deps.sh now
refuse "bench.sh with an unknown benchmark" "unknown benchmark 'cor'" bash scripts/bench.sh "$build" cor
refuse "bench.sh without a build" "no build directory" bash scripts/bench.sh "$work/nobuild" core
refuse "run.sh without arguments" "expected BUILD_DIR NP LINK" bash scripts/run.sh
refuse "run.sh with NP 0" "NP '0'" bash scripts/run.sh "$build" 0 shm
refuse "fuzz.sh without harnesses" "build them with make fuzz" bash scripts/fuzz.sh "$work" 1
refuse "fuzz.sh with SECONDS x" "SECONDS 'x'" bash scripts/fuzz.sh "$build" x
refuse "netsim.sh with an unknown command" "usage" bash scripts/netsim.sh sideways 2
refuse "netsim.sh with N x" "N 'x'" bash scripts/netsim.sh up x 1gbit
refuse "netsim.sh with RATE bogus" "RATE 'bogus'" bash scripts/netsim.sh up 2 bogus
if command -v valgrind >/dev/null; then
    refuse "valgrind.sh on a folder without tests" "no test binaries" bash scripts/valgrind.sh "$work"
fi
# soak.sh clears OUT only once its arguments are good: an earlier soak's results survive a typo
mkdir -p "$work/soak" && echo keep >"$work/soak/rss.tsv"
refuse "soak.sh without a trainer" "no trainer" bash scripts/soak.sh "$work/nobuild" 10 "$work/soak"
refuse "soak.sh with STEPS abc" "STEPS 'abc'" bash scripts/soak.sh "$build" abc "$work/soak"
cases=$((cases + 1))
if [ "$(cat "$work/soak/rss.tsv" 2>/dev/null)" = keep ]; then echo "ok   soak.sh kept OUT"; else
    fail "soak.sh deleted OUT on a bad command line"
fi
if [ -x "$build/bench/bench_adamw" ]; then
    refuse "bench_adamw with threads x" "expected up to 8 thread counts" "$build/bench/bench_adamw" x
    refuse "bench_adamw with 0 threads" "expected up to 8 thread counts" "$build/bench/bench_adamw" 0
fi
if [ -x "$build/examples/example_powersgd" ]; then
    refuse "example_powersgd with an argument" "no arguments" "$build/examples/example_powersgd" x
fi

echo "$((cases - failures)) of $cases cases ok"
[ $failures -eq 0 ]
