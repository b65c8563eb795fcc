"""A DistributedDataParallel communication hook backed by libedgc.

    from edgc.torch import EDGCState, edgc_hook
    state = EDGCState(process_group=None, mode="edgc", total_steps=10_000)
    ddp.register_comm_hook(state, edgc_hook)

The hook holds every DDP bucket of a backward pass until the last one and synchronises them
together through one libedgc reducer (fuse_buckets=False: one reducer per bucket), created on its
first call with the buckets' tensors as its layout (a tensor of two or more dimensions is
compressed as shape[0] x rest, as torch's powerSGD_hook does; anything else is averaged
exactly). The whole algorithm runs in the C library: GDS entropy, profiling, windows, the rank
rule, PowerSGD with error feedback, the per-step agreement of one rank across the group, and the
non-finite check. Its collectives are callbacks
into torch.distributed on the given process group (gloo or NCCL).

Buckets in float16/bfloat16 are synchronised in float32 and written back in their own type; the
error memory is float32. A bucket on another device than the CPU (a GPU) stays there: its reducer
is a split one (edgc_reducer_create_split) that keeps the whole algorithm but the arithmetic, and
the products, the orthonormalisation and the error memory run as torch ops on the bucket's device
(edgc/_engine.py). engine="torch" takes that path on the CPU too (the tests compare the two).
"""

import ctypes
import math

import torch
import torch.distributed as dist

from . import _lib
from ._engine import TorchEngine, split_step

__all__ = ["EDGCState", "edgc_hook"]

_TORCH_KNOBS = ("matrix_approximation_rank", "start_powerSGD_iter", "min_compression_rate",
                "use_error_feedback", "warm_start", "orthogonalization_epsilon", "random_seed")


class _TorchComm:
    """An edgc_comm whose collectives run on a torch.distributed process group. Keeps the ctypes
    callbacks alive as long as the reducers that hold copies of the struct."""

    def __init__(self, group):
        self.group = group
        # NCCL moves device tensors only: the reducer's few small collectives are staged there
        self.device = torch.device("cuda", torch.cuda.current_device()) \
            if dist.get_backend(group) == "nccl" else None
        self.error = None
        self.comm = _lib.Comm()
        self.comm.ctx = None
        self.comm.rank = dist.get_rank(group)
        self.comm.size = dist.get_world_size(group)
        self._f32 = _lib.ALLREDUCE_F32(self._allreduce_f32)
        self._i32 = _lib.ALLREDUCE_I32(self._allreduce_max_i32)
        self._if32 = _lib.IALLREDUCE_F32(self._iallreduce_f32)
        self._test = _lib.TEST(self._test_request)
        self._wait = _lib.WAIT(self._wait_request)
        self.comm.allreduce_sum_f32 = self._f32
        self.comm.allreduce_max_i32 = self._i32
        # libedgc's engine overlaps the dense part's all-reduce with the P/Q products through
        # these (optional: a NCCL group's reducers are split ones, whose engine is torch's)
        if self.device is None:
            self.comm.iallreduce_sum_f32 = self._if32
            self.comm.test = self._test
            self.comm.wait = self._wait
        self._requests = {}  # handle -> torch.distributed Work
        self._next = 1

    @staticmethod
    def _view(ptr, n, ctype, dtype):
        if n == 0:
            return None
        return torch.frombuffer((ctype * n).from_address(ptr), dtype=dtype)

    def _run(self, fn):
        # An exception must not cross into C: record it, report a communication failure.
        try:
            fn()
            return _lib.OK
        except Exception as e:  # noqa: BLE001 - re-raised by the hook
            self.error = e
            return _lib.ERR_COMM

    def _on_group(self, t, collective):
        """Runs collective(tensor) on t, through the group's device when it needs one."""
        if t is None:
            return
        if self.device is None:
            collective(t)
            return
        d = t.to(self.device)
        collective(d)
        t.copy_(d.cpu())

    def _allreduce_f32(self, _ctx, buf, n):
        t = self._view(buf, n, ctypes.c_float, torch.float32)
        return self._run(lambda: self._on_group(t, lambda x: dist.all_reduce(x, group=self.group)))

    def _allreduce_max_i32(self, _ctx, buf, n):
        t = self._view(buf, n, ctypes.c_int32, torch.int32)
        return self._run(lambda: self._on_group(
            t, lambda x: dist.all_reduce(x, op=dist.ReduceOp.MAX, group=self.group)))

    def _iallreduce_f32(self, _ctx, buf, n, request):
        t = self._view(buf, n, ctypes.c_float, torch.float32)

        def start():
            handle = self._next
            self._next += 1
            self._requests[handle] = None if t is None else dist.all_reduce(
                t, group=self.group, async_op=True)
            request[0] = handle

        return self._run(start)

    def _test_request(self, _ctx, request, done):
        def test():
            work = self._requests[request]
            done[0] = int(work is None or work.is_completed())
            if done[0]:
                if work is not None:
                    work.wait()  # surfaces an error, frees the work
                del self._requests[request]

        return self._run(test)

    def _wait_request(self, _ctx, request):
        def wait():
            work = self._requests.pop(request)
            if work is not None:
                work.wait()

        return self._run(wait)


