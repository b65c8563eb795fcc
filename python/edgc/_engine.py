"""PowerSGD with torch ops on the bucket's own device, for a split libedgc reducer.

libedgc's engine works on host memory. For a bucket elsewhere (a GPU) the hook keeps the
algorithm in the library and only the arithmetic here: the reducer plans the step, agrees with
the other processes on the rank and the non-finite flag, profiles, samples the entropy, runs the
controller and owns the shared RNG (edgc_reducer_begin / _end, include/edgc.h); this engine does
what edgc_powersgd_step does (src/powersgd.c), step for step, so that on the CPU the two agree to
float rounding (tests/python/test_torch_hook.py checks it):

    M = G + e                  (error feedback; e stays float32 on the device)
    P = M Q,  all-reduce P,  orthonormalise P
    Q = M^T P,  all-reduce Q,  Q /= world
    G_hat = P Q^T,  e = M - G_hat
    1-D tensors: averaged exactly, their all-reduce overlapping the products

Q is warm-started from step to step; its first draw and the rows a higher rank adds come from the
reducer's RNG, matrix by matrix, as libedgc draws them.
"""

import ctypes
import math
import time

import torch
import torch.distributed as dist

from . import _lib


def _device_sync(t):
    """Waits for the device's queued work, so a sync time measured on the host is the real one."""
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


def _orthogonalize(a, r):
    """r -= a^T (a r) until a pass no longer cancels more than half of r (at most 4 passes), as
    libedgc's Gram-Schmidt does. Returns the final norm as a float (a host sync)."""
    prev = now = float(r.norm())
    for p in range(4 if a.shape[0] else 0):
        r -= a.t() @ (a @ r)
        now = float(r.norm())
        if (p > 0 and now > 0.5 * prev) or now == 0.0:
            break
        prev = now
    return now


def _orthonormalize_exact(a, eps):
    """libedgc's edgc__orthonormalize_rows, row by row with its tests on the host: the rows of a
    that are numerically dependent on earlier ones are replaced by a coordinate direction."""
    k, n = a.shape
    for i in range(k):
        ri, done = a[i], a[:i]
        before = float(ri.norm())
        d = _orthogonalize(done, ri)
        if d > 0.0 and d > eps * before:
            ri /= d
            continue
        ri.zero_()
        for t in range(n if i < n else 0):
            ri[(i * 7919 + t) % n] = 1.0
            d = _orthogonalize(done, ri)
            if d > 0.5 * math.sqrt((n - i) / n):
                ri /= d
                break
            ri.zero_()


def orthonormalize_rows(a, eps):
    """Orthonormalises the rows of each a[b] (a: batch x k x n, or one k x n matrix) in place,
    giving what libedgc's Gram-Schmidt gives. The fast path is one batched Householder QR of
    a^T: for rows that are independent, Gram-Schmidt's result is Q^T with each row's sign set so
    that R's diagonal is positive, and |R_ii| is the norm libedgc tests (what is left of row i
    once the earlier rows' directions are removed). A matrix with a row whose |R_ii| fails that
    test (numerically dependent) goes through the exact row-by-row path, which replaces it."""
    if a.dim() == 2:
        a = a.unsqueeze(0)
    if a.shape[1] == 0 or a.shape[0] == 0:
        return
    before = a.norm(dim=2)
    q, r = torch.linalg.qr(a.transpose(1, 2))  # (B, n, k), (B, k, k)
    d = r.diagonal(dim1=1, dim2=2)
    sign = torch.where(d < 0, -1.0, 1.0).to(a.dtype)
    ok = ((d.abs() > 0) & (d.abs() > eps * before)).all(dim=1)
    bad = (~ok).nonzero().flatten().tolist() if not bool(ok.all()) else []
    orig = [a[j].clone() for j in bad]
    a.copy_((q * sign.unsqueeze(1)).transpose(1, 2))
    for j, o in zip(bad, orig):
        a[j].copy_(o)
        _orthonormalize_exact(a[j], eps)


