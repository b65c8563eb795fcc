#!/usr/bin/env python3
"""Time to dense's quality over repeated runs, from edgc-train --log files.

    scripts/repeat_table.py --ref LABEL dense=RUN.jsonl LABEL=RUN1.jsonl,RUN2.jsonl,... ...

The first spec is dense's single run: its final validation loss + 1 % is the target. Every other
label lists one log per round; run i of every label belongs to round i (the modes took turns).
Per label it prints the time to target of each run, their median, the median over rounds of
the ratio to --ref's run of the same round (and the range), and, up to the step that reached the
target (median run), the time in sync and in forward, backward and optimizer: the first is what
the compression mode changes, the second moves with the machine's load. Standard library only.
"""
import argparse
import statistics
import sys

from converge_table import parse_runs, summarise


def until(rows, step, keys):
    return sum(sum(r[k] for k in keys) for r in rows if r["step"] <= step) / 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", required=True, help="the label the ratios are taken against")
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN.jsonl[,RUN.jsonl...]")
    a = ap.parse_args()
    specs = parse_runs(a.runs, "repeat_table", many=True)
    if not specs[0][0].startswith("dense") or len(specs[0][1]) != 1:
        sys.exit("repeat_table: the first spec must be dense with one run (it sets the target)")
    labels = [label for label, _ in specs[1:]]
    if a.ref not in labels:
        sys.exit(f"repeat_table: --ref {a.ref!r} is not one of {labels}")
    rounds = {len(runs) for _, runs in specs[1:]}
    if len(rounds) != 1:
        sys.exit("repeat_table: every label needs the same number of runs (one per round)")
    dense_final = [r for r in specs[0][1][0] if r.get("val_loss") is not None][-1]["val_loss"]
    target = dense_final * 1.01
    stats = {label: [(rows, summarise(rows, target)) for rows in runs] for label, runs in specs[1:]}
    ref = [s["reach_s"] for _, s in stats[a.ref]]

    print(f"Target: dense's final validation loss {dense_final:.4f} + 1 % = {target:.4f}; "
          f"{rounds.pop()} rounds.")
    print()
    print(f"| mode | time to target s, each round | median | vs {a.ref}, median (range) "
          "| final val loss | to target: sync s | to target: compute s |")
    print("|---|---|---|---|---|---|---|")
    for label in labels:
        runs = stats[label]
        times = [s["reach_s"] for _, s in runs]
        each = ", ".join(f"{t:.1f}" if t is not None else "not reached" for t in times)
        if any(t is None for t in times) or any(t is None for t in ref):
            print(f"| {label} | {each} | - | - | {runs[0][1]['final']:.4f} | - | - |")
            continue
        ratios = [t / r for t, r in zip(times, ref)]
        med = statistics.median(times)
        rows, s = min(runs, key=lambda x: abs(x[1]["reach_s"] - med))  # the median run
        sync = until(rows, s["reach_step"], ["sync_ms"])
        compute = until(rows, s["reach_step"], ["forward_ms", "backward_ms", "optimizer_ms"])
        print(f"| {label} | {each} | {med:.1f} | {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}) | {s['final']:.4f} | {sync:.1f} "
              f"| {compute:.1f} |")


if __name__ == "__main__":
    main()
