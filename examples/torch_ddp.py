#!/usr/bin/python3
"""A small GPT trained with DistributedDataParallel over gloo, its gradients synchronised by
edgc's communication hook (EDGC: dynamic rank from the gradient entropy).

    /usr/bin/python3 examples/torch_ddp.py [--steps 200] [--mode edgc|powersgd|dense] [--rank 8]
                                           [--lr-schedule cosine|constant]

Two processes on this machine; the data is data/kjv.txt (make data) read as bytes, or random
bytes when it is missing. Switching from torch's hook is one line: compare

    state = powerSGD_hook.PowerSGDState(None, matrix_approximation_rank=8)
    ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
with
    state = EDGCState(None, mode="edgc", total_steps=steps)
    ddp.register_comm_hook(state, edgc_hook)
"""

import argparse
import gc
import math
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from edgc.torch import EDGCState, edgc_hook  # noqa: E402


class TinyGPT(torch.nn.Module):
    def __init__(self, vocab=256, dim=128, heads=4, layers=2, seq=64):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Embedding(seq, dim)
        block = torch.nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0,
                                                 batch_first=True, norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(block, layers)
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)
        self.register_buffer("mask", torch.triu(torch.full((seq, seq), float("-inf")), 1))

    def forward(self, x):
        t = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(t))
        h = self.blocks(h, mask=self.mask[:t, :t])
        return self.head(self.norm(h))


def load_data():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "kjv.txt")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).long()
    return torch.randint(0, 256, (1 << 20,), generator=torch.Generator().manual_seed(0))


def lr_at(step, total, schedule="cosine", peak=1e-3, warmup=20):
    """The learning rate of step 0..total-1: a linear warm-up over `warmup` steps, then constant
    or a cosine down to peak / 10 at the last step (edgc-train's schedule). EDGC's default rank
    rule decays the rank over the run, which pays under a decaying learning rate and not under
    a constant one (docs/PYTORCH.md)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant" or total <= warmup + 1:
        return peak
    progress = (step - warmup) / (total - warmup - 1)
    return peak / 10 + 0.5 * (peak - peak / 10) * (1 + math.cos(math.pi * progress))


def batch(data, gen, B, T):
    """B random windows of T tokens and their next-token targets."""
    at = torch.randint(0, len(data) - T - 1, (B,), generator=gen)
    x = torch.stack([data[i:i + T] for i in at])
    y = torch.stack([data[i + 1:i + T + 1] for i in at])
    return x, y


def worker(rank, args, port):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    torch.manual_seed(1337)  # the same initial weights on both processes
    model = TinyGPT()
    ddp = DDP(model)
    state = EDGCState(None, mode=args.mode, total_steps=args.steps,
                      matrix_approximation_rank=args.rank, start_powerSGD_iter=10)
    ddp.register_comm_hook(state, edgc_hook)
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    data = load_data()
    g = torch.Generator().manual_seed(rank)
    B, T = 8, 64
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, args.steps, args.lr_schedule)
        x, y = batch(data, g, B, T)
        loss = torch.nn.functional.cross_entropy(ddp(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        if all(torch.isfinite(p.grad).all() for p in ddp.parameters()):
            opt.step()
        if rank == 0 and (step % 20 == 0 or step == 1):
            st = state.last_stats.get(0)
            sent = sum(s.total_sent for s in state.last_stats.values())
            dense = sum(s.total_dense for s in state.last_stats.values())
            print(f"step {step:4d} | loss {loss.item():.4f} | rank {st.rank if st else '-'} | "
                  f"sent {sent / 1e6:.1f} MB of {dense / 1e6:.1f} MB dense", flush=True)
    # DDP and the hook's state hold reference cycles: collect them before the process group goes,
    # or their destructors run at interpreter exit against a dead group (an abort, now and then).
    del ddp
    gc.collect()
    dist.barrier()  # no process closes its connections while the other is mid-collective
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--mode", choices=["edgc", "powersgd", "dense"], default="edgc")
    p.add_argument("--rank", type=int, default=8, help="static rank of --mode powersgd")
    p.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine",
                   help="after a 20-step warm-up: cosine to a tenth of the peak, or constant")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port), nprocs=2)


if __name__ == "__main__":
    main()
