"""ctypes bindings to libedgc: the structs and functions of include/edgc.h that the hook uses.

The library is found, in this order, at $EDGC_LIBRARY, where `make install` put it, next to this
package, in the build tree of the checkout the package sits in (build/libedgc.so), and on the
system's library path. No compiler is needed on the user's side.
"""

import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))

# edgc_status values (include/edgc.h, EDGC_STATUS_MAP)
OK, ERR_INVALID_ARG, ERR_CONFIG, ERR_NOMEM, ERR_LAYOUT, ERR_COMM, ERR_MISMATCH, ERR_NONFINITE = range(8)
ERR_BUFFER_SMALL, ERR_CORRUPT, ERR_STATE = 8, 9, 10

MODES = {"dense": 0, "powersgd": 1, "edgc": 2}
RULES = {"trend": 0, "cqm": 1, "error": 2, "decay": 3}
RMAX_RULES = {"budget": 0, "paper": 1}
WARMUP_SYNCS = {"rmax": 0, "dense": 1}


class Config(ctypes.Structure):
    """edgc_config, field for field (enums are C ints)."""

    _fields_ = [
        ("mode", ctypes.c_int),
        ("rank", ctypes.c_int),
        ("total_steps", ctypes.c_uint64),
        ("warmup_fraction", ctypes.c_double),
        ("window", ctypes.c_int),
        ("alpha", ctypes.c_double),
        ("beta", ctypes.c_double),
        ("bins", ctypes.c_int),
        ("scale_aware_entropy", ctypes.c_int),
        ("rule", ctypes.c_int),
        ("rank_step", ctypes.c_int),
        ("r_max", ctypes.c_int),
        ("r_min", ctypes.c_int),
        ("profile_start", ctypes.c_int),
        ("profile_base_steps", ctypes.c_int),
        ("profile_reps", ctypes.c_int),
        ("error_feedback", ctypes.c_int),
        ("orthonormalize_q", ctypes.c_int),
        ("orth_eps", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("check_finite", ctypes.c_int),
        ("pipeline_stage", ctypes.c_int),
        ("pipeline_stages", ctypes.c_int),
        ("rmax_rule", ctypes.c_int),
        ("rmax_slack", ctypes.c_double),
        ("min_saving", ctypes.c_double),
        ("warmup_sync", ctypes.c_int),
        ("error_margin", ctypes.c_double),
        ("reprofile_factor", ctypes.c_double),
        ("wam_rule", ctypes.c_int),
        ("threads", ctypes.c_int),
    ]


class Tensor(ctypes.Structure):
    """edgc_tensor."""

    _fields_ = [("offset", ctypes.c_size_t), ("rows", ctypes.c_size_t), ("cols", ctypes.c_size_t)]


class Layout(ctypes.Structure):
    """edgc_layout."""

    _fields_ = [("tensors", ctypes.POINTER(Tensor)), ("n_tensors", ctypes.c_size_t),
                ("total", ctypes.c_size_t)]


ALLREDUCE_F32 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
ALLREDUCE_I32 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
# libedgc never calls broadcast; the hook leaves it NULL
BROADCAST = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_int)
IALLREDUCE_F32 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                  ctypes.POINTER(ctypes.c_void_p))
TEST = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.POINTER(ctypes.c_int))
WAIT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class Comm(ctypes.Structure):
    """edgc_comm: the collectives, here callbacks into torch.distributed."""

    _fields_ = [
        ("ctx", ctypes.c_void_p),
        ("rank", ctypes.c_int),
        ("size", ctypes.c_int),
        ("allreduce_sum_f32", ALLREDUCE_F32),
        ("allreduce_max_i32", ALLREDUCE_I32),
        ("broadcast", BROADCAST),
        ("iallreduce_sum_f32", IALLREDUCE_F32),
        ("test", TEST),
        ("wait", WAIT),
    ]


