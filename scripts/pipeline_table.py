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
    checks = []
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
        checks.extend(alignment(label, stages))
    print()
    for line in checks:
        print(line)


def alignment(label, stages):
    """Each later stage's logged window decisions against the alignment rule: dense exactly when
    the budget (stage 0's predicted time + p t_mb) exceeds the stage's own dense sync time. The
    authors' rule (--wam paper) also goes dense when the budget buys more than r_max."""
    out = []
    for s, rows in enumerate(stages[1:], start=1):
        decided = [r for r in rows if r.get("wam_budget_ms") is not None]
        if not decided:
            continue
        over = [r for r in decided if r["wam_budget_ms"] > r["dense_sync_ms"]]
        dense_over = sum(r["rank"] == 0 for r in over)
        dense_under = sum(r["rank"] == 0 for r in decided if r not in over)
        out.append(f"- {label}, stage {s}: {len(decided)} steps at a rank aligned on timings; "
                   f"budget above its dense time: {len(over)} (dense: {dense_over}); "
                   f"dense with a budget below it: {dense_under}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
