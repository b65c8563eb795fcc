#!/usr/bin/env bash
# Draws loss, rank and entropy against step from edgc-train --log files, several runs per chart.
#   scripts/plot.sh [-o OUTDIR] RUN1.jsonl [RUN2.jsonl ...]
# Writes OUTDIR/loss.png, OUTDIR/rank.png, OUTDIR/entropy.png (default OUTDIR: .). Needs gnuplot.
set -euo pipefail
out=.
if [ "${1:-}" = -o ]; then out=$2; shift 2; fi
if [ $# -lt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    sed -n '2,4p' "$0" | sed 's/^# //'
    [ $# -lt 1 ] && exit 2 || exit 0
fi
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is not installed" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One whitespace table per run: step loss val_loss rank entropy ("NaN" where absent).
i=0
for f in "$@"; do
    [ -r "$f" ] || { echo "plot.sh: cannot read $f" >&2; exit 1; }
    awk '
        function get(k,   m) {
            if (match($0, "\"" k "\":[^,}]*")) { m = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3);
                gsub(/"/, "", m); return (m == "null" ? "NaN" : m) }
            return "NaN"
        }
        { print get("step"), get("loss"), get("val_loss"), get("rank"), get("entropy") }
    ' "$f" >"$tmp/$i.dat"
    i=$((i + 1))
done

chart() { # file title ylabel column [points]
    local png=$1 title=$2 ylabel=$3 col=$4 style=${5:-lines}
    local plots="" j=0
    for name in "${runs[@]}"; do
        [ -n "$plots" ] && plots="$plots, "
        plots="$plots'$tmp/$j.dat' using 1:$col with $style title '$name'"
        j=$((j + 1))
    done
    gnuplot -e "set terminal pngcairo size 800,450; set output '$out/$png'; set title '$title';
                set xlabel 'step'; set ylabel '$ylabel'; set key outside right; set grid;
                set datafile missing 'NaN'; plot $plots"
}
runs=()
for f in "$@"; do runs+=("$(basename "$f" .jsonl)"); done
chart loss.png "training loss" "loss (nats)" 2
chart val_loss.png "validation loss" "loss (nats)" 3 linespoints
chart rank.png "compression rank (0 = dense)" "rank" 4 steps
chart entropy.png "gradient entropy (GDS samples)" "entropy (nats)" 5 points
echo "plot.sh: wrote $out/loss.png $out/val_loss.png $out/rank.png $out/entropy.png"
