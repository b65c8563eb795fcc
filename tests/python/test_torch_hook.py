"""edgc.torch's DDP communication hook, 2 processes over gloo (each test bounded by a timeout).

The model is a list of matrices whose loss is sum_i <W_i, G_i>: its gradient is exactly G_i, so
every test chooses the gradients each process contributes, and the hook's output can be compared
with the true average.
"""

import gc
import os
import pickle
import socket
import sys
import tempfile

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from edgc.torch import EDGCState, edgc_hook  # noqa: E402

SHAPES = [(64, 32), (32, 48), (40,)]  # two matrices and a vector (a bias: averaged exactly)
TIMEOUT = 120
# The workers are forked from this process, which has torch imported already (spawning paid
# torch's 1.5 s import in both workers of every test, two thirds of the suite's time). A forked
# child inherits no thread pool it could hang in only if this process never starts one.
torch.set_num_threads(1)


class Probe(torch.nn.Module):
    """loss = sum_i <W_i, G_i>, so dloss/dW_i = G_i."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES])

    def forward(self, grads):
        return sum((w * g).sum() for w, g in zip(self.w, grads))


def grads_for(rank, step, lowrank=4):
    """Gradients with a shared low-rank part plus per-process noise, fixed by (rank, step)."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    shared = torch.Generator().manual_seed(7)
    out = []
    for s in SHAPES:
        if len(s) == 2:
            u = torch.randn(s[0], lowrank, generator=shared)
            v = torch.randn(lowrank, s[1], generator=shared)
            out.append(u @ v + 0.1 * torch.randn(s, generator=g))
        else:
            out.append(torch.randn(s, generator=g))
    return out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, fn, port, out_dir, kwargs):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    try:
        result = fn(rank, **kwargs)
    except Exception as e:  # noqa: BLE001 - the test inspects it
        result = {"error": f"{type(e).__name__}: {e}"}
    with open(os.path.join(out_dir, f"{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
    # DDP's reference cycles (torch's powerSGD state among them) are freed before the group, not
    # at interpreter exit against a destroyed group: that aborted 1 run in 4 here
    gc.collect()
    # neither process closes its connections while the other may still be in a collective: a
    # peer's gloo thread that sees the socket close mid-transfer aborts the process
    dist.barrier()
    dist.destroy_process_group()


def run2(fn, **kwargs):
    """Runs fn(rank, **kwargs) in 2 processes; returns both results. Fails on timeout."""
    with tempfile.TemporaryDirectory() as d:
        ctx = mp.start_processes(_entry, args=(fn, _free_port(), d, kwargs), nprocs=2,
                                 join=False, start_method="fork")
        import time
        deadline = time.time() + TIMEOUT
        while not ctx.join(timeout=max(1, deadline - time.time())):
            if time.time() > deadline:
                for p in ctx.processes:
                    p.kill()
                pytest.fail(f"{fn.__name__}: no result within {TIMEOUT} s (hang)")
        out = []
        for r in range(2):
            with open(os.path.join(d, f"{r}.pkl"), "rb") as f:
                out.append(pickle.load(f))
        return out


def make_ddp(model, buckets):
    """DDP over model in one bucket, or ("many") one bucket per matrix: a 4 KB cap for every
    bucket, the first included (DDP reads its size when it is constructed)."""
    if buckets == "one":
        return DDP(model, bucket_cap_mb=25)
    cap = dist._DEFAULT_FIRST_BUCKET_BYTES
    dist._DEFAULT_FIRST_BUCKET_BYTES = 4096
    try:
        return DDP(model, bucket_cap_mb=4096 / 2 ** 20)
    finally:
        dist._DEFAULT_FIRST_BUCKET_BYTES = cap


def train(rank, state_kwargs, steps, nan_at=None, state_dict=None, start=1, weights=None,
          dtype=torch.float32, buckets="one", copy_buckets=False):
    """steps of plain SGD (lr 0.1) through DDP with the hook; returns per-step grads, ranks,
    final weights, the state_dict, per step the buckets the hook saw and the all-reduces it
    made, and whether it copied the buckets into a staging buffer (copy_buckets: always)."""
    model = Probe().to(dtype)
    if weights is not None:
        with torch.no_grad():
            for w, v in zip(model.w, weights):
                w.copy_(v)
    ddp = make_ddp(model, buckets)
    state = EDGCState(process_group=None, **state_kwargs)
    if state_dict is not None:
        state.load_state_dict(state_dict)
    if copy_buckets:
        state._in_place = lambda *_: False
    calls = {"buckets": 0, "allreduce": 0}
    plain = dist.all_reduce

    def counted(*a, **k):
        calls["allreduce"] += 1
        return plain(*a, **k)

    def hook(st, bucket):
        calls["buckets"] += 1
        return edgc_hook(st, bucket)

    hook.__annotations__ = edgc_hook.__annotations__
    dist.all_reduce = counted
    ddp.register_comm_hook(state, hook)
    out = {"grads": [], "ranks": [], "buckets": [], "allreduces": []}
    for step in range(start, start + steps):
        calls["buckets"] = calls["allreduce"] = 0
        g = [x.to(dtype) for x in grads_for(rank, step)]
        if nan_at == step and rank == 1:
            g[0][3, 3] = float("nan")
        ddp.zero_grad()
        ddp(g).backward()
        out["buckets"].append(calls["buckets"])
        out["allreduces"].append(calls["allreduce"])
        out["grads"].append([p.grad.clone() for p in model.w])
        st = state.last_stats.get(0)
        out["ranks"].append(None if st is None else st.rank)
        with torch.no_grad():
            for p in model.w:
                if torch.isfinite(p.grad).all():
                    p -= 0.1 * p.grad
    out["weights"] = [p.detach().clone() for p in model.w]
    out["state"] = pickle.loads(pickle.dumps(state.state_dict()))
    out["skipped"] = state.skipped_steps
    out["staged"] = bool(state._staging)
    dist.all_reduce = plain
    del ddp
    return out


def average(step):
    return [(a + b) / 2 for a, b in zip(grads_for(0, step), grads_for(1, step))]


def against_average(results):
    """(step, the hook's gradients, their plain average) for every process and step of run2's
    results."""
    for proc in results:
        for k, grads in enumerate(proc["grads"]):
            yield k + 1, grads, average(k + 1)


# libedgc's engine on host memory, and the torch-ops engine that GPU buckets use (split reducer)
ENGINES = ["libedgc", "torch"]


# one bucket; several fused into one step (the default); several, one reducer each
BUCKETS = [("one", True), ("many", True), ("many", False)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("buckets,fuse", BUCKETS)
def test_dense_is_the_plain_average_exactly(engine, buckets, fuse):
    r = run2(train, state_kwargs={"mode": "dense", "engine": engine, "fuse_buckets": fuse},
             steps=3, buckets=buckets)
    for proc in r:  # DDP rebuilds its buckets after the first step
        assert proc["buckets"][1:] == ([2, 2] if buckets == "many" else [1, 1])
    for _, grads, average_ in against_average(r):
        assert all(torch.equal(got, want) for got, want in zip(grads, average_))


def test_half_precision_buckets_are_reduced_in_float32():
    # float16 (gloo cannot move bfloat16 at all: DDP's own start-up broadcast fails there)
    r = run2(train, state_kwargs={"mode": "dense"}, steps=2, dtype=torch.float16)
    for proc in r:
        for k, grads in enumerate(proc["grads"]):
            a = [x.half().float() for x in grads_for(0, k + 1)]
            b = [x.half().float() for x in grads_for(1, k + 1)]
            for got, x, y in zip(grads, a, b):
                assert got.dtype == torch.float16
                assert torch.equal(got, ((x + y) / 2).half())
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2}
    a, b = run2(train, state_kwargs=kw, steps=5, dtype=torch.float16)
    for x, y in zip(a["weights"], b["weights"]):
        assert x.dtype == torch.float16 and torch.isfinite(x).all() and torch.equal(x, y)


@pytest.mark.parametrize("engine", ENGINES)
def test_powersgd_full_rank_equals_dense(engine):
    kw = {"mode": "powersgd", "matrix_approximation_rank": 32, "start_powerSGD_iter": 2,
          "min_compression_rate": 0, "engine": engine}
    for _, grads, average_ in against_average(run2(train, state_kwargs=kw, steps=4)):
        for got, want in zip(grads, average_):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("engine", ENGINES)
def test_start_iter_and_min_compression_rate_as_in_torch(engine):
    # Rank 4 shrinks the 64 x 32 matrix 5.3 times and the 32 x 48 one 4.8 times: with
    # min_compression_rate 5 only the first is compressed, and nothing before iteration 3.
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2,
          "min_compression_rate": 5, "engine": engine}
    for step, grads, want in against_average(run2(train, state_kwargs=kw, steps=4)):
        assert torch.equal(grads[0], want[0]) == (step <= 2), f"step {step}"
        assert torch.equal(grads[1], want[1]) and torch.equal(grads[2], want[2])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("buckets,fuse", BUCKETS)
def test_edgc_ranks_agree_and_replicas_stay_identical(engine, buckets, fuse):
    kw = {"mode": "edgc", "total_steps": 40, "r_max": 8, "window": 4, "alpha": 0.5,
          "warmup_fraction": 0.2, "engine": engine, "fuse_buckets": fuse}
    a, b = run2(train, state_kwargs=kw, steps=40, buckets=buckets)
    assert a["ranks"] == b["ranks"]
    assert any(r and r > 0 for r in a["ranks"]), "never compressed"
    for x, y in zip(a["weights"], b["weights"]):
        assert torch.equal(x, y)


def powersgd_errors(rank, steps, rank_r, ours):
    """Relative error of the synchronised gradient, step by step, for the same gradient every
    step, through our hook (ours=True) or torch's powerSGD_hook at the same settings."""
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as ps
    model = Probe()
    ddp = DDP(model, bucket_cap_mb=25)
    kw = {"matrix_approximation_rank": rank_r, "start_powerSGD_iter": 2, "min_compression_rate": 0}
    if ours:
        ddp.register_comm_hook(EDGCState(None, mode="powersgd", **kw), edgc_hook)
    else:
        ddp.register_comm_hook(ps.PowerSGDState(process_group=None, **kw), ps.powerSGD_hook)
    want = average(1)
    errs = []
    for _ in range(steps):
        ddp.zero_grad()
        ddp(grads_for(rank, 1)).backward()
        errs.append(float(sum((p.grad - w).norm() ** 2 for p, w in zip(model.w, want)).sqrt()
                          / sum(w.norm() ** 2 for w in want).sqrt()))
    del ddp
    return errs


def test_error_no_worse_than_torch_powersgd_hook():
    # the same gradient every step: warm-started power iteration converges onto its top subspace
    theirs = run2(powersgd_errors, steps=6, rank_r=4, ours=False)[0]
    ours = run2(powersgd_errors, steps=6, rank_r=4, ours=True)[0]
    assert ours[0] == 0.0 and theirs[0] == 0.0  # the dense first step
    assert ours[-1] <= theirs[-1] * 1.05 + 1e-6, (ours, theirs)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("buckets", ["one", "many"])
def test_state_dict_round_trip_continues_bit_identically(engine, buckets):
    kw = {"mode": "edgc", "total_steps": 30, "r_max": 8, "window": 4, "alpha": 0.5,
          "warmup_fraction": 0.2, "engine": engine}
    full = run2(train, state_kwargs=kw, steps=30, buckets=buckets)
    first = run2(train, state_kwargs=kw, steps=18, buckets=buckets)
    rest = run2(resume, state_kwargs=kw, parts=first, buckets=buckets)
    for r in range(2):
        for x, y in zip(full[r]["weights"], rest[r]["weights"]):
            assert torch.equal(x, y)
        assert full[r]["ranks"][18:] == rest[r]["ranks"]


def resume(rank, state_kwargs, parts, steps=12, start=19, buckets="one"):
    """Continues the run of parts[rank] (train's result) at step `start`."""
    p = parts[rank]
    return train(rank, state_kwargs, steps=steps, state_dict=p["state"], start=start,
                 weights=p["weights"], buckets=buckets)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("buckets", ["one", "many"])
def test_nan_on_one_process_is_skipped_on_all(engine, buckets):
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2,
          "engine": engine}
    a, b = run2(train, state_kwargs=kw, steps=6, nan_at=4, buckets=buckets)
    for proc in (a, b):
        assert proc["skipped"] == 1
        assert all(torch.isnan(g).all() for g in proc["grads"][3])
        assert all(torch.isfinite(g).all() for g in proc["grads"][4])
    for x, y in zip(a["weights"], b["weights"]):
        assert torch.equal(x, y)


