"""A layer's input derivatives carried forward (its "jet"), and their backward, on the CPU.

For physics-informed training the network must give, at every sample, its output u, the
gradient of u along D input directions and some second derivatives (the P pairs of directions a
PDE names). Per layer, with phi_d the d-th derivative of an edge's function at x[b, i]:

    y[b, o]      = bias[o] + sum_i phi_io(x[b, i])
    dy[b, o, a]  = sum_i phi1_io dx[b, i, a]
    d2y[b, o, p] = sum_i phi2_io dx[b, i, a_p] dx[b, i, b_p] + phi1_io d2x[b, i, p]

and the backward of a loss of (y, dy, d2y) needs phi3 and the derivatives of the bases up to
the second (reference.layer_jet_backward says how). Per (sample, input) the span is found as in
basis.py, and `_span_derivatives` runs the Cox–de Boor triangle keeping every order, so that
the d-th derivative of an order-p basis comes from the (d-1)-th of order p - 1. This costs
O(4 k^2) flops per (sample, input), small next to the O(k (D + P)) multiply-adds per
(sample, input, output) of the sweeps.

Forms, as everywhere in the CPU kernels (parallel.py): layer_jet_forward gives each task a block
of samples; layer_jet_backward gives each task a group of inputs, whose parameter gradients (sums
over samples, in sample order) and input-gradient columns (sums over outputs) it alone writes,
from one basis evaluation per (sample, input). Results are bit-identical for any thread count.
Kernels work in the dtype of coef, constants typed with dtype.type(...).
"""
import numpy as np
from numba import njit, prange

from .basis import _find_span, _tables
from .cache import CACHE
from .parallel import sweep_work, thread_tasks, two_forms


@njit(cache=CACHE)
def _span_derivatives(ext, inv, i, s, k, x, T):
    """T[p, d, r] = the d-th derivative (d = 0..3) of the order-p basis B_{s-p+r, p} at x, for
    p = 0..k and r = 0..p, by the triangle with every order kept:

        B_{m,p}     = (x - t_m) / (t_{m+p} - t_m) B_{m,p-1} + (t_{m+p+1} - x) / (t_{m+p+1} - t_{m+1}) B_{m+1,p-1}
        D^d B_{m,p} = p (D^(d-1) B_{m,p-1} / (t_{m+p} - t_m) - D^(d-1) B_{m+1,p-1} / (t_{m+p+1} - t_{m+1}))

    with m = s - p + r. Knots are read as t_j = ext[i, j + k] (continued past both ends), and
    the two reciprocals from basis._knot_tables' inv (no division here): with e = p(p-1)/2 they
    are inv[i, s, e + r - 1] (for r >= 1, where B_{m,p-1} is one of the span's) and
    inv[i, s, e + r] (for r <= p - 1)."""
    zero = T.dtype.type(0)
    T[0, 0, 0] = T.dtype.type(1)
    for d in range(1, 4):
        T[0, d, 0] = zero
    for p in range(1, k + 1):
        fp = T.dtype.type(p)
        e = p * (p - 1) // 2
        for r in range(p + 1):
            q_left = inv[i, s, e + r - 1] if r >= 1 else zero
            q_right = inv[i, s, e + r] if r <= p - 1 else zero
            left = T[p - 1, 0, r - 1] * q_left if r >= 1 else zero
            right = T[p - 1, 0, r] * q_right if r <= p - 1 else zero
            T[p, 0, r] = (x - ext[i, s - p + r + k]) * left + (ext[i, s + r + 1 + k] - x) * right
            for d in range(1, 4):
                left = T[p - 1, d - 1, r - 1] * q_left if r >= 1 else zero
                right = T[p - 1, d - 1, r] * q_right if r <= p - 1 else zero
                T[p, d, r] = fp * (left - right)


@njit(cache=CACHE)
def _base_jet(x, base, one):
    """(value, first, second, third derivative) of the base function (common.base_derivatives)."""
    zero = one - one
    if base == 0:
        sig = one / (one + np.exp(-x))
        ds = sig * (one - sig)
        c = one - (one + one) * sig
        three = one + one + one
        return (x * sig, sig * (one + x * (one - sig)), ds * (one + one + x * c),
                ds * (c * (three + x * c) - (one + one) * x * ds))
    if base == 1:
        return x, one, zero, zero
    return zero, zero, zero, zero


@njit(cache=CACHE)
def _span_weights(T, k, s, n_basis, rows, W):
    """The k+1 coefficient rows an input value reads and their weights: rows[r] = s-k+r clamped
    into 0..G+k-1 and W[d, r] = the d-th derivative of basis s-k+r (d = 0..3), 0 for a basis
    that does not exist (index outside 0..G+k-1) and for every r outside the knot range (s = -1),
    so that the sweeps over outputs need no test."""
    zero = W.dtype.type(0)
    for r in range(k + 1):
        m = s - k + r
        used = s >= 0 and 0 <= m < n_basis
        rows[r] = min(max(m, 0), n_basis - 1)
        for d in range(4):
            W[d, r] = T[k, d, r] if used else zero


