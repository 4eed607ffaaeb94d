"""The local B-spline basis on the CPU: span search, the division-free Cox–de Boor triangle,
the base function, and span_basis, the k+1 bases of every (sample, input).

Per (sample, input) the span is found by a branch-free binary search, and the triangle
(O(k^2) flops, unrolled for k = 3) reads the reciprocals of its knot differences from tables
built once per launch (`_knot_tables`) instead of dividing. The tapes (tape.py) and span_basis
share these functions, so they give the same bits.
"""
import numpy as np
from numba import njit, prange

from .cache import CACHE
from .parallel import basis_work, thread_tasks, two_forms


@njit(cache=CACHE)
def _find_span(knots, i, x):
    """s with knots[i, s] <= x < knots[i, s+1]; -1 outside [knots[i, 0], knots[i, -1]) or NaN.

    Branch-free halving (the comparison becomes a select): the span of each sample is data,
    and a mispredicted branch per halving costs more than the search itself.
    """
    n = knots.shape[1]
    if not (x >= knots[i, 0] and x < knots[i, n - 1]):
        return -1
    lo = 0
    size = n - 1  # invariant: knots[i, lo] <= x < knots[i, lo + size]
    while size > 1:
        half = size >> 1
        lo = lo + half if knots[i, lo + half] <= x else lo
        size -= half
    return lo


@njit(cache=CACHE)
def _find_span_near(knots, i, x, guess):
    """_find_span, trying `guess` first: the span is unique, so any guess gives the same s, and
    a right one (the span of this sample at the previous evaluation, which training moves
    little) costs two comparisons instead of log2(n) dependent ones."""
    if 0 <= guess < knots.shape[1] - 1 and knots[i, guess] <= x < knots[i, guess + 1]:
        return guess
    return _find_span(knots, i, x)