@pytest.mark.parametrize("mode", ["edgc", "powersgd"])
def test_fused_buckets_in_place_give_the_bits_of_a_copy(mode):
    # libedgc's engine works on the float32 buckets where they lie (the pieces of one gradient);
    # the same run through a staging copy of them gives the same bits, step after step
    kw = {"mode": mode, "total_steps": 20, "r_max": 8, "window": 4, "alpha": 0.5,
          "warmup_fraction": 0.2} if mode == "edgc" else {
          "mode": mode, "matrix_approximation_rank": 4, "start_powerSGD_iter": 2}
    kw["engine"] = "libedgc"
    in_place = run2(train, state_kwargs=kw, steps=12, nan_at=7, buckets="many")
    copied = run2(train, state_kwargs=kw, steps=12, nan_at=7, buckets="many", copy_buckets=True)
    for a, b in zip(in_place, copied):
        assert not a["staged"] and b["staged"]
        assert a["skipped"] == b["skipped"] == 1 and a["ranks"] == b["ranks"]
        for ga, gb in zip(a["grads"], b["grads"]):
            for x, y in zip(ga, gb):
                assert torch.equal(x, y) or (torch.isnan(x).all() and torch.isnan(y).all())
        for x, y in zip(a["weights"], b["weights"]):
            assert torch.equal(x, y)


