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
    """Orthonormalises the rows of a (k x n) in place, as libedgc does. The fast path runs the two
    Gram-Schmidt passes that libedgc's loop runs unless a pass cancels more than half of a row,
    with no host sync per row; one check at the end falls back to the exact row-by-row path when
    some row needed more passes or was numerically dependent."""
    k = a.shape[0]
    if k == 0:
        return
    orig = a.clone()
    tiny = torch.finfo(a.dtype).tiny
    before = a.norm(dim=1)
    left = before.clone()  # the norm left after orthogonalising (row 0: none done)
    ratio = torch.ones_like(before)  # second pass over first: libedgc stops when > 0.5
    a[0] /= before[0].clamp_min(tiny)
    for i in range(1, k):
        ri, done = a[i], a[:i]
        ri -= done.t() @ (done @ ri)
        first = ri.norm()
        ri -= done.t() @ (done @ ri)
        left[i] = ri.norm()
        ratio[i] = left[i] / first.clamp_min(tiny)
        ri /= left[i].clamp_min(tiny)
    if not bool(((ratio > 0.5) & (left > 0) & (left > eps * before)).all()):
        a.copy_(orig)
        _orthonormalize_exact(a, eps)


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
        self.rank = int(config.rank)
        self.q_ready = False
        self.q = [None] * len(self.mats)  # Q^T per matrix: min(rank, rows, cols) x cols
        self.err = [torch.zeros(rows, cols, device=device) for _, rows, cols in self.mats] \
            if self.error_feedback else []
        self.total = sum(n for _, n in self.dense) + sum(r * c for _, r, c in self.mats)

    def _r(self, k, rank):
        _, rows, cols = self.mats[k]
        return min(rows, cols, rank)

    def _draw(self, red, k, n_rows):
        """n_rows rows of matrix k's Q^T from the reducer's shared RNG."""
        cols = self.mats[k][2]
        host = torch.empty(n_rows * cols, dtype=torch.float32)
        st = _lib.lib.edgc_reducer_draw_gaussian(red, ctypes.c_void_p(host.data_ptr()),
                                                 host.numel())
        if st != _lib.OK:
            raise RuntimeError(f"edgc: drawing Q: {_lib.status_text(st)}")
        return host.view(n_rows, cols).to(self.device)

    def set_rank(self, red, rank):
        """edgc_powersgd_set_rank: keep each Q's first rows, draw the ones a higher rank adds."""
        if rank == self.rank:
            return
        old, self.rank = self.rank, rank
        if not self.q_ready:
            return
        for k in range(len(self.mats)):
            r, r0 = self._r(k, rank), self._r(k, old)
            q = self.q[k][:r]
            if r > r0:
                q = torch.cat([q, self._draw(red, k, r - r0)])
            self.q[k] = q.contiguous()
        if rank > old:
            for q in self.q:
                orthonormalize_rows(q, self.eps)

    def step(self, red, flat, rank):
        """Synchronises flat (float32, on the device) at rank > 0. Returns (bytes sent, relative
        compression error or NaN)."""
        self.set_rank(red, rank)
        pack = torch.cat([flat[o:o + n] for o, n in self.dense]) if self.dense else None
        work = dist.all_reduce(pack, group=self.group, async_op=True) if pack is not None else None

        views = [flat[o:o + r * c].view(r, c) for o, r, c in self.mats]
        ms, m2 = [], 0.0
        for k, g in enumerate(views):
            if self.error_feedback:
                self.err[k] += g
                m2 += float(self.err[k].square().sum())
                ms.append(self.err[k])
            else:
                ms.append(g)
        if not self.q_ready:
            self.q = [self._draw(red, k, self._r(k, self.rank)) for k in range(len(self.mats))]
            for q in self.q:
                orthonormalize_rows(q, self.eps)
            self.q_ready = True
        elif self.orthonormalize_q:
            for q in self.q:
                orthonormalize_rows(q, self.eps)

        pts = [q @ m.t() for q, m in zip(self.q, ms)]  # P^T = Q^T M^T
        n_p = sum(p.numel() for p in pts)
        if pts:
            flat_p = torch.cat([p.flatten() for p in pts])
            dist.all_reduce(flat_p, group=self.group)
            pts = [p.view_as(x) for p, x in zip(torch.split(flat_p, [x.numel() for x in pts]), pts)]
        for p in pts:
            orthonormalize_rows(p, self.eps)
        qs = [p @ m for p, m in zip(pts, ms)]  # Q^T = P^T M
        n_q = sum(q.numel() for q in qs)
        if qs:
            flat_q = torch.cat([q.flatten() for q in qs])
            dist.all_reduce(flat_q, group=self.group)
            flat_q *= 1.0 / self.world
            self.q = [q.view_as(x).clone() for q, x in
                      zip(torch.split(flat_q, [x.numel() for x in qs]), qs)]

        e2 = 0.0
        for k, (p, q, g) in enumerate(zip(pts, self.q, views)):
            torch.mm(p.t(), q, out=g) if g.is_contiguous() else g.copy_(p.t() @ q)
            if self.error_feedback:
                self.err[k] -= g
                e2 += float(self.err[k].square().sum())
        if work is not None:
            work.wait()
            pack *= 1.0 / self.world
            at = 0
            for o, n in self.dense:
                flat[o:o + n] = pack[at:at + n]
                at += n
        sent = 4 * (n_p + n_q + (pack.numel() if pack is not None else 0))
        err = (math.sqrt(e2 / m2) if m2 > 0 else 0.0) if self.error_feedback else math.nan
        return sent, err

    # -- exact resume ------------------------------------------------------------------------
    def state(self):
        return {"rank": self.rank, "q_ready": self.q_ready,
                "q": [None if q is None else q.cpu() for q in self.q],
                "err": [e.cpu() for e in self.err]}

    def load(self, s):
        self.rank = s["rank"]
        self.q_ready = s["q_ready"]
        self.q = [None if q is None else q.to(self.device) for q in s["q"]]
        self.err = [e.to(self.device) for e in s["err"]]


def split_step(engine, red, flat, check_finite):
    """One step of a split reducer over flat (float32, on its device), in place. Returns
    (status, edgc_step_stats); on ERR_NONFINITE nothing changed."""
    bad = check_finite and not bool(torch.isfinite(flat).all())
    plan = _lib.Plan()
    st = _lib.lib.edgc_reducer_begin(red, int(bad), ctypes.byref(plan))
    if st != _lib.OK:
        return st, None
    rep = _lib.SyncReport()
    if plan.rank == 0:
        if engine.world > 1:
            dist.all_reduce(flat, group=engine.group)
            flat *= 1.0 / engine.world
        rep.compression_error = math.nan
    else:
        rep.bytes_sent, rep.compression_error = engine.step(red, flat, plan.rank)
    sample = None
    if plan.sample_entropy:
        sample = flat[::engine.stride].to("cpu", copy=True).contiguous()
        rep.entropy_sample = sample.data_ptr()
        rep.entropy_count = sample.numel()
    _device_sync(flat)
    stats = _lib.StepStats()
    st = _lib.lib.edgc_reducer_end(red, ctypes.byref(rep), ctypes.byref(stats))
    return st, stats
