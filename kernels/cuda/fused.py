"""The fused (sparse) path's host functions: they repack the parameters and launch the kernels.

Arrays are device arrays: CuPy arrays, or NumPy arrays under Numba's CUDA simulator.
"""
import numpy as np

from .build import _kernel
from .host import _flat, _padded_outputs, _stream, _xp, knot_tables, repack
from .tiles import FIN_TI, FIN_TO, PG_WARPS, TB, TI, TO, WARP, WARPS, _cdiv, _check_k, _dtype, param_split


def span_basis(x, knots, k, spans, values, derivs):
    """Spans (B, I) int64 and the k+1 local basis values and derivatives (B, I, k+1)."""
    xp = _xp(x)
    B, I = x.shape
    if B * I == 0:
        return
    kern = _kernel("span_basis", values.dtype, k)
    kern[_cdiv(B * I, 256), 256, _stream(x)](_flat(xp, x), knot_tables(xp, knots, k), B, I,
                                             knots.shape[1], spans, values, derivs)


def layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Fused sparse forward: writes y (B, O)."""
    xp = _xp(x)
    B, I = x.shape
    O = coef.shape[2]
    if B == 0 or O == 0:
        return
    if I == 0:
        y[...] = bias
        return
    wp, wb, nbp, OP = repack(xp, coef, w_base, w_spline, mask, _check_k(k))
    out = y if y.flags.c_contiguous else xp.empty_like(y)
    kern = _kernel("forward", coef.dtype, k)
    kern[(_cdiv(B, TB), OP // TO), (WARP, WARPS), _stream(x)](
        _flat(xp, x), knot_tables(xp, knots, k), B, I, knots.shape[1], wp, wb, nbp, OP, bias,
        int(base), out.reshape(-1), O)
    if out is not y:
        y[...] = out


def layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base,
                   dx, dcoef, dw_base, dw_spline, dbias):
    """Fused deterministic backward of sum(g * y): overwrites dx and every parameter gradient."""
    xp = _xp(x)
    k = _check_k(k)
    B, I = x.shape
    O = coef.shape[2]
    stream = _stream(x)
    if B == 0 or I == 0 or O == 0:
        dx[...] = 0
        dcoef[...] = 0
        dw_base[...] = 0
        dw_spline[...] = 0
        dbias[...] = g.sum(axis=0) if B > 0 else 0
        return
    gp, OP, nbp, staged = _fused_dx(xp, x, g, knots, coef, w_base, w_spline, mask, k, base, dx)
    _parameter_gradients(xp, B, I, O, k, g, gp, OP, nbp, *staged,
                         coef, w_spline, mask, dcoef, dw_base, dw_spline, dbias, stream)


def _fused_dx(xp, x, g, knots, coef, w_base, w_spline, mask, k, base, dx):
    """Launch the dx kernel; -> (padded g, OP, G+3k, (rows, values, base values) it stored)."""
    B, I = x.shape
    dtype = _dtype(coef.dtype)
    wp, wb, nbp, OP = repack(xp, coef, w_base, w_spline, mask, k)
    gp = _padded_outputs(xp, g, OP)
    st_row = xp.empty(I * B, dtype=np.int32)
    st_val = xp.empty(I * B * (k + 1), dtype=dtype)
    st_bv = xp.empty(I * B, dtype=dtype)
    out = dx if dx.flags.c_contiguous else xp.empty_like(dx)
    _kernel("backward_dx", dtype, k)[(_cdiv(B, TB), _cdiv(I, TI)), (WARP, WARPS), _stream(x)](
        _flat(xp, x), knot_tables(xp, knots, k), B, I, knots.shape[1], gp, wp, wb, nbp, OP,
        int(base), out.reshape(-1), st_row, st_val, st_bv)
    if out is not dx:
        dx[...] = out
    return gp, OP, nbp, (st_row, st_val, st_bv)


def _parameter_gradients(xp, B, I, O, k, g, gp, OP, nbp, st_row, st_val, st_bv,
                         coef, w_spline, mask, dcoef, dw_base, dw_spline, dbias, stream):
    dtype = _dtype(coef.dtype)
    warps = PG_WARPS[dtype.itemsize]
    rw, n_win, chunk_len, n_chunks = param_split(B, I, O, nbp, k, dtype)
    rows = rw + k
    ws = xp.empty(n_chunks * n_win * I * OP * rows, dtype=dtype)
    _kernel("backward_params", dtype, k)[(_cdiv(I, warps), OP // TO, n_chunks * n_win),
                                         (WARP, warps), stream](
        st_row, st_val, B, I, gp, OP, n_win, chunk_len, ws)
    _kernel("backward_finalize", dtype, k)[(_cdiv(O, FIN_TO), _cdiv(I, FIN_TI)),
                                           (FIN_TO, FIN_TI), stream](
        ws, I, OP, nbp, rw, n_win, n_chunks, coef, w_spline, mask, dcoef, dw_spline)
    # the base branch and the bias are plain reductions over the batch: GEMM and sum
    dw_base[...] = mask * xp.matmul(st_bv.reshape(I, B), g)
    dbias[...] = g.sum(axis=0)