@pytest.mark.parametrize("fuse", [True, False])
def test_fused_buckets_cost_one_buckets_collectives(fuse):
    # powersgd: P's all-reduce (with the non-finite flag and the vectors) and Q's, per reducer
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2,
          "engine": "libedgc", "fuse_buckets": fuse}
    a, b = run2(train, state_kwargs=kw, steps=6, buckets="many")
    for proc in (a, b):
        n = proc["buckets"][-1]
        assert n >= 2 and proc["buckets"][1:] == [n] * 5
        # steps 1-2 dense (torch's per-bucket all-reduce), step 3 also checks the config once
        assert proc["allreduces"][3:] == [2 if fuse else 2 * n] * 3, proc["allreduces"]
    for x, y in zip(a["weights"], b["weights"]):
        assert torch.equal(x, y)


def wrapped(rank, waits):
    """A hook wrapper that waits for (waits=True) or chains on (False) edgc_hook's future, with
    several fused buckets, in mode dense; returns the grads and the wrapper's error if any."""
    model = Probe()
    ddp = make_ddp(model, "many")
    state = EDGCState(process_group=None, mode="dense")

    def hook(st, bucket):
        fut = edgc_hook(st, bucket)
        if waits:
            fut.wait()
            return fut
        return fut.then(lambda f: f.value() * 1)

    hook.__annotations__ = edgc_hook.__annotations__
    ddp.register_comm_hook(state, hook)
    out = {"grads": []}
    for step in (1, 2, 3):
        ddp.zero_grad()
        try:
            ddp(grads_for(rank, step)).backward()
        except RuntimeError as e:
            out["error"] = str(e)
            break
        out["grads"].append([p.grad.clone() for p in model.w])
    del ddp
    return out


