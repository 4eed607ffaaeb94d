"""Host-side helpers of the CUDA kernels: the array module and stream of the caller's arrays,
the per-call repack of the parameters, and the knot tables."""
import numpy as np
from numba import config as _numba_config
from numba import cuda

from .tiles import TO, _cdiv
from .vector import vector_alignment

try:  # CuPy is optional: absent under the simulator and on CPU-only machines
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None


def _is_cupy(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def _xp(a):
    """Array module of a: cupy for CuPy arrays, numpy otherwise (simulator, tests)."""
    return _cupy if _is_cupy(a) else np



_STREAMS = {}


def _stream(*arrays):
    """Launch on CuPy's current stream when given CuPy arrays; default stream otherwise."""
    if _numba_config.ENABLE_CUDASIM or not any(_is_cupy(a) for a in arrays):
        return 0
    ptr = _cupy.cuda.get_current_stream().ptr
    if ptr == 0:
        return 0
    if ptr not in _STREAMS:
        _STREAMS[ptr] = cuda.external_stream(ptr)
    return _STREAMS[ptr]


def _flat(xp, a):
    """C-contiguous 1-D view (a copy only when a is not contiguous): kernels index flat offsets."""
    return xp.ascontiguousarray(a).reshape(-1)


def repack(xp, coef, w_base, w_spline, mask, k):
    """Per-call repack of the parameters into the layout the fused kernels read.

        wp (I, OT, G+3k, TO): mask*w_spline*coef, outputs tiled by TO = 128 and padded to OT*TO
                              with zeros, k zero rows before and after the G+k basis rows, so
                              the k+1 rows of a span are constant offsets (TO apart) and never
                              out of range;
        wb (I, OT*TO):        mask*w_base, zero-padded.
    Returns flat wp, flat wb, G+3k, OT*TO. Costs one pass over the coefficients.
    """
    I, n_basis, O = coef.shape
    OP = _cdiv(O, TO) * TO
    folded = (mask * w_spline)[:, None, :] * coef
    wp = xp.zeros((I, n_basis + 2 * k, OP), dtype=coef.dtype)
    wp[:, k:k + n_basis, :O] = folded
    wp = wp.reshape(I, n_basis + 2 * k, OP // TO, TO).transpose(0, 2, 1, 3)
    wb = xp.zeros((I, OP), dtype=coef.dtype)
    wb[:, :O] = mask * w_base
    return _flat(xp, wp), _flat(xp, wb), n_basis + 2 * k, OP


def _data_pointer(a):
    return a.data.ptr if _is_cupy(a) else a.ctypes.data


def knot_tables(xp, knots, k):
    """What the kernels' Cox-de Boor triangle reads, flat: [ext | inv] (kernels/cpu/basis.py's
    _knot_tables, computed on the knots' device).

    ext (I, n + 2k): knots (I, n) with k more on each side at the end cells' spacing, knot j of
        input i (-k <= j < n + k) at ext[i, k + j], so a span near an end reads the knots past
        it without a branch;
    inv (I, n - 1, k(k+1)/2): inv[i, s, j(j-1)/2 + r] = 1 / (t_{s+r+1} - t_{s+r+1-j}) for
        j = 1..k, r < j: every denominator of the triangle at span s, so it divides nowhere.
    """
    I, n = knots.shape
    steps = xp.arange(1, k + 1, dtype=knots.dtype)
    left = knots[:, :1] - steps[::-1] * (knots[:, 1:2] - knots[:, :1])
    right = knots[:, -1:] + steps * (knots[:, -1:] - knots[:, -2:-1])
    ext = xp.concatenate([left, knots, right], axis=1)
    inv = xp.empty((I, n - 1, k * (k + 1) // 2), dtype=knots.dtype)
    one = knots.dtype.type(1)
    for j in range(1, k + 1):
        for r in range(j):
            upper = ext[:, r + 1 + k:r + k + n]          # t_{s+r+1}, s = 0..n-2
            lower = ext[:, r + 1 - j + k:r - j + k + n]  # t_{s+r+1-j}
            inv[:, :, j * (j - 1) // 2 + r] = one / (upper - lower)
    return xp.concatenate([ext.reshape(-1), inv.reshape(-1)])


def _padded_outputs(xp, g, OP):
    """g (B, O) as flat (B, OP), zero-padded when O is not a multiple of TO, and copied when
    its data is not aligned for load4 (4 elements: a view into a larger array may not be)."""
    B, O = g.shape
    if O == OP:
        flat = _flat(xp, g)
        if _data_pointer(flat) % vector_alignment(4, g.dtype.itemsize) == 0:
            return flat
    gp = xp.zeros((B, OP), dtype=g.dtype)
    gp[:, :O] = g
    return gp.reshape(-1)