class EDGCState:
    """What the hook keeps between steps: the libedgc reducer of the fused buckets (or one per
    DDP bucket with fuse_buckets=False).

    Keyword names that torch's PowerSGDState also has mean the same here, so switching is one
    line: matrix_approximation_rank (the static rank of mode "powersgd"), start_powerSGD_iter
    (mode "powersgd": plain all-reduce before this iteration), min_compression_rate (mode
    "powersgd": a matrix that the rank would not shrink at least this much is sent dense),
    use_error_feedback, warm_start (libedgc always warm-starts Q; False is refused),
    orthogonalization_epsilon, random_seed.

    mode: "edgc" (dynamic rank; needs total_steps), "powersgd" (static rank) or "dense".
    engine: where the arithmetic runs. "auto" (libedgc's engine for CPU buckets, torch ops on the
    bucket's device for the others), "libedgc" (always staged through host memory) or "torch".
    fuse_buckets: True (default) holds each bucket's future until the backward pass's last
    bucket, then synchronises all of them in one step of one reducer: a step costs two
    collectives however many buckets DDP makes (torch's hook: three per bucket), one rank decision
    covers the whole model. float32 buckets in host memory are synchronised where they lie (the
    pieces of one gradient); other buckets (another type, a GPU with the torch engine, a restored
    state's other parameter order) through a float32 copy of the gradient, two passes over it a
    step. The hook blocks in either case, so fusing gives up no overlap with the backward pass.
    False: one reducer per bucket.
    EDGC's own settings are the fields of edgc_config, by name: rule ("decay" | "trend" | "cqm" |
    "error"), r_max (0: profiled), r_min, window (0: from total_steps), alpha, beta,
    warmup_fraction, rmax_rule ("budget" | "paper"), rmax_slack, warmup_sync ("rmax" | "dense"),
    threads (libedgc's engine; default torch.get_num_threads()), ... .
    """

    def __init__(self, process_group=None, mode="edgc", matrix_approximation_rank=1,
                 start_powerSGD_iter=1000, min_compression_rate=2, use_error_feedback=True,
                 warm_start=True, orthogonalization_epsilon=0, random_seed=0, total_steps=0,
                 engine="auto", fuse_buckets=True, **edgc_options):
        if mode not in _lib.MODES:
            raise ValueError(f"mode {mode!r}: expected one of {sorted(_lib.MODES)}")
        if engine not in ("auto", "libedgc", "torch"):
            raise ValueError(f"engine {engine!r}: expected 'auto', 'libedgc' or 'torch'")
        if not warm_start:
            raise ValueError("warm_start=False: libedgc always warm-starts Q from the last step")
        self.process_group = process_group
        self.mode = mode
        self.matrix_approximation_rank = int(matrix_approximation_rank)
        self.start_powerSGD_iter = int(start_powerSGD_iter) if mode == "powersgd" else 0
        self.min_compression_rate = float(min_compression_rate)
        self.use_error_feedback = bool(use_error_feedback)
        self.warm_start = True
        self.orthogonalization_epsilon = float(orthogonalization_epsilon)
        self.random_seed = int(random_seed)
        self.total_steps = int(total_steps)
        self.engine = engine
        self.fuse_buckets = bool(fuse_buckets)
        self.edgc_options = dict(edgc_options)
        self.config = self._make_config()
        self.iter = 0  # hook calls on bucket 0, as torch's state counts them
        self.skipped_steps = 0
        self.last_stats = {}  # reducer key -> edgc_step_stats of its last step
        # reducer key (0 for the fused buckets, else the bucket's index) -> _Bucket
        self._reducers = {}
        self._waiting = []  # fuse_buckets: (bucket, future) of this backward pass so far
        self._staging = {}  # reducer key -> the float32 copy its staged buckets are synchronised in
        self._pending_blobs = {}  # reducer key -> (layout entries, state blob) to restore
        self._keys = {}  # id(parameter) -> (stable key, parameter)
        self._comm = None

    # -- configuration -------------------------------------------------------------------
    def _make_config(self):
        c = _lib.lib.edgc_config_default()
        c.mode = _lib.MODES[self.mode]
        c.rank = self.matrix_approximation_rank
        c.total_steps = self.total_steps
        c.error_feedback = int(self.use_error_feedback)
        # torch's epsilon guards a division; ours decides when a column is dependent. 0 keeps ours.
        if self.orthogonalization_epsilon > 0:
            c.orth_eps = self.orthogonalization_epsilon
        c.seed = self.random_seed or c.seed
        # the engine's element-wise passes get the threads torch computes with (option threads)
        c.threads = max(1, min(torch.get_num_threads(), 1024))
        names = {"rule": _lib.RULES, "rmax_rule": _lib.RMAX_RULES,
                 "warmup_sync": _lib.WARMUP_SYNCS}
        fields = {f for f, _ in _lib.Config._fields_}
        for key, value in self.edgc_options.items():
            if key not in fields or key in ("mode", "rank", "pipeline_stage", "pipeline_stages"):
                raise TypeError(f"EDGCState: unknown option {key!r}")
            if key in names:
                if value not in names[key]:
                    raise ValueError(f"{key}={value!r}: expected one of {sorted(names[key])}")
                value = names[key][value]
            setattr(c, key, value)
        why = ctypes.create_string_buffer(512)
        st = _lib.lib.edgc_config_check(ctypes.byref(c), None, why, len(why))
        if st != _lib.OK:
            raise ValueError(f"EDGCState: {why.value.decode()}")
        return c

    # -- pickling and exact resume -------------------------------------------------------
    def __getstate__(self):
        # Like PowerSGDState: everything but the process group (and the live C objects).
        return {"mode": self.mode, "matrix_approximation_rank": self.matrix_approximation_rank,
                "start_powerSGD_iter": self.start_powerSGD_iter,
                "min_compression_rate": self.min_compression_rate,
                "use_error_feedback": self.use_error_feedback,
                "orthogonalization_epsilon": self.orthogonalization_epsilon,
                "random_seed": self.random_seed, "total_steps": self.total_steps,
                "engine": self.engine, "fuse_buckets": self.fuse_buckets,
                "edgc_options": self.edgc_options, "iter": self.iter,
                "skipped_steps": self.skipped_steps, "blobs": self._blobs()}

    def __setstate__(self, s):
        self.__init__(None, s["mode"], s["matrix_approximation_rank"], s["start_powerSGD_iter"],
                      s["min_compression_rate"], s["use_error_feedback"], True,
                      s["orthogonalization_epsilon"], s["random_seed"], s["total_steps"],
                      s.get("engine", "auto"), s.get("fuse_buckets", False), **s["edgc_options"])
        self.iter = s["iter"]
        self.skipped_steps = s["skipped_steps"]
        self._pending_blobs = dict(s["blobs"])

    def state_dict(self):
        """Error memory, Q, controller and RNG of every reducer (libedgc's checksummed state
        blobs; a torch-engine reducer's error memory and Q as CPU tensors beside its blob), plus
        the step counters and fuse_buckets. Pickle-able."""
        return self.__getstate__()

    def load_state_dict(self, sd):
        """Restores a state_dict(); each reducer takes its blob on its next step (the process
        group stays the one this state was made with)."""
        group = self.process_group
        self.free()
        self.__setstate__(sd)
        self.process_group = group

    def _blobs(self):
        out = dict(self._pending_blobs)
        for index, b in self._reducers.items():
            size = ctypes.c_size_t()
            _lib.lib.edgc_reducer_state_size(b.red, ctypes.byref(size))
            buf = ctypes.create_string_buffer(max(size.value, 1))
            wrote = ctypes.c_size_t()
            st = _lib.lib.edgc_reducer_save(b.red, buf, size.value, ctypes.byref(wrote))
            if st != _lib.OK:
                raise RuntimeError(f"edgc: saving reducer {index}: {_lib.status_text(st)}")
            out[index] = (b.entries, buf.raw[:wrote.value],
                          None if b.engine is None else b.engine.state())
        return out

    def free(self):
        """Frees the C reducers (also done when the state is garbage-collected)."""
        for b in self._reducers.values():
            _lib.lib.edgc_reducer_free(b.red)
        self._reducers = {}

    def __del__(self):
        try:
            self.free()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- the reducers --------------------------------------------------------------------
    def _entries(self, bucket, buf):
        """The bucket's layout as (key, offset, rows, cols) in buffer order. key names the
        parameter stably across restarts: (bucket index, position) where DDP first placed it,
        which is the same in every run of the same model. Gaps (padding) get key None."""
        base, size = buf.data_ptr(), buf.element_size()
        items, at = [], 0
        for pos, (g, p) in enumerate(zip(bucket.gradients(), bucket.parameters())):
            key = self._keys.setdefault(id(p), ((bucket.index(), pos), p))[0]
            views = g.device == buf.device and g.dtype == buf.dtype
            off = (g.data_ptr() - base) // size if views else at
            items.append((off, key, tuple(g.shape), g.numel()))
            at = off + g.numel()
        entries, at = [], 0
        for off, key, shape, n in sorted(items):
            if off > at:
                entries.append((None, at, off - at, 1))
            rows, cols = (shape[0], n // shape[0]) if len(shape) >= 2 else (n, 1)
            if cols > 1 and self.mode == "powersgd":
                r = self.matrix_approximation_rank
                if rows * cols < self.min_compression_rate * r * (rows + cols):
                    rows, cols = n, 1  # not worth compressing: averaged exactly
            entries.append((key, off, rows, cols))
            at = off + n
        if at < buf.numel():
            entries.append((None, at, buf.numel() - at, 1))
        return entries

    def _torch_engine(self, device):
        """Whether a bucket on `device` is synchronised by torch ops (a split reducer)."""
        return self.engine == "torch" or (self.engine == "auto" and device.type != "cpu")

    def _create(self, index, what, entries, total, device, saved=None):
        if self._comm is None:
            self._comm = _TorchComm(self.process_group)
        arr = (_lib.Tensor * len(entries))(*[_lib.Tensor(o, r, c) for _, o, r, c in entries])
        layout = _lib.Layout(arr, len(entries), total)
        red = ctypes.c_void_p()
        split = self._torch_engine(device)
        create = _lib.lib.edgc_reducer_create_split if split else _lib.lib.edgc_reducer_create
        st = create(ctypes.byref(self.config), ctypes.byref(layout),
                    ctypes.byref(self._comm.comm), ctypes.byref(red))
        if st != _lib.OK:
            raise RuntimeError(f"edgc: {what}: cannot create the reducer: "
                               f"{_lib.status_text(st)}"
                               + (" (check that every process uses the same EDGCState options "
                                  "and model)" if st == _lib.ERR_MISMATCH else ""))
        engine = TorchEngine(entries, device, self.config, self.process_group) if split else None
        b = _Bucket(red, entries, engine, loaded=saved is not None)
        self._reducers[index] = b
        if saved is not None:
            _, blob, engine_state = (tuple(saved) + (None,))[:3]
            if (engine_state is None) != (engine is None):
                raise RuntimeError(f"edgc: {what}: its state was saved by the "
                                   f"{'libedgc' if engine_state is None else 'torch'} engine and "
                                   f"cannot be loaded into the other (see EDGCState's engine)")
            st = _lib.lib.edgc_reducer_load(red, blob, len(blob))
            if st != _lib.OK:
                msg = _lib.lib.edgc_reducer_last_error(red).decode()
                raise RuntimeError(f"edgc: {what}: cannot load its state: {msg}")
            if engine is not None:
                engine.load(engine_state)
        return b

    def _reducer(self, key, what, live, total, device):
        """The reducer under key (a bucket index, or 0 for the fused buckets; `what` names them in
        messages), created on first use with the layout live, or from a restored blob."""
        b = self._reducers.get(key)
        if b is None and key in self._pending_blobs:
            saved = self._pending_blobs.pop(key)
            if {e[0] for e in saved[0]} - {None} != {e[0] for e in live} - {None}:
                raise RuntimeError(
                    f"edgc: {what}: the restored state holds other parameters than these: a "
                    f"different model, a state saved with the other fuse_buckets setting, or "
                    f"(fuse_buckets=False) DDP's first "
                    f"iteration grouping the parameters in other buckets than the saved run's "
                    f"last one; fuse_buckets=True states resume across that")
            b = self._create(key, what, saved[0], total, device, saved)
        if b is None:
            return self._create(key, what, live, total, device)
        if b.entries != live and not b.loaded and b.steps <= 1:
            # DDP rebuilds its buckets after the first iteration (every process alike): a fresh
            # run takes the new order from now on
            _lib.lib.edgc_reducer_free(b.red)
            del self._reducers[key]
            b = self._create(key, what, live, total, device)
        return b

    def _sync(self, buckets, key):
        """Synchronises the buckets' buffers in place through the reducer under key: one step over
        their float32 concatenation (on the CPU, or on the buckets' device for the torch engine;
        float32 buffers in host memory are not copied, see _sync_in_place).
        Returns False when the step was skipped (a non-finite gradient on some process: the
        buffers are then all NaN everywhere)."""
        bufs = [b.buffer() for b in buckets]
        device = bufs[0].device if self._torch_engine(bufs[0].device) else torch.device("cpu")
        live, total = [], 0
        for bucket, buf in zip(buckets, bufs):
            live += [(k, off + total, r, c) for k, off, r, c in self._entries(bucket, buf)]
            total += buf.numel()
        what = f"bucket {key}" if len(bufs) == 1 else f"buckets 0-{len(bufs) - 1}"
        b = self._reducer(key, what, live, total, device)
        if self._in_place(b, live, bufs):
            return self._sync_in_place(b, key, what, bufs)
        one = bufs[0]
        staged = len(bufs) > 1 or one.dtype != torch.float32 or one.device != device \
            or not one.is_contiguous()
        flat = self._staging_buffer(key, total, device) if staged else one
        parts = flat.split([buf.numel() for buf in bufs]) if staged else ()
        for part, buf in zip(parts, bufs):
            part.copy_(buf.detach().reshape(-1))
        work = flat
        if b.entries != live:  # a restored state meets DDP's first-iteration order
            where = {k: (off, r * c) for k, off, r, c in live if k is not None}
            work = torch.zeros_like(flat)
            moves = [(where[k][0], off, where[k][1]) for k, off, _, _ in b.entries
                     if k is not None]
            for src, dst, n in moves:
                work[dst:dst + n] = flat[src:src + n]
        self._comm.error = None
        if b.engine is not None:
            st, stats = split_step(b.engine, b.red, work, bool(self.config.check_finite))
        else:
            stats = _lib.StepStats()
            st = _lib.lib.edgc_reducer_step(b.red, ctypes.c_void_p(work.data_ptr()),
                                            ctypes.byref(stats))
        if self._comm.error is not None:
            raise RuntimeError(f"edgc: {what}: collective failed") from self._comm.error
        ok = st != _lib.ERR_NONFINITE
        if not ok:
            # nothing in the reducer moved; NaN everywhere makes every process skip the update
            # the same way (torch.cuda.amp.GradScaler and finite checks catch it)
            flat.fill_(math.nan)
        elif st != _lib.OK:
            msg = _lib.lib.edgc_reducer_last_error(b.red).decode()
            raise RuntimeError(f"edgc: {what}: {_lib.status_text(st)}: {msg}")
        elif work is not flat:
            for src, dst, n in moves:
                flat[src:src + n] = work[dst:dst + n]
        for part, buf in zip(parts, bufs):
            buf.copy_(part.view_as(buf))
        if ok:
            b.steps += 1
            self.last_stats[key] = stats
        return ok

    @staticmethod
    def _in_place(b, live, bufs):
        """Whether reducer b (made for the layout live) can work on the buckets where they lie:
        libedgc's engine, float32 in host memory, and not a restored state's other order."""
        return b.engine is None and b.entries == live and all(
            buf.dtype == torch.float32 and buf.device.type == "cpu" and buf.is_contiguous()
            for buf in bufs)

    def _sync_in_place(self, b, key, what, bufs):
        """_sync for float32 buckets in host memory and libedgc's engine: the reducer works on the
        buckets' own buffers as the pieces of one gradient (edgc_reducer_step_pieces), with the
        bits of a step over their concatenation and without copying them into one buffer and
        back (two passes over the gradient a step)."""
        n = len(bufs)
        pieces = (ctypes.c_void_p * n)(*[buf.data_ptr() for buf in bufs])
        lengths = (ctypes.c_size_t * n)(*[buf.numel() for buf in bufs])
        self._comm.error = None
        stats = _lib.StepStats()
        st = _lib.lib.edgc_reducer_step_pieces(b.red, pieces, lengths, n, ctypes.byref(stats))
        if self._comm.error is not None:
            raise RuntimeError(f"edgc: {what}: collective failed") from self._comm.error
        if st == _lib.ERR_NONFINITE:
            for buf in bufs:  # as in _sync: every process skips the update the same way
                buf.fill_(math.nan)
            return False
        if st != _lib.OK:
            msg = _lib.lib.edgc_reducer_last_error(b.red).decode()
            raise RuntimeError(f"edgc: {what}: {_lib.status_text(st)}: {msg}")
        b.steps += 1
        self.last_stats[key] = stats
        return True

    def _staging_buffer(self, key, n, device):
        """The float32 buffer of n elements on device that reducer key's buckets are staged in,
        kept from step to step: a fresh one each step paid its page faults every time
        (GPT-2-small's 340 MB took 2.2x a step's time)."""
        st = self._staging.get(key)
        if st is None or st.numel() != n or st.device != device:
            st = self._staging[key] = torch.empty(n, dtype=torch.float32, device=device)
        return st

    def _fused(self, bucket):
        """fuse_buckets: holds every bucket but the last one of the backward pass (a pending
        future), then synchronises them all in one step, so a step costs the collectives of one
        bucket however many DDP makes."""
        if bucket.index() == 0 and self._waiting:
            self._fail_waiting(RuntimeError("edgc: a backward pass ended before its last bucket"))
        if bucket.index() != len(self._waiting):
            raise RuntimeError(f"edgc: bucket {bucket.index()} came after "
                               f"{len(self._waiting)} buckets; DDP calls them in order")
        fut = _HeldFuture()
        self._waiting.append((bucket, fut))
        if not bucket.is_last():
            return fut
        waiting, self._waiting = self._waiting, []
        try:
            ok = self._sync([b for b, _ in waiting], key=0)
        except BaseException as e:
            for _, f in waiting[:-1]:
                f.set_exception(e)
            raise
        if not ok:
            self.skipped_steps += 1
        for b, f in waiting:
            f.set_result(b.buffer())
        return fut

    def _fail_waiting(self, error):
        for _, f in self._waiting:
            f.set_exception(error)
        self._waiting = []


class _HeldFuture(torch.futures.Future):
    """A fused bucket's future: complete once the backward pass's last bucket is synchronised.
    DDP waits for it after that; a hook wrapper that waits for it (or reads it) in its own call
    would wait forever, so that raises instead. Chaining with then() works."""

    _WHY = ("edgc: with fuse_buckets=True a bucket's future completes at the backward pass's "
            "last bucket; wait for it after backward, chain with then(), or use "
            "fuse_buckets=False")

    def wait(self):
        if not self.done():
            raise RuntimeError(self._WHY)
        return super().wait()

    def value(self):
        if not self.done():
            raise RuntimeError(self._WHY)
        return super().value()


class _Bucket:
    """One bucket's reducer and the layout it was made with."""

    def __init__(self, red, entries, engine, loaded):
        self.red = red
        self.entries = entries
        self.engine = engine  # a TorchEngine for a split reducer, else None
        self.loaded = loaded
        self.steps = 0


def edgc_hook(state: EDGCState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """The DDP communication hook: register with ddp.register_comm_hook(state, edgc_hook)."""
    buf = bucket.buffer()
    if bucket.index() == 0:
        state.iter += 1
    if state.mode == "powersgd" and state.iter <= state.start_powerSGD_iter:
        # torch's behaviour: plain averaged all-reduce before start_powerSGD_iter. Blocking, like
        # every step of this hook: no work or callback left in gloo's threads holding the group
        dist.all_reduce(buf, group=state.process_group)
        buf.div_(dist.get_world_size(state.process_group))
        return _done(buf)
    if state.fuse_buckets:
        return state._fused(bucket)
    if not state._sync([bucket], key=bucket.index()) and bucket.index() == 0:
        state.skipped_steps += 1
    return _done(buf)


def _done(buf):
    """A completed future holding buf, as DDP expects from a hook."""
    fut = torch.futures.Future()
    fut.set_result(buf)
    return fut