def test_hook_wrappers_chain_on_fused_futures_and_waiting_raises():
    r = run2(wrapped, waits=False)
    assert all("error" not in proc and len(proc["grads"]) == 3 for proc in r)
    for _, grads, average_ in against_average(r):
        assert all(torch.equal(got, want) for got, want in zip(grads, average_))
    # waiting inside the hook for a bucket that completes at the last one: an error, no hang
    for proc in run2(wrapped, waits=True):
        assert "fuse_buckets" in proc.get("error", ""), proc


def test_state_saved_unfused_is_refused_fused():
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2}
    first = run2(train, state_kwargs=dict(kw, fuse_buckets=False), steps=4, buckets="many")
    for p in first:
        p["state"]["fuse_buckets"] = True
    a, b = run2(resume, state_kwargs=kw, parts=first, steps=2, start=5, buckets="many")
    for proc in (a, b):
        assert "error" in proc and "other parameters" in proc["error"], proc


def test_torch_engine_follows_libedgc_engine():
    # the same algorithm, arithmetic by torch ops instead of CBLAS: equal to float rounding
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2}
    ours = run2(train, state_kwargs=dict(kw, engine="torch"), steps=6)[0]
    lib = run2(train, state_kwargs=dict(kw, engine="libedgc"), steps=6)[0]
    for step, (x, y) in enumerate(zip(ours["grads"], lib["grads"])):
        for u, v in zip(x, y):
            assert float((u - v).abs().max() / v.abs().max()) < 1e-5, step
    # and the dynamic rank: the same ranks step by step (the trend rule goes down 8 -> 4 and back
    # up, so Q shrinks and grows again), the same model
    kw = {"mode": "edgc", "total_steps": 40, "r_max": 8, "window": 4, "alpha": 0.5,
          "warmup_fraction": 0.2, "rule": "trend"}
    ours = run2(train, state_kwargs=dict(kw, engine="torch"), steps=40)[0]
    lib = run2(train, state_kwargs=dict(kw, engine="libedgc"), steps=40)[0]
    assert ours["ranks"] == lib["ranks"]
    assert len(set(lib["ranks"])) >= 3, lib["ranks"]  # the rank went down and came back
    for u, v in zip(ours["weights"], lib["weights"]):
        assert torch.allclose(u, v, rtol=1e-4, atol=1e-4)


