"""Numba CPU kernels of a KAN layer: span search, local B-spline basis, fused forward, fused backward.

Every kernel here has a twin of the same name in reference.py, and tests hold the two together.

The layer (see reference.py for shapes):
    y[b, o] = bias[o] + sum_i mask[i,o] * ( w_base[i,o] base(x[b,i])
                                           + w_spline[i,o] sum_r coef[i, s-k+r, o] B_r(x[b,i]) )
where s is the knot span of x[b, i] and B_0..B_k are the only bases that can be non-zero there.
The basis is never materialised as a (B, I, G+k) tensor: each (sample, input) pair computes its
span by binary search and its k+1 basis values by the Cox–de Boor triangle (O(k^2) flops), then
sweeps the O outputs, which read contiguous memory because o is the fastest axis of coef. The cost
per (b, i, o) is about k+3 multiply-adds whatever the grid size G.

Parallel layout (race-free, so results are bit-identical for any thread count):
    forward      threads own blocks of samples b: each writes its own rows y[b, :]
    backward     threads own inputs i: each writes its own dcoef[i], dw_base[i], dw_spline[i]
                 and its own column dx[:, i]; sums over b run in sample order inside one thread.
Kernels work in the dtype of coef (float32 or float64); constants are typed with
`dtype.type(...)` so that float32 kernels do no float64 arithmetic.
"""
import numpy as np
from numba import njit, prange

SAMPLES_PER_TASK = 64  # forward: samples handled by one parallel task
# Let LLVM fuse a*b + c into one FMA instruction (one rounding instead of two). This is the only
# fast-math flag: no reassociation, so the order of every sum is fixed by the code and results
# stay bit-identical from run to run and for any thread count.
CONTRACT = {"contract"}


@njit(cache=True, inline="always")
def _find_span(knots, i, x):
    """s with knots[i, s] <= x < knots[i, s+1]; -1 outside [knots[i, 0], knots[i, -1]) or NaN."""
    n = knots.shape[1]
    if not (x >= knots[i, 0] and x < knots[i, n - 1]):
        return -1
    lo = 0
    hi = n - 1  # invariant: knots[i, lo] <= x < knots[i, hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if x >= knots[i, mid]:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _knot(knots, i, j):
    """knots[i, j], continued past both ends at the spacing of the end cells.

    Near the ends of the knot vector the triangle asks for knots that do not exist; they only
    feed bases whose index falls outside 0..G+k-1, which the kernels drop. Continuing the
    spacing keeps those unused values finite.
    """
    n = knots.shape[1]
    if j < 0:
        return knots[i, 0] + knots.dtype.type(j) * (knots[i, 1] - knots[i, 0])
    if j >= n:
        return knots[i, n - 1] + knots.dtype.type(j - n + 1) * (knots[i, n - 1] - knots[i, n - 2])
    return knots[i, j]


@njit(cache=True, inline="always")
def _basis_at(knots, i, s, x, k, values, derivs, left, right, with_derivs):
    """Cox–de Boor triangle: values[r] = B_{s-k+r}(x), derivs[r] = B'_{s-k+r}(x), r = 0..k.

    values, derivs, left, right are scratch vectors of length k+1. The derivative of an
    order-k basis comes from the order k-1 row of the same triangle:
        B'_{m,k} = k ( B_{m,k-1} / (t_{m+k} - t_m) - B_{m+1,k-1} / (t_{m+k+1} - t_{m+1}) )
    """
    zero = values.dtype.type(0)
    values[0] = values.dtype.type(1)
    derivs[0] = values[0]  # holds the order k-1 row until the end
    for j in range(1, k + 1):
        left[j] = x - _knot(knots, i, s + 1 - j)
        right[j] = _knot(knots, i, s + j) - x
        saved = zero
        for r in range(j):
            temp = values[r] / (right[r + 1] + left[j - r])
            values[r] = saved + right[r + 1] * temp
            saved = left[j - r] * temp
        values[j] = saved
        if with_derivs and j == k - 1:
            for r in range(k):
                derivs[r] = values[r]
    if with_derivs:
        # the knot differences are already in the triangle's scratch:
        #   t_{s+r} - t_{s-k+r} = right[r] + left[k-r+1],  t_{s+r+1} - t_{s-k+r+1} = right[r+1] + left[k-r]
        order = values.dtype.type(k)
        for r in range(k, -1, -1):  # downwards, so derivs[r-1] still holds the order k-1 value
            rising = zero
            falling = zero
            if r >= 1:
                rising = derivs[r - 1] / (right[r] + left[k - r + 1])
            if r < k:
                falling = derivs[r] / (right[r + 1] + left[k - r])
            derivs[r] = order * (rising - falling)


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _sum_fixed_order(v, n):
    """sum(v[:n]) in a fixed order (four interleaved partial sums): same bits on every run."""
    zero = v.dtype.type(0)
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    q = n - n % 4
    for o in range(0, q, 4):
        a0 += v[o]
        a1 += v[o + 1]
        a2 += v[o + 2]
        a3 += v[o + 3]
    for o in range(q, n):
        a0 += v[o]
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, parallel=True)
def span_basis(x, knots, k, spans, values, derivs):
    """Spans and the k+1 local basis values and derivatives of every (sample, input).

    x (B, I), knots (I, n) -> writes spans (B, I) int64, values and derivs (B, I, k+1).
    Entries whose basis index is outside 0..G+k-1, and all entries outside the knot range
    (span -1), are zero.
    """
    B, I = x.shape
    n_basis = knots.shape[1] - 1 - k
    zero = values.dtype.type(0)
    for b in prange(B):
        left = np.empty(k + 1, values.dtype)
        right = np.empty(k + 1, values.dtype)
        for i in range(I):
            s = _find_span(knots, i, x[b, i])
            spans[b, i] = s
            if s < 0:
                values[b, i, :] = zero
                derivs[b, i, :] = zero
                continue
            _basis_at(knots, i, s, x[b, i], k, values[b, i], derivs[b, i], left, right, True)
            for r in range(k + 1):
                m = s - k + r
                if m < 0 or m >= n_basis:
                    values[b, i, r] = zero
                    derivs[b, i, r] = zero


