#!/usr/bin/python3
"""The PowerSGD engine against torch's powerSGD_hook on the GPT-2-small layout, side by side in
one process: 12 layers of {768x2304, 768x768, 768x3072, 3072x768} matrices with their biases and
LayerNorms (85 M floats), one worker (gloo, world size 1; --procs 2: two, each with its own
gradient), one thread each, error feedback off, warm start, DDP's default 25 MB buckets.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/bench_engine_torch.py [--ranks 4 8 16 32]
        [--procs 1]

Both run as DDP communication hooks on the same buckets: torch's powerSGD_hook, and edgc_hook in
mode "powersgd" (libedgc's engine on the bucket memory), one reducer per bucket and fused (the
default: every bucket in one step of one reducer, on the buckets where they lie). Per row: the hooks'
time per step (their calls and the waits for their futures, summed; median over the timed
steps, the first compressed steps untimed) and the relative error of the synchronised gradient
against the true one (the processes' average; with one worker the gradient itself), after the
same number of warm-started steps on the same fixed gradient. The two hooks alternate step
blocks so drift on this shared machine hits both. Prints a Markdown table.
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
from edgc.torch import EDGCState, edgc_hook  # noqa: E402

START = 2  # torch needs at least one plain step before warm-started PowerSGD


def gpt2_small_shapes(layers=12, C=768):
    shapes = []
    for _ in range(layers):
        for m, n in ((C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)):
            shapes += [(m, n), (m,)]  # torch stores Linear weights as out x in: m rows
        shapes += [(C,)] * 4
    return shapes


class Probe(torch.nn.Module):
    """loss = sum_i <W_i, G_i>: the gradient of W_i is exactly G_i."""

    def __init__(self, shapes):
        super().__init__()
        self.w = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(s)) for s in shapes])

    def forward(self, grads):
        return sum((w * g).sum() for w, g in zip(self.w, grads))


def timed(hook, times, inline):
    """hook, timed into times[-1]: its calls and the waits for their futures, torch's bucket by
    bucket (inline; left in flight, its callbacks issued gloo collectives in different orders on
    two processes and gloo aborted), ours at the last bucket, where the fused hook completes them
    all. bench_torch_hook.py times its rows with this too."""
    pending = []

    def wrapper(state, bucket):
        t0 = time.perf_counter()
        fut = hook(state, bucket)
        pending.append(fut)
        if inline or bucket.is_last():
            for f in pending:
                f.wait()
            pending.clear()
        times[-1] += time.perf_counter() - t0
        return fut

    wrapper.__annotations__ = edgc_hook.__annotations__  # DDP checks a hook's signature
    return wrapper


def make(kind, r, shapes):
    model = Probe(shapes)
    ddp = DDP(model)
    kw = {"matrix_approximation_rank": r, "start_powerSGD_iter": START,
          "use_error_feedback": False, "warm_start": True}
    times = []
    if kind == "torch":
        ddp.register_comm_hook(ps.PowerSGDState(None, **kw), timed(ps.powerSGD_hook, times, True))
    else:
        state = EDGCState(None, mode="powersgd", fuse_buckets=kind == "fused", **kw)
        ddp.register_comm_hook(state, timed(edgc_hook, times, False))
    return model, ddp, times


def step(model, ddp, times, grads, timed_step):
    times.append(0.0)
    ddp.zero_grad()
    ddp(grads).backward()
    if not timed_step:
        times.pop()


def rel_error(model, grads):
    num = sum(float((p.grad - g).norm() ** 2) for p, g in zip(model.w, grads))
    den = sum(float(g.norm() ** 2) for g in grads)
    return (num / den) ** 0.5


def worker(rank, args, port):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.procs)
    shapes = gpt2_small_shapes(args.layers, args.width)

    def grads_of(r):
        g = torch.Generator().manual_seed(1 + r)
        return [torch.randn(s, generator=g) for s in shapes]

    grads = grads_of(rank)
    # the synchronised gradient is the processes' average
    want = grads if args.procs == 1 else [
        sum(x) / args.procs for x in zip(*(grads_of(r) for r in range(args.procs)))]
    say = print if rank == 0 else (lambda *a, **k: None)
    say(f"{sum(x.numel() for x in grads)} floats in {len(shapes)} tensors, {args.procs} "
        f"process(es), {args.blocks} x {args.steps} timed steps per hook and rank\n")
    say("| rank | torch powerSGD_hook ms/step | edgc powersgd, per bucket, ms/step | edgc / torch "
        "| edgc fused (default) ms/step | fused / torch | rel. error torch | rel. error edgc "
        "| rel. error fused |")
    say("|---|---|---|---|---|---|---|---|---|")
    for r in args.ranks:
        runs = {k: make(k, r, shapes) for k in ("torch", "edgc", "fused")}
        for k, (model, ddp, times) in runs.items():
            for _ in range(START + 2):  # dense steps, then two untimed compressed ones
                step(model, ddp, times, grads, False)
        for _ in range(args.blocks):
            for k, (model, ddp, times) in runs.items():
                for _ in range(args.steps):
                    step(model, ddp, times, grads, True)
        ms = {k: statistics.median(v[2]) * 1e3 for k, v in runs.items()}
        err = {k: rel_error(v[0], want) for k, v in runs.items()}
        say(f"| {r} | {ms['torch']:.1f} | {ms['edgc']:.1f} | {ms['edgc'] / ms['torch']:.2f} "
            f"| {ms['fused']:.1f} | {ms['fused'] / ms['torch']:.2f} "
            f"| {err['torch']:.4f} | {err['edgc']:.4f} | {err['fused']:.4f} |", flush=True)
        del runs
        gc.collect()
    dist.barrier()  # no process closes its connections while the other is mid-collective
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--procs", type=int, default=1, help="processes (gloo), each one thread")
    ap.add_argument("--blocks", type=int, default=9,
                    help="alternating blocks per hook (9: the run-to-run spread of 3 was 20-50 %%)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per block")
    args = ap.parse_args()
    if args.procs < 1:
        ap.error("--procs must be at least 1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port), nprocs=args.procs)


if __name__ == "__main__":
    main()
