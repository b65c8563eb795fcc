#!/usr/bin/env python3
"""Time-to-quality table and plots from edgc-train --log files of one benchmark group.

    scripts/converge_table.py --plots DIR --name NAME LABEL=RUN.jsonl ...

The first run must be dense: its final validation loss + 1 % is the target. For each run it
prints one markdown row: training time (evaluation excluded) at the first evaluation that reaches
the target, that time against dense's and against the best static PowerSGD rank's, final
validation loss, bytes sent, the bytes against the cheapest static rank that ends at the same
validation loss or lower (issue 7's "fewer bytes than the static rank of the same loss"), and the
share of the step spent in sync. It writes
DIR/NAME-time.png and DIR/NAME-bytes.png (validation loss against training time and against MB
sent) with gnuplot when it is installed. Standard library only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    if not rows:
        sys.exit(f"converge_table: {path} has no steps")
    return rows


def parse_runs(specs, prog, many=False):
    """[(label, [rows of each log])] from LABEL=RUN.jsonl specs (many: RUN.jsonl,RUN.jsonl...)."""
    out = []
    for spec in specs:
        label, _, paths = spec.partition("=")
        if not paths:
            sys.exit(f"{prog}: expected LABEL=RUN.jsonl{'[,...]' if many else ''}, got {spec!r}")
        paths = paths.split(",") if many else [paths]
        for p in paths:
            if not os.path.isfile(p):
                sys.exit(f"{prog}: {label}: no log file {p!r}")
        out.append((label, [load(p) for p in paths]))
    return out


def summarise(rows, target):
    evals = [r for r in rows if r.get("val_loss") is not None]
    reach = next((r for r in evals if r["val_loss"] <= target), None)
    sync = sum(r["sync_ms"] for r in rows)
    step = sum(r["sync_ms"] + r["forward_ms"] + r["backward_ms"] + r["optimizer_ms"] for r in rows)
    ranks = sorted({r["rank"] for r in rows if r["phase"] != "profile"})
    return {
        "reach_s": reach["time_s"] if reach else None,
        "reach_step": reach["step"] if reach else None,
        "final": evals[-1]["val_loss"],
        "mb": rows[-1]["total_sent"] / 1e6,
        "dense_mb": sum(r["bytes_dense"] for r in rows) / 1e6,
        "sync_share": sync / step if step > 0 else 0.0,
        "train_s": rows[-1]["time_s"],
        "ranks": ranks,
        "evals": evals,
    }


def vs_same_loss(label, s, stats):
    """MB sent against the cheapest static rank whose final loss is at most this run's, as
    'RATIO (LABEL)'; when every static rank ends higher, against the one that ends lowest."""
    static = [(lb, x) for lb, x in stats if lb.startswith("powersgd")]
    if label.startswith("powersgd") or label.startswith("dense") or not static:
        return "-"
    good = [(x["mb"], lb) for lb, x in static if x["final"] <= s["final"]]
    if good:
        mb, lb = min(good)
        return f"{s['mb'] / mb:.2f} ({lb})"
    lb, x = min(static, key=lambda t: t[1]["final"])
    return f"{s['mb'] / x['mb']:.2f} ({lb}, whose loss is higher)"


def fmt_ranks(ranks):
    if not ranks:
        return "-"
    if len(ranks) == 1:
        return str(ranks[0])
    return f"{ranks[0]}-{ranks[-1]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plots", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN.jsonl")
    a = ap.parse_args()
    runs = [(label, logs[0]) for label, logs in parse_runs(a.runs, "converge_table")]
    if not runs[0][0].startswith("dense"):
        sys.exit("converge_table: the first run must be dense (it sets the target)")
    dense_final = [r for r in runs[0][1] if r.get("val_loss") is not None][-1]["val_loss"]
    target = dense_final * 1.01
    stats = [(label, summarise(rows, target)) for label, rows in runs]
    dense = stats[0][1]
    static = [s["reach_s"] for label, s in stats if label.startswith("powersgd") and s["reach_s"]]
    best_static = min(static) if static else None

    print(f"Target: dense's final validation loss {dense_final:.4f} + 1 % = {target:.4f}.")
    print()
    print("| mode | ranks used | time to target s | vs dense | vs best static | final val loss "
          "| vs dense | MB sent | vs dense bytes | bytes vs static of its loss | sync share | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def ratio(x, y):
        return f"{x / y:.2f}" if x is not None and y else "-"

    for label, s in stats:
        reach = f"{s['reach_s']:.1f} (step {s['reach_step']})" if s["reach_s"] is not None \
            else "not reached"
        print(f"| {label} | {fmt_ranks(s['ranks'])} | {reach} | {ratio(s['reach_s'], dense['reach_s'])} "
              f"| {ratio(s['reach_s'], best_static)} | {s['final']:.4f} "
              f"| {100 * (s['final'] - dense_final) / dense_final:+.2f} % | {s['mb']:.1f} "
              f"| {s['mb'] / dense['mb']:.3f} | {vs_same_loss(label, s, stats)} "
              f"| {100 * s['sync_share']:.0f} % | {s['train_s']:.1f} |")

    if shutil.which("gnuplot") is None:
        return
    os.makedirs(a.plots, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cols = []
        for i, (label, rows) in enumerate(runs):
            path = os.path.join(tmp, f"{i}.dat")
            with open(path, "w") as f:
                for r in rows:
                    if r.get("val_loss") is not None:
                        f.write(f"{r['time_s']} {r['total_sent'] / 1e6} {r['val_loss']}\n")
            cols.append((path, label))
        for kind, col, xlabel in (("time", 1, "training time (s, evaluation excluded)"),
                                  ("bytes", 2, "MB sent per rank")):
            plots = ", ".join(f"'{p}' using {col}:3 with linespoints title '{l}'" for p, l in cols)
            script = (f"set terminal pngcairo size 900,500; set output '{a.plots}/{a.name}-{kind}.png';"
                      f"set title 'validation loss, {a.name}'; set xlabel '{xlabel}';"
                      f"set ylabel 'loss (nats)'; set key outside right; set grid;"
                      f"set yrange [:{dense_final * 1.25}];"
                      f"set arrow from graph 0, first {target} to graph 1, first {target} nohead dt 2;"
                      f"plot {plots}")
            subprocess.run(["gnuplot", "-e", script], check=True)


if __name__ == "__main__":
    main()