class _Group:
    """The matrices of one shape: stacked, so each product is one batched call."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.index = []  # the matrices' positions in layout order
        self.err = None  # (B, rows, cols) error memory
        self.q = None  # (B, r, cols): Q^T of each matrix


class TorchEngine:
    """One bucket's PowerSGD state on its device: error memory, Q, the current rank."""

    def __init__(self, entries, device, config, group):
        self.device = device
        self.group = group
        self.world = dist.get_world_size(group)
        self.error_feedback = bool(config.error_feedback)
        self.orthonormalize_q = bool(config.orthonormalize_q)
        self.eps = float(config.orth_eps)
        self.stride = max(1, int(math.floor(1.0 / config.beta)))
        self.mats = [(off, rows, cols) for _, off, rows, cols in entries if rows >= 2 and cols >= 2]
        self.dense = [(off, rows * cols) for _, off, rows, cols in entries
                      if not (rows >= 2 and cols >= 2)]
        groups = {}
        for k, (_, rows, cols) in enumerate(self.mats):
            groups.setdefault((rows, cols), _Group(rows, cols)).index.append(k)
        self.groups = list(groups.values())
        for g in self.groups:
            if self.error_feedback:
                g.err = torch.zeros(len(g.index), g.rows, g.cols, device=device)
        self.rank = int(config.rank)
        self.q_ready = False

    def _r(self, g, rank):
        return min(g.rows, g.cols, rank)

    def _draw(self, red, rows_of):
        """Draws from the reducer's shared RNG, matrix by matrix in layout order as libedgc does,
        rows_of(group) new rows of Q^T per matrix; returns them per group (B, rows, cols)."""
        per_matrix = {}
        for g in self.groups:
            for k in g.index:
                per_matrix[k] = (g, rows_of(g))
        out = {id(g): [None] * len(g.index) for g in self.groups}
        for k in range(len(self.mats)):
            g, n = per_matrix[k]
            host = torch.empty(n * g.cols, dtype=torch.float32)
            st = _lib.lib.edgc_reducer_draw_gaussian(red, ctypes.c_void_p(host.data_ptr()),
                                                     host.numel())
            if st != _lib.OK:
                raise RuntimeError(f"edgc: drawing Q: {_lib.status_text(st)}")
            out[id(g)][g.index.index(k)] = host.view(n, g.cols)
        return {key: torch.stack(v).to(self.device) for key, v in out.items()}

    def set_rank(self, red, rank):
        """edgc_powersgd_set_rank: keep each Q's first rows, draw the ones a higher rank adds."""
        if rank == self.rank:
            return
        old, self.rank = self.rank, rank
        if not self.q_ready:
            return
        if rank < old:
            for g in self.groups:
                g.q = g.q[:, :self._r(g, rank)].contiguous()
            return
        new = self._draw(red, lambda g: self._r(g, rank) - self._r(g, old))
        for g in self.groups:
            g.q = torch.cat([g.q, new[id(g)]], dim=1)
            orthonormalize_rows(g.q, self.eps)

    def step(self, red, flat, rank):
        """Synchronises flat (float32, on the device) at rank > 0. Returns (bytes sent, relative
        compression error or NaN)."""
        self.set_rank(red, rank)
        pack = torch.cat([flat[o:o + n] for o, n in self.dense]) if self.dense else None
        work = dist.all_reduce(pack, group=self.group, async_op=True) if pack is not None else None

        views = [flat[o:o + r * c].view(r, c) for o, r, c in self.mats]
        ms, m2 = [], flat.new_zeros(())
        for g in self.groups:
            grads = torch.stack([views[k] for k in g.index])
            if self.error_feedback:
                g.err += grads
                m2 += g.err.square().sum()
                grads = g.err
            ms.append(grads)
        if not self.q_ready:
            first = self._draw(red, lambda g: self._r(g, self.rank))
            for g in self.groups:
                g.q = first[id(g)]
                orthonormalize_rows(g.q, self.eps)
            self.q_ready = True
        elif self.orthonormalize_q:
            for g in self.groups:
                orthonormalize_rows(g.q, self.eps)

        pts = self._allreduce([g.q @ m.transpose(1, 2) for g, m in zip(self.groups, ms)])
        for p in pts:  # P^T = Q^T M^T, summed over the workers
            orthonormalize_rows(p, self.eps)
        qs = self._allreduce([p @ m for p, m in zip(pts, ms)])  # Q^T = P^T M
        e2 = flat.new_zeros(())
        for g, p, q, m in zip(self.groups, pts, qs, ms):
            g.q = q.mul_(1.0 / self.world)
            approx = p.transpose(1, 2) @ g.q  # G_hat = P Q^T
            for j, k in enumerate(g.index):
                views[k].copy_(approx[j])
            if self.error_feedback:
                g.err -= approx
                e2 += g.err.square().sum()
        if work is not None:
            work.wait()
            pack *= 1.0 / self.world
            at = 0
            for o, n in self.dense:
                flat[o:o + n] = pack[at:at + n]
                at += n
        n_pq = sum(p.numel() + q.numel() for p, q in zip(pts, qs))
        sent = 4 * (n_pq + (pack.numel() if pack is not None else 0))
        if not self.error_feedback:
            return sent, math.nan
        m2, e2 = float(m2), float(e2)  # the step's one host sync for the error
        return sent, math.sqrt(e2 / m2) if m2 > 0 else 0.0

    def _allreduce(self, parts):
        """Sums the tensors over the workers in one flat all-reduce; returns them in shape."""
        if not parts:
            return parts
        flat = torch.cat([p.flatten() for p in parts])
        dist.all_reduce(flat, group=self.group)
        return [x.view_as(p) for x, p in zip(torch.split(flat, [p.numel() for p in parts]), parts)]

    # -- exact resume: per matrix, independent of the grouping --------------------------------
    def state(self):
        q, err = [None] * len(self.mats), [None] * len(self.mats)
        for g in self.groups:
            for j, k in enumerate(g.index):
                q[k] = None if g.q is None else g.q[j].cpu()
                err[k] = None if g.err is None else g.err[j].cpu()
        return {"rank": self.rank, "q_ready": self.q_ready, "q": q, "err": err}

    def load(self, s):
        self.rank = s["rank"]
        self.q_ready = s["q_ready"]
        for g in self.groups:
            if self.q_ready:
                g.q = torch.stack([s["q"][k] for k in g.index]).to(self.device)
            if self.error_feedback:
                g.err = torch.stack([s["err"][k] for k in g.index]).to(self.device)