@njit(cache=True, parallel=True, fastmath=CONTRACT)
def layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Fused forward: writes y (B, O). See the module docstring for the formula."""
    B, I = x.shape
    n_basis = coef.shape[1]
    O = coef.shape[2]
    dtype = coef.dtype
    zero = dtype.type(0)
    one = dtype.type(1)
    edge_base = mask * w_base  # (I, O)
    edge_spline = mask * w_spline
    n_tasks = (B + SAMPLES_PER_TASK - 1) // SAMPLES_PER_TASK
    for task in prange(n_tasks):
        values = np.empty(k + 1, dtype)
        derivs = np.empty(k + 1, dtype)
        left = np.empty(k + 1, dtype)
        right = np.empty(k + 1, dtype)
        spline = np.empty(O, dtype)
        first, last = task * SAMPLES_PER_TASK, min(B, (task + 1) * SAMPLES_PER_TASK)
        for b in range(first, last):
            for o in range(O):
                y[b, o] = bias[o]
        # inputs outside, samples inside: coef[i] stays in cache for the task's block of samples
        for i in range(I):
            for b in range(first, last):
                xv = x[b, i]
                base_val, _ = _base_at(xv, base, one)
                for o in range(O):
                    spline[o] = zero
                s = _find_span(knots, i, xv)
                if s >= 0:
                    _basis_at(knots, i, s, xv, k, values, derivs, left, right, False)
                    for r in range(k + 1):
                        m = s - k + r
                        if m < 0 or m >= n_basis:
                            continue
                        v = values[r]
                        for o in range(O):
                            spline[o] += coef[i, m, o] * v
                for o in range(O):
                    y[b, o] += edge_base[i, o] * base_val + edge_spline[i, o] * spline[o]


@njit(cache=True, parallel=True, fastmath=CONTRACT)
def layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base,
                   dx, dcoef, dw_base, dw_spline, dbias):
    """Fused backward of sum(g * y): writes dx (B, I) and every parameter gradient.

    The parameter gradients are per-edge factors times two reductions over the batch,
        C[i, m, o] = sum_b g[b,o] B_m(x[b,i])        D[i, o] = sum_b g[b,o] base(x[b,i])
        dcoef      = mask w_spline C
        dw_spline  = mask sum_m coef[i,m,o] C[i,m,o]
        dw_base    = mask D
        dbias[o]   = sum_b g[b,o]
    so the sweep over samples only accumulates C (in dcoef) and D (in dw_base); the factors are
    applied once per input at the end. The input gradient needs the basis derivatives:
        dx[b, i]   = sum_o g[b,o] mask (w_base base'(x) + w_spline sum_r coef[i,s-k+r,o] B'_r(x))
    The outputs are overwritten, not accumulated into.
    """
    B, I = x.shape
    n_basis = coef.shape[1]
    O = coef.shape[2]
    dtype = coef.dtype
    zero = dtype.type(0)
    one = dtype.type(1)
    for o in range(O):
        dbias[o] = zero
    for b in range(B):
        for o in range(O):
            dbias[o] += g[b, o]
    for i in prange(I):
        values = np.empty(k + 1, dtype)
        derivs = np.empty(k + 1, dtype)
        left = np.empty(k + 1, dtype)
        right = np.empty(k + 1, dtype)
        edge_base = mask[i] * w_base[i]  # (O,)
        edge_spline = mask[i] * w_spline[i]
        dspline = np.empty(O, dtype)
        dx_terms = np.empty(O, dtype)
        dcoef[i, :, :] = zero  # accumulates C[i] first
        dw_base[i, :] = zero  # accumulates D[i] first
        for b in range(B):
            xv = x[b, i]
            base_val, base_slope = _base_at(xv, base, one)
            for o in range(O):
                dspline[o] = zero
            s = _find_span(knots, i, xv)
            if s >= 0:
                _basis_at(knots, i, s, xv, k, values, derivs, left, right, True)
                for r in range(k + 1):
                    m = s - k + r
                    if m < 0 or m >= n_basis:
                        continue
                    v = values[r]
                    dv = derivs[r]
                    for o in range(O):
                        dcoef[i, m, o] += g[b, o] * v
                        dspline[o] += coef[i, m, o] * dv
            for o in range(O):
                dw_base[i, o] += g[b, o] * base_val
                dx_terms[o] = g[b, o] * (edge_base[o] * base_slope + edge_spline[o] * dspline[o])
            dx[b, i] = _sum_fixed_order(dx_terms, O)
        for o in range(O):
            dw_spline[i, o] = zero
            dw_base[i, o] *= mask[i, o]
        for m in range(n_basis):
            for o in range(O):
                dw_spline[i, o] += coef[i, m, o] * dcoef[i, m, o]
                dcoef[i, m, o] *= edge_spline[o]
        for o in range(O):
            dw_spline[i, o] *= mask[i, o]
