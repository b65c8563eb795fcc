#!/usr/bin/env python3
"""The pipeline benchmark's table: per run (label=LOG, LOG being stage 0's --log and LOG.stageS the
later stages'), the steady-state iteration time and, per stage, its rank, sync time, backward time
per micro-batch and pipeline wait. Steady state: the second half of the run (after profiling and
warm-up), evaluation excluded (the logs' time_s excludes it)."""
import json
import statistics
import sys


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def steady(rows):
    return rows[len(rows) // 2:]


def main(specs):
    runs = []
    for spec in specs:
        label, log = spec.split("=", 1)
        stages, s = [], 0
        while True:
            path = log if s == 0 else f"{log}.stage{s}"
            try:
                stages.append(read(path))
            except FileNotFoundError:
                break
            s += 1
        runs.append((label, stages))
    dense_ms = None
    print("| run | ms / iteration | vs dense | final val loss | "
          + " | ".join(f"stage {s}: rank, sync ms, bwd ms/mb, wait ms" for s in range(len(runs[0][1])))
          + " |")
    print("|---|---|---|---|" + "---|" * len(runs[0][1]))
    for label, stages in runs:
        rows = steady(stages[0])
        it_ms = 1e3 * (rows[-1]["time_s"] - rows[0]["time_s"]) / (len(rows) - 1)
        if dense_ms is None:
            dense_ms = it_ms
        val = [r["val_loss"] for r in stages[0] if r["val_loss"] is not None][-1]
        cells = []
        for st in stages:
            rs = steady(st)
            ranks = sorted({r["rank"] for r in rs})
            rank = (str(ranks[0]) if len(ranks) == 1
                    else f"{statistics.median(r['rank'] for r in rs):g} ({ranks[0]}-{ranks[-1]})")
            if ranks == [0]:
                rank = "dense"
            cells.append(f"{rank}, {statistics.mean(r['sync_ms'] for r in rs):.1f}, "
                         f"{statistics.mean(r['bwd_mb_ms'] for r in rs):.1f}, "
                         f"{statistics.mean(r['wait_ms'] for r in rs):.1f}")
        print(f"| {label} | {it_ms:.0f} | {it_ms / dense_ms:.2f}x | {val:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