def split_step(engine, red, flat, check_finite):
    """One step of a split reducer over flat (float32, on its device), in place. Returns
    (status, edgc_step_stats); on ERR_NONFINITE nothing changed."""
    # min and max are NaN if any element is, and infinite if any is: one pass, nothing allocated
    bad = check_finite and flat.numel() > 0 and \
        not bool(torch.isfinite(torch.stack(torch.aminmax(flat))).all())
    plan = _lib.Plan()
    st = _lib.lib.edgc_reducer_begin(red, int(bad), ctypes.byref(plan))
    if st != _lib.OK:
        return st, None
    t0 = time.perf_counter()
    rep = _lib.SyncReport()
    if plan.rank == 0:
        if engine.world > 1:
            dist.all_reduce(flat, group=engine.group)
            flat *= 1.0 / engine.world
        rep.compression_error = math.nan
    else:
        rep.bytes_sent, rep.compression_error = engine.step(red, flat, plan.rank)
    _device_sync(flat)
    rep.sync_ms = (time.perf_counter() - t0) * 1e3  # the sample's copy below is not sync time
    sample = None
    if plan.sample_entropy:
        sample = flat[::engine.stride].to("cpu", copy=True).contiguous()
        rep.entropy_sample = sample.data_ptr()
        rep.entropy_count = sample.numel()
    stats = _lib.StepStats()
    st = _lib.lib.edgc_reducer_end(red, ctypes.byref(rep), ctypes.byref(stats))
    return st, stats