@njit(cache=CACHE)
def _knot_tables(knots, k, ext, inv):
    """What the Cox–de Boor triangle reads, once per launch instead of once per sample.

    ext[i, j + k] = knots[i, j] for j = -k .. n-1+k, continued past both ends at the spacing of
    the end cells (those knots only feed bases outside 0..G+k-1, which are dropped; continuing
    keeps them finite). inv[i, s, j(j-1)/2 + r] = 1 / (t_{s+r+1} - t_{s+r+1-j}) for order
    j = 1..k and r = 0..j-1: every denominator of the triangle at span s, so that the per-sample
    work has no division.
    """
    I, n = knots.shape
    one = knots.dtype.type(1)
    for i in range(I):
        first_step = knots[i, 1] - knots[i, 0]
        last_step = knots[i, n - 1] - knots[i, n - 2]
        for j in range(-k, n + k):
            if j < 0:
                ext[i, j + k] = knots[i, 0] + knots.dtype.type(j) * first_step
            elif j >= n:
                ext[i, j + k] = knots[i, n - 1] + knots.dtype.type(j - n + 1) * last_step
            else:
                ext[i, j + k] = knots[i, j]
        for s in range(n - 1):
            for j in range(1, k + 1):
                for r in range(j):
                    inv[i, s, j * (j - 1) // 2 + r] = one / (ext[i, s + r + 1 + k] - ext[i, s + r + 1 - j + k])


def _tables(knots, k, ext=None, inv=None):
    """(ext, inv) of _knot_tables for knots (I, n), written into ext and inv when given."""
    n = knots.shape[1]
    ext = np.empty((knots.shape[0], n + 2 * k), knots.dtype) if ext is None else ext
    inv = np.empty((knots.shape[0], n - 1, k * (k + 1) // 2), knots.dtype) if inv is None else inv
    _knot_tables(knots, k, ext, inv)
    return ext, inv


@njit(cache=CACHE)
def _cubic_terms(ext, inv, i, s, x):
    """_span_terms for k = 3, unrolled into registers (the default order): the same operations
    in the same order, so the same bits -> (N[0], ..., N[6])."""
    q0, q1, q2 = inv[i, s, 0], inv[i, s, 1], inv[i, s, 2]
    q3, q4, q5 = inv[i, s, 3], inv[i, s, 4], inv[i, s, 5]
    l1, l2, l3 = x - ext[i, s + 3], x - ext[i, s + 2], x - ext[i, s + 1]
    r1, r2, r3 = ext[i, s + 4] - x, ext[i, s + 5] - x, ext[i, s + 6] - x
    a0, a1 = r1 * q0, l1 * q0                       # order 1
    t = a0 * q1                                     # order 2
    b0, saved = r1 * t, l2 * t
    t = a1 * q2
    b1, b2 = saved + r2 * t, l1 * t
    d0, d1, d2 = b0 * q3, b1 * q4, b2 * q5          # order 3
    return r1 * d0, l3 * d0 + r2 * d1, l2 * d1 + r3 * d2, l1 * d2, d0, d1, d2


@njit(cache=CACHE)
def _span_terms(ext, inv, i, s, k, x, N):
    """The k+1 bases of span s at x, by the Cox–de Boor triangle without division:

        B_{m,j} = (x - t_m) / (t_{m+j} - t_m) B_{m,j-1} + (t_{m+j+1} - x) / (t_{m+j+1} - t_{m+1}) B_{m+1,j-1}

    N[r] = B_{s-k+r, k}(x) for r = 0..k and N[k+1+r] = B_{s-k+1+r, k-1}(x) / (t_{s+r+1} - t_{s+r+1-k})
    for r = 0..k-1, so that the derivative of term r is k (N[k+r] - N[k+1+r]) (with N[k] and
    N[2k+1] read as 0). N: scratch of 2k+2 entries.
    """
    N[0] = N.dtype.type(1)
    for j in range(1, k + 1):
        saved = N.dtype.type(0)
        e = j * (j - 1) // 2
        for r in range(j):
            temp = N[r] * inv[i, s, e + r]
            if j == k:
                N[k + 1 + r] = temp
            N[r] = saved + (ext[i, s + r + 1 + k] - x) * temp
            saved = (x - ext[i, s + r + 1 - j + k]) * temp
        N[j] = saved


@njit(cache=CACHE)
def _derivative(N, k, r):
    """Derivative of term r from _span_terms' N."""
    rising = N[k + r] if r >= 1 else N.dtype.type(0)
    falling = N[k + 1 + r] if r < k else N.dtype.type(0)
    return N.dtype.type(k) * (rising - falling)


@njit(cache=CACHE)
def _base_at(x, base, one):
    """(value, derivative) of the base function: 0 = silu, 1 = identity, 2 = zero.

    `one` is 1 in the kernel's dtype, so that float32 kernels stay in float32.
    """
    zero = one - one
    if base == 0:
        sig = one / (one + np.exp(-x))
        return x * sig, sig * (one + x * (one - sig))
    if base == 1:
        return x, one
    return zero, zero


@njit(cache=CACHE)
def _span_basis_rows(x, knots, k, first, last, spans, values, derivs, ext, inv):
    """span_basis for the samples first..last-1."""
    n_basis = knots.shape[1] - 1 - k
    N = np.empty(2 * k + 2, values.dtype)
    zero = values.dtype.type(0)
    for b in range(first, last):
        for i in range(x.shape[1]):
            s = _find_span(knots, i, x[b, i])
            spans[b, i] = s
            if s >= 0:
                _span_terms(ext, inv, i, s, k, x[b, i], N)
            for r in range(k + 1):
                used = s >= 0 and 0 <= s - k + r < n_basis
                values[b, i, r] = N[r] if used else zero
                derivs[b, i, r] = _derivative(N, k, r) if used else zero


@njit(cache=CACHE, parallel=True)
def _span_basis_tasks(x, knots, k, spans, values, derivs, ext, inv, n_tasks):
    B = x.shape[0]
    for task in prange(n_tasks):
        _span_basis_rows(x, knots, k, task * B // n_tasks, (task + 1) * B // n_tasks, spans, values, derivs,
                         ext, inv)


def _span_basis(parallel, x, knots, k, spans, values, derivs):
    """Spans and the k+1 local basis values and derivatives of every (sample, input).

    x (B, I), knots (I, n) -> writes spans (B, I) int64, values and derivs (B, I, k+1) of the
    bases s-k..s. Entries whose basis index is outside 0..G+k-1, and all entries outside the
    knot range (span -1), are zero. Parallel: one task per thread, each on a contiguous range of
    samples.
    """
    if parallel:
        _span_basis_tasks(x, knots, k, spans, values, derivs, *_tables(knots, k), thread_tasks(x.shape[0]))
    else:
        _span_basis_rows(x, knots, k, 0, x.shape[0], spans, values, derivs, *_tables(knots, k))


def _span_basis_work(x, knots, k, spans, values, derivs):
    return basis_work(x.shape[0], x.shape[1], k)


span_basis = two_forms("span_basis", "basis", _span_basis_work, _span_basis)
span_basis_serial, span_basis_parallel = span_basis.serial, span_basis.parallel
