"""The BasisTape: what forward and backward need of a layer's input x, computed once per batch.

A tape entry per (sample, input) holds the first of the k+1 coefficient rows the sample uses
(its window, clamped into the coefficient array, so the rows are constant offsets), the k+1
basis values and derivatives there, and base(x) and base'(x). Training fills a tape in forward
and reads it in backward and in the regulariser instead of recomputing the basis.
"""
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .basis import _base_at, _cubic_terms, _derivative, _find_span_near, _span_terms, _tables
from .cache import CACHE
from .parallel import basis_work, thread_tasks, two_forms

TAPE_BLOCK = 4096  # tapes: samples whose inputs are copied to contiguous columns at a time
TERMS = 4  # the basis terms of one span are applied to the O outputs four at a time (one sweep for k=3)


class BasisTape(NamedTuple):
    """What forward and backward need of a layer's input x (B, I), computed once per batch.

        window      (I, B) int64   first coefficient row of the k+1 rows sample b uses on input i:
                                   the span's rows s-k..s clamped into 0..G+k-1
        values      (I, T, B)      basis value of row window + p, p = 0..T-1 (0 past k, and
                                   for rows not among s-k..s); T = k+1 rounded up to TERMS
        derivs      (I, T, B)      their derivatives
        base_val    (I, B)         base(x) and base'(x)
        base_slope  (I, B)
        ext, inv                   the knot tables of _knot_tables
    Memory O(B I k), independent of G. A sample outside the knot range has no basis terms.
    """
    window: np.ndarray
    values: np.ndarray
    derivs: np.ndarray
    base_val: np.ndarray
    base_slope: np.ndarray
    ext: np.ndarray
    inv: np.ndarray


def n_terms(k):
    """k+1 rounded up to a multiple of TERMS: the terms a sweep applies per (sample, input)."""
    return TERMS * ((k + TERMS) // TERMS)


def new_basis_tape(B, I, n_knots, k, dtype):
    """An empty BasisTape for B samples of I inputs with n_knots knots each."""
    T = n_terms(k)
    return BasisTape(np.empty((I, B), np.int64), np.empty((I, T, B), dtype), np.empty((I, T, B), dtype),
                np.empty((I, B), dtype), np.empty((I, B), dtype), np.empty((I, n_knots + 2 * k), dtype),
                np.empty((I, n_knots - 1, k * (k + 1) // 2), dtype))


@njit(cache=CACHE)
def _tape_rows(xi, knots, k, base, i, column, window, values, derivs, base_val, base_slope, ext, inv, N):
    """The tape entries on input i of the samples whose values are xi, written at columns column.. ."""
    n_basis = knots.shape[1] - 1 - k
    T = values.shape[1]
    zero = values.dtype.type(0)
    one = values.dtype.type(1)
    three = values.dtype.type(3)
    # base(x) in a loop of its own: silu's exp is a library call, and with the span search and
    # the triangle in the same loop body the calls kept the rest from overlapping (16.9 -> 14.4
    # ns per pair at I=5, G=10, k=3; measured on the 2-core EPYC)
    for j in range(xi.shape[0]):
        base_val[i, column + j], base_slope[i, column + j] = _base_at(xi[j], base, one)
    for j in range(xi.shape[0]):
        c = column + j
        xv = xi[j]
        s = _find_span_near(knots, i, xv, window[i, c] + k)
        if s < 0:
            window[i, c] = 0
            for p in range(T):
                values[i, p, c] = zero
                derivs[i, p, c] = zero
            continue
        w = min(max(s - k, 0), n_basis - k - 1)
        window[i, c] = w
        if k == 3 and w == s - k:  # the common case: all four terms are coefficient rows
            v0, v1, v2, v3, d0, d1, d2 = _cubic_terms(ext, inv, i, s, xv)
            values[i, 0, c], values[i, 1, c], values[i, 2, c], values[i, 3, c] = v0, v1, v2, v3
            derivs[i, 0, c], derivs[i, 1, c] = three * (zero - d0), three * (d0 - d1)
            derivs[i, 2, c], derivs[i, 3, c] = three * (d1 - d2), three * (d2 - zero)
            continue
        _span_terms(ext, inv, i, s, k, xv, N)
        shift = w - (s - k)  # nonzero only in the extension cells: window p holds term p + shift
        for p in range(T):
            r = p + shift
            used = p <= k and 0 <= r <= k
            values[i, p, c] = N[r] if used else zero
            derivs[i, p, c] = _derivative(N, k, r) if used else zero


@njit(cache=CACHE)
def _tape_task(x, knots, k, base, first, last, window, values, derivs, base_val, base_slope, ext, inv):
    """The tape entries of samples first..last-1, TAPE_BLOCK samples at a time: their inputs are
    copied to one contiguous column per input first, so that the sweep over the samples of one
    input reads consecutive values (x is (B, I): a column is strided, and once x outgrows the
    cache every value read costs a cache line; 25 -> 14 ns per pair at B=10000, I=32)."""
    N = np.empty(2 * k + 2, values.dtype)
    I = x.shape[1]
    columns = np.empty((I, min(TAPE_BLOCK, last - first)), values.dtype)
    for start in range(first, last, TAPE_BLOCK):
        n = min(last, start + TAPE_BLOCK) - start
        for b in range(n):
            for i in range(I):
                columns[i, b] = x[start + b, i]
        for i in range(I):
            _tape_rows(columns[i, :n], knots, k, base, i, start, window, values, derivs, base_val, base_slope,
                       ext, inv, N)


@njit(cache=CACHE, parallel=True)
def _tape_tasks(x, knots, k, base, window, values, derivs, base_val, base_slope, ext, inv, n_tasks):
    B = x.shape[0]
    for task in prange(n_tasks):
        _tape_task(x, knots, k, base, task * B // n_tasks, (task + 1) * B // n_tasks,
                   window, values, derivs, base_val, base_slope, ext, inv)


def _basis_tape(parallel, x, knots, k, base, tape):
    """Fill `tape` (new_basis_tape(B, I, n_knots, k, dtype)) for x (B, I): see BasisTape.

    The windows the tape holds (from the previous fill, in training) are read first as each
    sample's likely span (_find_span_near); any content gives the same result. Parallel: one
    task per thread, each on a contiguous range of samples (an entry depends on its own sample
    only, so the split changes nothing but the speed)."""
    _tables(knots, k, tape.ext, tape.inv)
    if parallel:
        _tape_tasks(x, knots, k, base, tape.window, tape.values, tape.derivs, tape.base_val, tape.base_slope,
                    tape.ext, tape.inv, thread_tasks(x.shape[0]))
    else:
        _tape_task(x, knots, k, base, 0, x.shape[0], tape.window, tape.values, tape.derivs, tape.base_val,
                   tape.base_slope, tape.ext, tape.inv)


def _basis_tape_work(x, knots, k, base, tape):
    return basis_work(x.shape[0], x.shape[1], k)


basis_tape = two_forms("basis_tape", "basis", _basis_tape_work, _basis_tape)
basis_tape_serial, basis_tape_parallel = basis_tape.serial, basis_tape.parallel