@njit(cache=CACHE)
def _directions(b, i, dx, d2x, pairs, dxi, outer, d2xi):
    """The sample's input jet of input i, gathered: dxi[a] = dx[b, i, a], outer[p] =
    dx[b, i, a_p] dx[b, i, b_p], d2xi[p] = d2x[b, i, p]."""
    for a in range(dx.shape[2]):
        dxi[a] = dx[b, i, a]
    for p in range(d2x.shape[2]):
        outer[p] = dx[b, i, pairs[p, 0]] * dx[b, i, pairs[p, 1]]
        d2xi[p] = d2x[b, i, p]


@njit(cache=CACHE)
def _jet_forward_rows(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y,
                      ext, inv, first, last):
    I, n_basis, O = coef.shape
    D, P = dx.shape[2], d2x.shape[2]
    dt = coef.dtype.type
    one = dt(1)
    T = np.zeros((k + 1, 4, k + 1), coef.dtype)
    W = np.zeros((4, k + 1), coef.dtype)
    rows = np.zeros(k + 1, np.int64)
    dxi, outer, d2xi = np.zeros(D, coef.dtype), np.zeros(P, coef.dtype), np.zeros(P, coef.dtype)
    for b in range(first, last):
        for o in range(O):
            y[b, o] = bias[o]
            for a in range(D):
                dy[b, o, a] = dt(0)
            for p in range(P):
                d2y[b, o, p] = dt(0)
        for i in range(I):
            xi = x[b, i]
            s = _find_span(knots, i, xi)
            if s >= 0:
                _span_derivatives(ext, inv, i, s, k, xi, T)
            _span_weights(T, k, s, n_basis, rows, W)
            _directions(b, i, dx, d2x, pairs, dxi, outer, d2xi)
            b0, b1, b2, _ = _base_jet(xi, base, one)
            for o in range(O):
                m = mask[i, o]
                if m == dt(0):
                    continue
                s0, s1, s2 = dt(0), dt(0), dt(0)
                for r in range(k + 1):
                    c = coef[i, rows[r], o]
                    s0 += c * W[0, r]
                    s1 += c * W[1, r]
                    s2 += c * W[2, r]
                wb, ws = w_base[i, o], w_spline[i, o]
                phi1 = m * (wb * b1 + ws * s1)
                phi2 = m * (wb * b2 + ws * s2)
                y[b, o] += m * (wb * b0 + ws * s0)
                for a in range(D):
                    dy[b, o, a] += phi1 * dxi[a]
                for p in range(P):
                    d2y[b, o, p] += phi2 * outer[p] + phi1 * d2xi[p]


