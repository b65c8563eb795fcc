#!/usr/bin/python3
"""How early, and how clearly, does the validation loss tell a low static rank from a high one?

Two static-rank runs of a converge group start from the same weights and see the same batches,
so they are a paired comparison that began at step 0: the relative gap of their validation losses
at step s is what comparing the two ranks over s steps would have measured. This prints, per
pair, the gap at every evaluation, the jitter of the gap from one evaluation to the next over
the second half of the run (the standard deviation of successive differences over sqrt 2: what
one evaluation's gap is off by; the first half is left out because the gaps' early transient is
not noise), and the first evaluation from which the gap stays above twice that jitter to the end
(docs/ALGORITHM.md 4.2, the last paragraphs).

Usage: dev/replay/loss_gaps.py [--dir docs/plots/converge] GROUP:LOW:HIGH ...
  e.g. tiny-100mbit-np2:8:32 mini-1gbit-np2:4:16
The logs read are DIR/GROUP-powersgd-LOW.jsonl and DIR/GROUP-powersgd-HIGH.jsonl.
"""
import argparse
import json
import math
import statistics
import sys


def val_losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row.get("val_loss") is not None:
                out[row["step"]] = row["val_loss"]
    return out


def gaps(low, high):
    """The relative gap (low - high) / high in percent at every step both runs evaluated."""
    return [(s, 100.0 * (low[s] - high[s]) / high[s]) for s in sorted(low) if s in high]


def jitter(series):
    """What one evaluation's value is off by: sd of successive differences / sqrt 2."""
    d = [b - a for (_, a), (_, b) in zip(series, series[1:])]
    return statistics.stdev(d) / math.sqrt(2.0) if len(d) >= 2 else math.nan


def settled_from(series, band):
    """The first step from which every gap is above band; None when the last one is not."""
    first = None
    for s, g in series:
        if g > band:
            first = s if first is None else first
        else:
            first = None
    return first


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="docs/plots/converge")
    ap.add_argument("pairs", nargs="+", metavar="GROUP:LOW:HIGH")
    args = ap.parse_args(argv)
    for spec in args.pairs:
        try:
            group, lo, hi = spec.rsplit(":", 2)
            lo, hi = int(lo), int(hi)
        except ValueError:
            ap.error(f"{spec}: expected GROUP:LOW:HIGH, e.g. tiny-100mbit-np2:8:32")
        paths = [f"{args.dir}/{group}-powersgd-{r}.jsonl" for r in (lo, hi)]
        try:
            series = gaps(*(val_losses(p) for p in paths))
        except OSError as e:
            sys.exit(f"loss_gaps: {e}")
        if len(series) < 6:
            sys.exit(f"loss_gaps: {spec}: fewer than 6 evaluations in common")
        n = len(series)
        j = jitter(series[n // 2:])
        thirds = [statistics.mean(g for _, g in series[k * n // 3:(k + 1) * n // 3])
                  for k in range(3)]
        first = settled_from(series, 2.0 * j)
        print(f"{group}: rank {lo} against {hi}, gap in % of the higher rank's loss")
        print("  " + " ".join(f"{s}:{g:+.2f}" for s, g in series))
        print(f"  mean by thirds of the run {thirds[0]:+.2f} {thirds[1]:+.2f} {thirds[2]:+.2f};"
              f" jitter {j:.2f}; above 2x jitter to the end from step "
              f"{first if first is not None else '- (never)'} of {series[-1][0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
