#!/usr/bin/python3
"""edgc's DDP hook against torch's powerSGD_hook, side by side in one run: the same small GPT
(examples/torch_ddp.py's TinyGPT) on CPU, 2 processes over gloo, the same data and seed.

    /usr/bin/python3 bench/bench_torch_hook.py [--steps 150] [--ranks 4 8 16] [--rounds 3]

"torch engine" rows run the path GPU buckets take (engine="torch": libedgc's split reducer with
the arithmetic in torch ops), here on the CPU. Per row: hook time per step (the time
inside the hook's calls and until their futures are complete: torch's bucket by bucket, ours at
the backward pass's last bucket, where the fused hook completes them all; median over the
compressed steps, then over the rounds), the whole step
(forward, backward with the hook, optimizer; medians the same way), bytes per step put into
torch.distributed collectives by the hook (counted by wrapping all_reduce and broadcast, so
edgc's small agreement messages count too), and the training loss averaged over the last 20
steps. Prints a Markdown table.

Then the quality table (--tables picks either or both): longer runs, one per seed, of torch's hook
at static ranks and of edgc mode at hand-set ceilings, under the cosine learning-rate schedule
and under a constant one: bytes per step and the loss of the last 20 steps, averaged over the
seeds, against torch's rank 8 under the same schedule.
"""

import argparse
import gc
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as ps
from torch.nn.parallel import DistributedDataParallel as DDP

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
from edgc.torch import EDGCState, edgc_hook  # noqa: E402
from bench_engine_torch import timed  # noqa: E402
from torch_ddp import TinyGPT, batch, load_data, lr_at  # noqa: E402

START = 10  # dense steps before compression, for both hooks


def counted(fn, counter):
    def wrapper(tensor, *a, **k):
        counter[0] += tensor.numel() * tensor.element_size()
        return fn(tensor, *a, **k)
    return wrapper


def worker(rank, kind, r, steps, port, out, options, schedule, seed):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    counter = [0]
    dist.all_reduce = counted(dist.all_reduce, counter)
    dist.broadcast = counted(dist.broadcast, counter)
    torch.manual_seed(1337 + seed)
    model = TinyGPT()
    ddp = DDP(model)
    if kind == "torch":
        state = ps.PowerSGDState(None, matrix_approximation_rank=r, start_powerSGD_iter=START,
                                 min_compression_rate=2)
        hook = ps.powerSGD_hook
    else:
        mode, _, engine = kind.partition("/")
        state = EDGCState(None, mode=mode, matrix_approximation_rank=r, total_steps=steps,
                          start_powerSGD_iter=START, min_compression_rate=2,
                          engine=engine or "auto", **options)
        hook = edgc_hook
    spent = [0.0]
    ddp.register_comm_hook(state, timed(hook, spent, inline=kind == "torch"))
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    data = load_data()
    g = torch.Generator().manual_seed(rank + 1000 * seed)
    B, T = 8, 64
    times, steps_ms, sent, losses = [], [], [], []
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, steps, schedule)
        x, y = batch(data, g, B, T)
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(ddp(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        spent[0], counter[0] = 0.0, 0
        loss.backward()
        opt.step()
        t_step = time.perf_counter() - t0
        t = torch.tensor([loss.item()])
        dist.all_reduce(t)  # not counted: outside the hook
        if step > START + 2:
            times.append(spent[0])
            steps_ms.append(t_step)
            sent.append(counter[0])
        losses.append(t.item() / 2)
    if rank == 0:
        with open(out, "w") as f:
            f.write(f"{statistics.median(times) * 1e3} {statistics.mean(sent)} "
                    f"{statistics.mean(losses[-20:])} {statistics.median(steps_ms) * 1e3}\n")
    del ddp
    gc.collect()  # DDP's reference cycles go before the process group (see examples/torch_ddp.py)
    dist.barrier()  # no process closes its connections while the other is mid-collective
    dist.destroy_process_group()


def run(kind, r, steps, schedule="cosine", seed=0, **options):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = f"/tmp/bench_torch_hook_{os.getpid()}.txt"
    mp.spawn(worker, args=(kind, r, steps, port, out, options, schedule, seed), nprocs=2)
    with open(out) as f:
        ms, sent, loss, step_ms = map(float, f.read().split())
    os.remove(out)
    return ms, sent, loss, step_ms


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--rounds", type=int, default=3,
                   help="times every row is run, the rows in turn each round; the median is shown")
    p.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine",
                   help="the timing table's learning-rate schedule (examples/torch_ddp.py)")
    p.add_argument("--tables", choices=["timing", "quality"], nargs="+",
                   default=["timing", "quality"], help="which tables to print, in this order")
    p.add_argument("--quality-steps", type=int, default=600, help="steps of each quality run")
    p.add_argument("--seeds", type=int, default=3, help="quality runs per row, seeds 0..N-1")
    a = p.parse_args()
    if min(a.steps, a.rounds, a.seeds, a.quality_steps, *a.ranks) < 1:
        p.error("--steps, --rounds, --seeds, --quality-steps and --ranks must be positive")
    for i, table in enumerate(a.tables):
        if i:
            print()
        if table == "timing":
            timing(a)
        else:
            quality(a.quality_steps, a.seeds)


