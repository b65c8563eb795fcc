#!/usr/bin/env python3
"""The pipeline benchmark's table: per setting (label=LOG[,LOG...], one LOG per repeated run, LOG
being stage 0's --log and LOG.stageS the later stages'), the steady-state iteration time (median
and range over the repeats) and, for the median run, per stage its rank, sync time, backward time
per micro-batch and pipeline wait. Steady state: the second half of the run (after profiling and
warm-up), evaluation excluded (the logs' time_s excludes it).

    scripts/pipeline_table.py LABEL=LOG[,LOG...] ...   (the first setting is dense: the reference)
"""
import argparse
import json
import os
import statistics
import sys


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def steady(rows):
    return rows[len(rows) // 2:]


def read_run(log):
    stages, s = [], 0
    while True:
        path = log if s == 0 else f"{log}.stage{s}"
        try:
            stages.append(read(path))
        except FileNotFoundError:
            break
        s += 1
    return stages


def iteration_ms(stages):
    rows = steady(stages[0])
    return 1e3 * (rows[-1]["time_s"] - rows[0]["time_s"]) / (len(rows) - 1)


def stage_cell(st):
    rs = steady(st)
    ranks = sorted({r["rank"] for r in rs})
    rank = (str(ranks[0]) if len(ranks) == 1
            else f"{statistics.median(r['rank'] for r in rs):g} ({ranks[0]}-{ranks[-1]})")
    if ranks == [0]:
        rank = "dense"
    return (f"{rank}, {statistics.mean(r['sync_ms'] for r in rs):.1f}, "
            f"{statistics.mean(r['bwd_mb_ms'] for r in rs):.1f}, "
            f"{statistics.mean(r['wait_ms'] for r in rs):.1f}")


def load_setting(spec):
    """(label, runs sorted by iteration time) from LABEL=LOG[,LOG...]; exits on a bad spec."""
    label, _, logs = spec.partition("=")
    if not label or not logs:
        sys.exit(f"pipeline_table: expected LABEL=LOG[,LOG...], got {spec!r}")
    runs = []
    for log in logs.split(","):
        if not os.path.isfile(log):
            sys.exit(f"pipeline_table: {label}: no log file {log!r}")
        stages = read_run(log)
        if any(len(steady(st)) < 2 for st in stages):
            sys.exit(f"pipeline_table: {label}: {log} has too few steps for a steady state")
        runs.append(stages)
    return label, sorted(runs, key=iteration_ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("settings", nargs="+", metavar="LABEL=LOG[,LOG...]")
    settings = [load_setting(spec) for spec in ap.parse_args().settings]
    n_stages = len(settings[0][1][0])
    for label, runs in settings:
        if any(len(run) != n_stages for run in runs):
            sys.exit(f"pipeline_table: {label}: every run needs {n_stages} stages, as the first")
    dense_ms = None
    checks = []
    print("| run | ms / iteration, median (range) | vs dense | final val loss | "
          + " | ".join(f"stage {s}: rank, sync ms, bwd ms/mb, wait ms" for s in range(n_stages))
          + " |")
    print("|---|---|---|---|" + "---|" * n_stages)
    for label, runs in settings:
        times = [iteration_ms(r) for r in runs]
        mid = runs[(len(runs) - 1) // 2]
        it_ms = times[(len(runs) - 1) // 2]
        if dense_ms is None:
            dense_ms = it_ms
        spread = f" ({times[0]:.0f}-{times[-1]:.0f})" if len(runs) > 1 else ""
        val = [r["val_loss"] for r in mid[0] if r["val_loss"] is not None][-1]
        cells = [stage_cell(st) for st in mid]
        print(f"| {label} | {it_ms:.0f}{spread} | {it_ms / dense_ms:.2f}x | {val:.4f} | "
              + " | ".join(cells) + " |")
        checks.extend(alignment(label, runs))
    print()
    for line in checks:
        print(line)


def alignment(label, runs):
    """Each later stage's logged window decisions, over all runs of a setting, against the
    alignment rule: dense exactly when the budget (stage 0's expected time + p t_mb) exceeds the
    stage's dense sync time. The logs carry the profiled dense time; the rule scales it by the
    stage's measured/predicted ratio, so a budget just above it may still buy a rank. The authors'
    rule (--wam paper) also goes dense when the budget buys more than r_max."""
    out = []
    for s in range(1, len(runs[0])):
        decided = [r for run in runs for r in run[s] if r.get("wam_budget_ms") is not None]
        if not decided:
            continue
        over = [r for r in decided if r["wam_budget_ms"] > r["dense_sync_ms"]]
        dense_over = sum(r["rank"] == 0 for r in over)
        dense_under = sum(r["rank"] == 0 for r in decided if r not in over)
        out.append(f"- {label}, stage {s}, {len(runs)} runs: {len(decided)} steps at a rank aligned "
                   f"on timings; budget above its dense time: {len(over)} (dense: {dense_over}); "
                   f"dense with a budget below it: {dense_under}")
    return out


if __name__ == "__main__":
    main()