def test_state_of_one_engine_is_refused_by_the_other():
    # saved with engine="auto" on a GPU (the torch engine), resumed with "auto" on the CPU
    # (libedgc's): the blob holds no error memory, so it must be refused, not half-loaded
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2}
    first = run2(train, state_kwargs=dict(kw, engine="torch"), steps=4)
    for p in first:
        p["state"]["engine"] = "auto"
    a, b = run2(resume, state_kwargs=kw, parts=first, steps=2, start=5)
    for proc in (a, b):
        assert "error" in proc and "torch engine" in proc["error"], proc


def mismatched(rank, buckets):
    return train(rank, {"mode": "edgc", "total_steps": 20,
                        "rule": "trend" if rank == 0 else "cqm"}, steps=2, buckets=buckets)


@pytest.mark.parametrize("buckets", ["one", "many"])
def test_mismatched_config_raises_on_every_process(buckets):
    a, b = run2(mismatched, buckets=buckets)
    for proc in (a, b):
        assert "error" in proc and "MISMATCH" in proc["error"], proc


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        EDGCState(None, mode="zip")
    with pytest.raises(ValueError):
        EDGCState(None, mode="edgc", beta=1.5)
    with pytest.raises(TypeError):
        EDGCState(None, mode="edgc", no_such_option=1)
    with pytest.raises(ValueError):
        EDGCState(None, mode="powersgd", warm_start=False)
    with pytest.raises(ValueError):
        EDGCState(None, mode="powersgd", engine="cuda")



def test_unfused_state_across_ddps_rebuilt_buckets_is_refused_clearly():
    # DDP's first iteration after a restart groups the parameters in other buckets than the ones
    # a per-bucket state was saved with: refused with a message on both processes (the fused
    # default resumes there: test_state_dict_round_trip_continues_bit_identically[many])
    kw = {"mode": "powersgd", "matrix_approximation_rank": 4, "start_powerSGD_iter": 2,
          "fuse_buckets": False}
    first = run2(train, state_kwargs=kw, steps=4, buckets="many")
    a, b = run2(resume, state_kwargs=kw, parts=first, steps=2, start=5, buckets="many")
    for proc in (a, b):
        assert "error" in proc and "fuse_buckets=True" in proc["error"], proc