def quality(steps, seeds):
    """Static ranks against edgc's decaying rank at equal bytes, over several seeds."""
    plan = [(f"torch powerSGD_hook rank {r}", "torch", r, {}, "cosine") for r in (4, 8, 16)]
    plan += [(f"edgc edgc (r_max {r})", "edgc", 1, {"r_max": r}, "cosine") for r in (8, 11, 16)]
    plan += [("torch powerSGD_hook rank 8", "torch", 8, {}, "constant"),
             ("edgc edgc (r_max 11)", "edgc", 1, {"r_max": 11}, "constant")]
    rows, ref = [], {}  # ref: schedule -> torch rank 8's (bytes, losses)
    for name, kind, arg, options, schedule in plan:
        res = [run(kind, arg, steps, schedule, seed, **options) for seed in range(seeds)]
        rows.append((name, schedule, statistics.mean(x[1] for x in res),
                     [x[2] for x in res]))
        if (kind, arg) == ("torch", 8):
            ref[schedule] = rows[-1][2:]
    print(f"{steps} steps, the same model and batches, learning rate warmed up over 20 steps, "
          f"then cosine to a tenth or constant; seeds 0-{seeds - 1}, one run each\n")
    print("| hook | learning rate | KB per step | vs torch rank 8 | loss, last 20 steps "
          "(mean) | vs torch rank 8 | per seed |")
    print("|---|---|---|---|---|---|---|")
    for name, schedule, kb, losses in rows:
        ref_kb, ref_losses = ref[schedule]
        mean, ref_mean = statistics.mean(losses), statistics.mean(ref_losses)
        print(f"| {name} | {schedule} | {kb / 1e3:.1f} | {kb / ref_kb:.2f} | {mean:.4f} "
              f"| {100 * (mean / ref_mean - 1):+.2f} % | "
              f"{', '.join(f'{x:.4f}' for x in losses)} |")


def timing(a):
    plan = []  # (name, kind, rank for the comparison, run's rank argument, options)
    for r in a.ranks:
        for kind, name in (("torch", "torch powerSGD_hook"), ("powersgd", "edgc powersgd"),
                           ("powersgd/torch", "edgc powersgd, torch engine")):
            plan.append((f"{name} rank {r}", kind, r, r, {}))
    plan.append(("edgc edgc (defaults)", "edgc", 0, 1, {}))
    # on this fast link profiling keeps the defaults (nearly) dense; with the ceiling set, what
    # the dynamic rank's decisions cost in the hook (its loss and bytes: the quality table)
    plan.append(("edgc edgc (r_max 8)", "edgc", 0, 1, {"r_max": 8}))
    # every row once per round, so drift on this shared machine reaches all rows alike; bytes
    # and loss are the same in every round (same seeds), the hook time is the rounds' median
    results = [[] for _ in plan]
    for _ in range(a.rounds):
        for i, (_, kind, _, arg, options) in enumerate(plan):
            results[i].append(run(kind, arg, a.steps, a.lr_schedule, **options))
    rows = [(name, kind, r, statistics.median(x[0] for x in res), res[0][1], res[0][2],
             statistics.median(x[3] for x in res))
            for (name, kind, r, _, _), res in zip(plan, results)]
    torch_ms = {r: (ms, step) for _, kind, r, ms, _, _, step in rows if kind == "torch"}
    print(f"{a.steps} steps, TinyGPT (L2 C128), batch 8 x 64, 2 processes, gloo, 1 thread each, "
          f"{a.lr_schedule} learning rate; hook times: median of {a.rounds} rounds, the rows in "
          f"turn\n")
    print("| hook | ms per step in the hook | vs torch same rank | step ms | vs torch same rank "
          "| KB per step | loss, last 20 steps |")
    print("|---|---|---|---|---|---|---|")
    for name, kind, r, ms, sent, loss, step in rows:
        ratio = f"{ms / torch_ms[r][0]:.2f}" if r in torch_ms else "-"
        sratio = f"{step / torch_ms[r][1]:.2f}" if r in torch_ms else "-"
        print(f"| {name} | {ms:.2f} | {ratio} | {step:.1f} | {sratio} | {sent / 1e3:.1f} "
              f"| {loss:.4f} |")


if __name__ == "__main__":
    main()