@njit(cache=CACHE, parallel=True)
def _jet_forward_tasks(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y, ext,
                       inv, n_tasks):
    B = x.shape[0]
    for task in prange(n_tasks):
        _jet_forward_rows(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y, ext,
                          inv, task * B // n_tasks, (task + 1) * B // n_tasks)


def _jet_forward(parallel, x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y):
    """Writes y (B, O), dy (B, O, D), d2y (B, O, P) of x (B, I), dx (B, I, D), d2x (B, I, P) for
    the pairs (P, 2) int64 of directions (reference.layer_jet_forward)."""
    ext, inv = _tables(knots, k)
    if parallel:
        _jet_forward_tasks(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y,
                           ext, inv, thread_tasks(x.shape[0]))
    else:
        _jet_forward_rows(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y,
                          ext, inv, 0, x.shape[0])


def _jet_work(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, *rest):
    return sweep_work(x.shape[0], coef, k) * (1 + dx.shape[2] + d2x.shape[2])


layer_jet_forward = two_forms("layer_jet_forward", "forward", _jet_work, _jet_forward)


@njit(cache=CACHE)
def _jet_backward_inputs(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx, gdx,
                         gd2x, dcoef, dw_base, dw_spline, ext, inv, first, last):
    """Everything of inputs first..last-1: their parameter gradients (every sum over samples in
    sample order) and the input gradients gx, gdx, gd2x of their columns (sums over outputs),
    from one basis evaluation per (sample, input). Per (b, i, o) the loss's weights on phi,
    phi1 and phi2 are a0 = gy[b,o], a1 = gdy[b,o,:] . dx[b,i,:] + gd2y[b,o,:] . d2x[b,i,:] and
    a2 = gd2y[b,o,:] . outer (reference.layer_jet_backward)."""
    n_basis, O = coef.shape[1], coef.shape[2]
    D, P = dx.shape[2], d2x.shape[2]
    dt = coef.dtype.type
    one = dt(1)
    T = np.zeros((k + 1, 4, k + 1), coef.dtype)
    W = np.zeros((4, k + 1), coef.dtype)
    rows = np.zeros(k + 1, np.int64)
    dxi, outer, d2xi = np.zeros(D, coef.dtype), np.zeros(P, coef.dtype), np.zeros(P, coef.dtype)
    g_dxi, g_d2xi = np.zeros(D, coef.dtype), np.zeros(P, coef.dtype)
    for i in range(first, last):
        for m in range(n_basis):
            for o in range(O):
                dcoef[i, m, o] = dt(0)
        for o in range(O):
            dw_base[i, o] = dt(0)
            dw_spline[i, o] = dt(0)
        for b in range(x.shape[0]):
            xi = x[b, i]
            s = _find_span(knots, i, xi)
            if s >= 0:
                _span_derivatives(ext, inv, i, s, k, xi, T)
            _span_weights(T, k, s, n_basis, rows, W)
            _directions(b, i, dx, d2x, pairs, dxi, outer, d2xi)
            b0, b1, b2, b3 = _base_jet(xi, base, one)
            g_xi = dt(0)
            for a in range(D):
                g_dxi[a] = dt(0)
            for p in range(P):
                g_d2xi[p] = dt(0)
            for o in range(O):
                m = mask[i, o]
                if m == dt(0):
                    continue
                s0, s1, s2, s3 = dt(0), dt(0), dt(0), dt(0)
                for r in range(k + 1):
                    c = coef[i, rows[r], o]
                    s0 += c * W[0, r]
                    s1 += c * W[1, r]
                    s2 += c * W[2, r]
                    s3 += c * W[3, r]
                a0, a1, a2 = gy[b, o], dt(0), dt(0)
                for a in range(D):
                    a1 += gdy[b, o, a] * dxi[a]
                for p in range(P):
                    a1 += gd2y[b, o, p] * d2xi[p]
                    a2 += gd2y[b, o, p] * outer[p]
                wb, ws = w_base[i, o], w_spline[i, o]
                phi1 = m * (wb * b1 + ws * s1)
                phi2 = m * (wb * b2 + ws * s2)
                phi3 = m * (wb * b3 + ws * s3)
                g_xi += a0 * phi1 + a1 * phi2 + a2 * phi3
                for a in range(D):
                    g_dxi[a] += gdy[b, o, a] * phi1
                for p in range(P):
                    through = gd2y[b, o, p] * phi2
                    g_dxi[pairs[p, 0]] += through * dxi[pairs[p, 1]]
                    g_dxi[pairs[p, 1]] += through * dxi[pairs[p, 0]]
                    g_d2xi[p] += gd2y[b, o, p] * phi1
                dw_base[i, o] += m * (a0 * b0 + a1 * b1 + a2 * b2)
                dw_spline[i, o] += m * (a0 * s0 + a1 * s1 + a2 * s2)
                scale = m * ws
                for r in range(k + 1):
                    dcoef[i, rows[r], o] += scale * (a0 * W[0, r] + a1 * W[1, r] + a2 * W[2, r])
            gx[b, i] = g_xi
            for a in range(D):
                gdx[b, i, a] = g_dxi[a]
            for p in range(P):
                gd2x[b, i, p] = g_d2xi[p]


@njit(cache=CACHE, parallel=True)
def _jet_backward_tasks(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx, gdx,
                        gd2x, dcoef, dw_base, dw_spline, ext, inv, n_tasks):
    I = x.shape[1]
    for task in prange(n_tasks):
        _jet_backward_inputs(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx,
                             gdx, gd2x, dcoef, dw_base, dw_spline, ext, inv, task * I // n_tasks,
                             (task + 1) * I // n_tasks)


def _jet_backward(parallel, x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx,
                  gdx, gd2x, dcoef, dw_base, dw_spline, dbias):
    """Writes gx (B, I), gdx (B, I, D), gd2x (B, I, P) and dcoef, dw_base, dw_spline, dbias: the
    gradient of sum(gy y) + sum(gdy dy) + sum(gd2y d2y) of layer_jet_forward
    (reference.layer_jet_backward). A task owns a group of inputs: their parameters and their
    columns of gx, gdx, gd2x."""
    ext, inv = _tables(knots, k)
    args = (x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx, gdx, gd2x, dcoef,
            dw_base, dw_spline, ext, inv)
    if parallel:
        _jet_backward_tasks(*args, thread_tasks(x.shape[1]))
    else:
        _jet_backward_inputs(*args, 0, x.shape[1])
    _bias_sums(gy, dbias)


@njit(cache=CACHE)
def _bias_sums(gy, dbias):
    """dbias[o] = sum_b gy[b, o], in sample order."""
    for o in range(gy.shape[1]):
        total = gy.dtype.type(0)
        for b in range(gy.shape[0]):
            total += gy[b, o]
        dbias[o] = total


def _jet_backward_work(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, *rest):
    return 2 * sweep_work(x.shape[0], coef, k) * (1 + dx.shape[2] + d2x.shape[2]) if x.shape[1] > 1 else 0


layer_jet_backward = two_forms("layer_jet_backward", "backward", _jet_backward_work, _jet_backward)
