#!/usr/bin/python3
"""Replays the budget rule over the profiles that converge runs logged, with and without the
link estimate of a dense step's cost (docs/ALGORITHM.md 4.2).

Reads every version in git history of docs/plots/converge/*edgc*.jsonl (identical files
counted once), keeps the profiles of the current schedule (one settling step, four dense
samples, four steps per rank with the first dropped) and prints, per link and model, how many
profiles give each r_max when the line is drawn from the fastest dense sample and when it is
drawn from min(fastest sample, link estimate). Rows of the paper rule are left out. The compute
time is the logged forward + backward + optimizer time, a close stand-in for what the
controller measures between synchronisations.

Usage: dev/replay/replay_profiles.py [--repo DIR] [--slack 0.25] [--verbose]
"""
import argparse
import collections
import json
import math
import statistics
import subprocess


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                          check=True).stdout


def profiles(repo):
    seen = set()
    for commit in git(repo, "log", "--format=%h", "--", "docs/plots/converge").split():
        for path in git(repo, "ls-tree", "--name-only", commit, "docs/plots/converge/").split():
            name = path.rsplit("/", 1)[-1]
            if ("edgc" not in name or "pipeline" in name or "paper" in name
                    or not name.endswith(".jsonl")):
                continue
            blob = git(repo, "rev-parse", f"{commit}:{path}").strip()
            if blob in seen:
                continue
            seen.add(blob)
            rows = [json.loads(l) for l in git(repo, "show", f"{commit}:{path}").splitlines()
                    if l.strip()]
            prof = []
            for r in rows:
                if r["phase"] != "profile":
                    if prof:
                        break
                    continue
                prof.append(r)
            if len(prof) > 5 and all(r["rank"] == 0 for r in prof[:5]) and prof[5]["rank"]:
                yield commit, name, prof, rows[0]["bytes_dense"]


def budget(ranks, ms, dense, compute, slack, min_saving=0.05):
    best = min(compute + m for m in ms)
    line = best + slack * (compute + dense - best)
    r = 0
    for rank, m in zip(ranks, ms):
        if compute + m > line:
            break
        r = rank
    return 0 if best > (1 - min_saving) * (compute + dense) else r


def link_dense(ranks, sent, ms, dense_sent):
    if len(ranks) < 4:
        return math.inf
    est = []
    for i in range(len(ranks) - 3, len(ranks)):
        dt, df = ms[i] - ms[i - 1], sent[i] - sent[i - 1]
        est.append(ms[i] + (dense_sent - sent[i]) * dt / df if dt > 0 and df > 0 else math.inf)
    return sorted(est)[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", default=".")
    ap.add_argument("--slack", type=float, default=0.25)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    table = collections.defaultdict(lambda: [collections.Counter(), collections.Counter()])
    for commit, name, prof, dense_sent in profiles(a.repo):
        groups = collections.OrderedDict()
        for r in prof[5:]:
            groups.setdefault(r["rank"], []).append(r)
        if any(len(g) != 4 for g in groups.values()):
            continue
        ranks = list(groups)
        ms = [statistics.median(x["sync_ms"] for x in g[1:]) for g in groups.values()]
        sent = [g[0]["bytes_sent"] for g in groups.values()]
        compute = statistics.median(
            r["forward_ms"] + r["backward_ms"] + r["optimizer_ms"] for r in prof[1:])
        fastest = min(r["sync_ms"] for r in prof[1:5])
        link = link_dense(ranks, sent, ms, dense_sent)
        before = budget(ranks, ms, fastest, compute, a.slack)
        after = budget(ranks, ms, min(fastest, link), compute, a.slack)
        key = "-".join(name.replace("repeat-", "").split("-")[:3])
        table[key][0][before] += 1
        table[key][1][after] += 1
        if a.verbose:
            print(f"{commit} {name}: fastest {fastest:.0f} ms, link {link:.0f} ms, "
                  f"r_max {before} -> {after}")
    print("| link, model | profiles | fastest sample | with the link estimate |")
    print("|---|---|---|---|")
    for key, (b, w) in sorted(table.items()):
        fmt = lambda c: ", ".join(f"{r}: {n}" for r, n in sorted(c.items()))
        print(f"| {key} | {sum(b.values())} | {fmt(b)} | {fmt(w)} |")


if __name__ == "__main__":
    main()
