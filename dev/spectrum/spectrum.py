#!/usr/bin/python3
"""How much of a gradient's energy its best rank-r approximation keeps, per dumped step.

Reads the files `edgc-train --dump-grads DIR --dump-steps LIST` writes (DIR/layout.txt and
DIR/grad-SSSSSSSS.f32) and prints, for every run of consecutive dumped steps, the fraction of
each matrix's squared Frobenius norm in its top r singular values (Eckart-Young: the least error
any rank-r compression can have), for the ranks asked:

  weighted   sum over matrices of captured energy / total energy (the big gradients dominate);
  mean, min  the per-matrix fractions averaged, and the worst matrix;
  adam       the mean again, after dividing each element by its RMS over the run of steps
             (a stand-in for Adam's second moment, which rescales every element): shown for the
             run's middle step when the run has at least 2 steps.

With --signal it prints instead, for every run of at least 3 steps, how many directions of each
matrix carry signal rather than batch noise: the singular values of the run's mean gradient
above the Marchenko-Pastur edge of its noise, sigma (sqrt(rows) + sqrt(cols)) / sqrt(T), where
sigma^2 is the per-element variance of the T steps about their mean (a pure-noise matrix has no
singular value above that edge). Mean and max over matrices, raw and Adam-scaled.

Needs numpy (Debian's python3-numpy). docs/ALGORITHM.md 4.2 reports what it showed.
"""
import argparse
import os
import re
import sys

import numpy as np


def read_layout(d, suffix=""):
    path = os.path.join(d, "layout%s.txt" % suffix)
    try:
        f = open(path)
    except OSError as e:
        raise SystemExit("spectrum: %s: %s" % (path, e.strerror))
    with f:
        head = f.readline()
        m = re.search(r"total (\d+)", head)
        if not m:
            raise SystemExit("spectrum: %s: not a --dump-grads layout" % path)
        mats = []
        for line in f:
            off, rows, cols = (int(x) for x in line.split())
            if rows >= 2 and cols >= 2:
                mats.append((off, rows, cols))
    return int(m.group(1)), mats


def fractions(g, mats, ranks):
    """Per matrix: (energy, [captured fraction at each rank])."""
    out = []
    for off, rows, cols in mats:
        s2 = np.linalg.svd(g[off:off + rows * cols].reshape(rows, cols).astype(np.float64),
                           compute_uv=False) ** 2
        total = s2.sum()
        cum = np.cumsum(s2) / total if total > 0 else np.ones_like(s2)
        out.append((total, [cum[min(r, len(s2)) - 1] for r in ranks]))
    return out


def signal_rank(gs, off, rows, cols):
    """Singular values of the steps' mean above the Marchenko-Pastur edge of their spread."""
    x = np.stack([g[off:off + rows * cols] for g in gs]).astype(np.float64)
    mean = x.mean(0)
    sigma = np.sqrt(((x - mean) ** 2).sum() / ((len(gs) - 1) * rows * cols))
    edge = sigma * (np.sqrt(rows) + np.sqrt(cols)) / np.sqrt(len(gs))
    s = np.linalg.svd(mean.reshape(rows, cols), compute_uv=False)
    return int((s > edge).sum())


def print_signal(runs, load, mats):
    print("%d matrices; directions above the noise edge of each run's mean gradient" % len(mats))
    print("%-8s %-6s %-9s %-9s %-9s %-9s" % ("step", "steps", "mean", "max", "adam-mean",
                                             "adam-max"))
    for run in runs:
        if len(run) < 3:
            continue
        gs = [load(s) for s in run]
        rms = np.sqrt(np.mean(np.stack(gs).astype(np.float64) ** 2, axis=0)) + 1e-30
        raw = [signal_rank(gs, *m) for m in mats]
        adam = [signal_rank([g / rms for g in gs], *m) for m in mats]
        print("%-8d %-6d %-9.2f %-9d %-9.2f %-9d" % (run[0], len(run), np.mean(raw), max(raw),
                                                     np.mean(adam), max(adam)))


def summarise(fr):
    energy = np.array([e for e, _ in fr])
    f = np.array([x for _, x in fr])
    weighted = (energy[:, None] * f).sum(0) / max(energy.sum(), 1e-300)
    return weighted, f.mean(0), f.min(0)


def runs_of_steps(steps):
    runs, cur = [], []
    for s in steps:
        if cur and s != cur[-1] + 1:
            runs.append(cur)
            cur = []
        cur.append(s)
    if cur:
        runs.append(cur)
    return runs


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="the --dump-grads directory")
    ap.add_argument("--ranks", default="4,8,16,24,32",
                    help="comma-separated ranks (default 4,8,16,24,32)")
    ap.add_argument("--stage", type=int, default=None, help="pipeline stage (its .stageS files)")
    ap.add_argument("--signal", action="store_true",
                    help="count the directions above the noise edge instead (runs of >= 3 steps)")
    a = ap.parse_args(argv)
    try:
        ranks = [int(r) for r in a.ranks.split(",")]
    except ValueError:
        ranks = []
    if not ranks or min(ranks) < 1:
        raise SystemExit("spectrum: --ranks %s: expected positive integers like 4,8,16" % a.ranks)
    suffix = "" if a.stage is None else ".stage%d" % a.stage
    total, mats = read_layout(a.dir, suffix)
    pat = re.compile(r"grad-(\d{8})%s\.f32$" % re.escape(suffix))
    steps = sorted(int(m.group(1)) for m in map(pat.match, os.listdir(a.dir)) if m)
    if not steps:
        raise SystemExit("spectrum: no grad-*%s.f32 files in %s" % (suffix, a.dir))

    def load(step):
        path = os.path.join(a.dir, "grad-%08d%s.f32" % (step, suffix))
        g = np.fromfile(path, dtype=np.float32)
        if g.size != total:
            raise SystemExit("spectrum: %s: %d floats, the layout says %d" % (path, g.size, total))
        return g

    if a.signal:
        print_signal(runs_of_steps(steps), load, mats)
        return
    print("%d matrices; captured energy at ranks %s" % (len(mats), ", ".join(map(str, ranks))))
    cols = " ".join("r%-5d" % r for r in ranks)
    print("%-8s %-9s %s" % ("step", "measure", cols))
    for run in runs_of_steps(steps):
        gs = [load(s) for s in run]
        rows = zip(("weighted", "mean", "min"), summarise(fractions(gs[0], mats, ranks)))
        for name, v in rows:
            print("%-8d %-9s %s" % (run[0], name, " ".join("%.4f" % x for x in v)))
        if len(run) >= 2:
            mid = len(run) // 2
            rms = np.sqrt(np.mean(np.stack(gs).astype(np.float64) ** 2, axis=0)) + 1e-30
            _, mean, _ = summarise(fractions(gs[mid] / rms, mats, ranks))
            print("%-8d %-9s %s" % (run[mid], "adam", " ".join("%.4f" % x for x in mean)))


if __name__ == "__main__":
    main(sys.argv[1:])
