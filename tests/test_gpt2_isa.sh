#!/usr/bin/env bash
# gpt2.c's element-wise loops are built for several instruction sets, one chosen at load time
# (gpt2.c, WIDE_LOOPS). Every choice must give the same bits, or data-parallel ranks on different
# CPUs would drift apart: gpt2_digest built with every set, with AVX2 and baseline only, and with
# baseline alone must print the same digest of one forward and backward.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIGEST_BINARY..." >&2; exit 2; }
first=""
for bin in "$@"; do
    out=$("$bin")
    echo "$(basename "$bin"): $out"
    case "$out" in "loss "*" digest "*) ;; *) echo "FAIL: unexpected output" >&2; exit 1 ;; esac
    if [ -z "$first" ]; then
        first=$out
    elif [ "$out" != "$first" ]; then
        echo "FAIL: $(basename "$bin") differs from $(basename "$1")" >&2
        exit 1
    fi
done
echo "ok: $# builds agree"
