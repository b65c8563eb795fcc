#!/usr/bin/env python3
"""Summarise the GRADSTATS lines of runs of an instrumented edgc-train (dev/gradstats/gradstats.sh).

noise lines (dense runs): the averaged gradient's signal-to-noise ratio. With D workers, the
workers' spread about their mean gives the noise left in the mean:
    noise = (sum_i |G_i|^2 - D |G|^2) / (D (D - 1)),  snr = (|G|^2 - noise) / noise
memory lines (PowerSGD runs): the error memory against the new gradient, summed over the workers:
    e/g = sqrt(sum |e_i|^2 / sum |G_i|^2)
    withheld = sum <G_i, e_i> / sum <G_i, G_i of the step before>
(the second: how many steps' worth of the gradient's slowly moving part the memories hold back).
A file with memory lines gets only those: there the trainer's averaged gradient is PowerSGD's.
Each figure is taken over parts of the run: its first tenth, the second, up to the half, the rest.
"""
import collections
import statistics
import sys

PARTS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.5), (0.5, 1.0))


def parts(steps):
    n = len(steps)
    for a, b in PARTS:
        yield "%d-%d" % (int(a * n) + 1, int(b * n)), steps[int(a * n):max(int(b * n), int(a * n) + 1)]


def noise(rows):
    out = []
    for label, chunk in parts(rows):
        snr = []
        for d, local, mean2 in chunk:
            nz = (local - d * mean2) / (d * (d - 1))
            snr.append((mean2 - nz) / nz if nz > 0 else float("inf"))
        out.append("steps %s: snr %.2f" % (label, statistics.median(snr)))
    return out


def memory(by_step):
    steps = [by_step[s] for s in sorted(by_step)]
    out = []
    for label, chunk in parts(steps):
        ge, gg, ee, gp = (sum(c[j] for c in chunk) for j in range(4))
        out.append("steps %s: e/g %.2f, withheld %.2f" % (label, (ee / gg) ** 0.5, ge / gp if gp else float("nan")))
    return out


def summarise(path):
    nrows, mem = [], collections.defaultdict(lambda: [0.0] * 4)
    with open(path) as f:
        for line in f:
            w = line.split()
            if line.startswith("GRADSTATS noise ") and int(w[3]) > 1:
                nrows.append((int(w[3]), float(w[4]), float(w[5])))
            elif line.startswith("GRADSTATS memory "):
                for j, v in enumerate(w[5:9]):
                    mem[int(w[3])][j] += float(v)
    # a PowerSGD run's synchronised gradient is the compressed one: no noise estimate from it
    return memory(mem) if mem else noise(nrows) if nrows else []


def main(argv):
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print("usage: gradstats.py LABEL=STDERR_FILE ...\n\n" + __doc__.strip())
        return 0
    if len(argv) < 2:
        print("usage: gradstats.py LABEL=STDERR_FILE ... (see --help)", file=sys.stderr)
        return 2
    for spec in argv[1:]:
        label, _, path = spec.partition("=")
        try:
            lines = summarise(path)
        except OSError as e:
            print("gradstats.py: %s: %s" % (path, e.strerror), file=sys.stderr)
            return 1
        if not lines:
            print("gradstats.py: %s: no GRADSTATS lines" % path, file=sys.stderr)
            return 1
        print("| %s | %s |" % (label, " | ".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