class StepStats(ctypes.Structure):
    """edgc_step_stats."""

    _fields_ = [
        ("step", ctypes.c_uint64),
        ("mode", ctypes.c_int),
        ("phase", ctypes.c_int),
        ("rank", ctypes.c_int),
        ("r_min", ctypes.c_int),
        ("r_max", ctypes.c_int),
        ("bytes_sent", ctypes.c_uint64),
        ("bytes_dense", ctypes.c_uint64),
        ("total_sent", ctypes.c_uint64),
        ("total_dense", ctypes.c_uint64),
        ("sync_ms", ctypes.c_double),
        ("entropy_sampled", ctypes.c_int),
        ("entropy", ctypes.c_double),
        ("entropy_scaled", ctypes.c_double),
        ("compression_error", ctypes.c_double),
        ("dense_sync_ms", ctypes.c_double),
        ("wam_budget_ms", ctypes.c_double),
    ]


class Plan(ctypes.Structure):
    """edgc_plan."""

    _fields_ = [
        ("step", ctypes.c_uint64),
        ("phase", ctypes.c_int),
        ("rank", ctypes.c_int),
        ("sample_entropy", ctypes.c_int),
        ("timed", ctypes.c_int),
        ("rank_changed", ctypes.c_int),
    ]


class SyncReport(ctypes.Structure):
    """edgc_sync_report."""

    _fields_ = [
        ("sync_ms", ctypes.c_double),
        ("bytes_sent", ctypes.c_uint64),
        ("compression_error", ctypes.c_double),
        ("entropy_sample", ctypes.c_void_p),
        ("entropy_count", ctypes.c_size_t),
    ]


def _candidates():
    env = os.environ.get("EDGC_LIBRARY")
    if env:
        yield env
    try:  # written by `make install`
        from ._installed import LIBRARY
        yield LIBRARY
    except ImportError:
        pass
    for name in ("libedgc.so", "libedgc.so.0"):
        yield os.path.join(_HERE, name)
    repo = os.path.dirname(os.path.dirname(_HERE))
    yield os.path.join(repo, "build", "libedgc.so")
    found = ctypes.util.find_library("edgc")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError("edgc: cannot find libedgc.so; build it (make build) or set EDGC_LIBRARY. "
                      "Tried: " + ", ".join(tried))


lib = _load()

_sig = {
    "edgc_config_default": (Config, []),
    "edgc_config_check": (ctypes.c_int, [ctypes.POINTER(Config), ctypes.POINTER(Layout),
                                         ctypes.c_char_p, ctypes.c_size_t]),
    "edgc_status_str": (ctypes.c_char_p, [ctypes.c_int]),
    "edgc_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "edgc_version_string": (ctypes.c_char_p, []),
    "edgc_reducer_create": (ctypes.c_int, [ctypes.POINTER(Config), ctypes.POINTER(Layout),
                                           ctypes.POINTER(Comm), ctypes.POINTER(ctypes.c_void_p)]),
    "edgc_reducer_step": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.POINTER(StepStats)]),
    "edgc_reducer_step_pieces": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                                ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t,
                                                ctypes.POINTER(StepStats)]),
    "edgc_reducer_create_split": (ctypes.c_int, [ctypes.POINTER(Config), ctypes.POINTER(Layout),
                                                 ctypes.POINTER(Comm),
                                                 ctypes.POINTER(ctypes.c_void_p)]),
    "edgc_reducer_begin": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(Plan)]),
    "edgc_reducer_draw_gaussian": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p,
                                                  ctypes.c_size_t]),
    "edgc_reducer_end": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(SyncReport),
                                        ctypes.POINTER(StepStats)]),
    "edgc_reducer_state_size": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]),
    "edgc_reducer_save": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                         ctypes.POINTER(ctypes.c_size_t)]),
    "edgc_reducer_load": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]),
    "edgc_reducer_last_error": (ctypes.c_char_p, [ctypes.c_void_p]),
    "edgc_reducer_free": (None, [ctypes.c_void_p]),
}
for _name, (_res, _args) in _sig.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def status_text(st):
    return f"{lib.edgc_status_name(st).decode()}: {lib.edgc_status_str(st).decode()}"
