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

Forms, as everywhere in the CPU kernels (parallel.py): layer_jet_forward and the input part of
layer_jet_backward give each task a block of samples; the parameter part gives each task a group
of inputs and sums over samples in sample order inside it. Results are bit-identical for any
thread count. Kernels work in the dtype of coef, constants typed with dtype.type(...).
"""
import numpy as np
from numba import njit, prange

from .basis import _find_span, _tables
from .cache import CACHE
from .parallel import sweep_work, thread_tasks, two_forms


@njit(cache=CACHE)
def _span_derivatives(ext, i, s, k, x, T):
    """T[p, d, r] = the d-th derivative (d = 0..3) of the order-p basis B_{s-p+r, p} at x, for
    p = 0..k and r = 0..p, by the triangle with every order kept (knots read as
    t_j = ext[i, j + k], continued past both ends, so every denominator is finite)."""
    zero = T.dtype.type(0)
    T[0, 0, 0] = T.dtype.type(1)
    for d in range(1, 4):
        T[0, d, 0] = zero
    for p in range(1, k + 1):
        fp = T.dtype.type(p)
        for r in range(p + 1):
            m = s - p + r
            t_m, t_m1 = ext[i, m + k], ext[i, m + 1 + k]
            t_mp, t_mp1 = ext[i, m + p + k], ext[i, m + p + 1 + k]
            for d in range(4):
                left = T[p - 1, max(d - 1, 0), r - 1] if r >= 1 else zero
                right = T[p - 1, max(d - 1, 0), r] if r <= p - 1 else zero
                if d == 0:
                    T[p, 0, r] = (x - t_m) / (t_mp - t_m) * left + (t_mp1 - x) / (t_mp1 - t_m1) * right
                else:
                    T[p, d, r] = fp * (left / (t_mp - t_m) - right / (t_mp1 - t_m1))


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
def _edge_terms(T, k, s, n_basis, coef, i, o, S):
    """S[d] = sum_r coef[i, s-k+r, o] * (d-th derivative of basis s-k+r), d = 0..3, over the
    bases of the span that exist (index 0..G+k-1); all 0 outside the knot range (s = -1)."""
    for d in range(4):
        S[d] = coef.dtype.type(0)
    if s < 0:
        return
    for r in range(k + 1):
        m = s - k + r
        if 0 <= m < n_basis:
            c = coef[i, m, o]
            for d in range(4):
                S[d] += c * T[k, d, r]


@njit(cache=CACHE)
def _jet_forward_rows(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y,
                      ext, first, last):
    I, n_basis, O = coef.shape
    D, P = dx.shape[2], d2x.shape[2]
    dt = coef.dtype.type
    one = dt(1)
    T = np.zeros((k + 1, 4, k + 1), coef.dtype)
    S = np.zeros(4, coef.dtype)
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
                _span_derivatives(ext, i, s, k, xi, T)
            b0, b1, b2, _ = _base_jet(xi, base, one)
            for o in range(O):
                if mask[i, o] == dt(0):
                    continue
                _edge_terms(T, k, s, n_basis, coef, i, o, S)
                m, wb, ws = mask[i, o], w_base[i, o], w_spline[i, o]
                phi0 = m * (wb * b0 + ws * S[0])
                phi1 = m * (wb * b1 + ws * S[1])
                phi2 = m * (wb * b2 + ws * S[2])
                y[b, o] += phi0
                for a in range(D):
                    dy[b, o, a] += phi1 * dx[b, i, a]
                for p in range(P):
                    d2y[b, o, p] += phi2 * (dx[b, i, pairs[p, 0]] * dx[b, i, pairs[p, 1]]) + phi1 * d2x[b, i, p]


@njit(cache=CACHE, parallel=True)
def _jet_forward_tasks(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y, ext,
                       n_tasks):
    B = x.shape[0]
    for task in prange(n_tasks):
        _jet_forward_rows(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y, ext,
                          task * B // n_tasks, (task + 1) * B // n_tasks)


def _jet_forward(parallel, x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y):
    """Writes y (B, O), dy (B, O, D), d2y (B, O, P) of x (B, I), dx (B, I, D), d2x (B, I, P) for
    the pairs (P, 2) int64 of directions (reference.layer_jet_forward)."""
    ext, _ = _tables(knots, k)
    if parallel:
        _jet_forward_tasks(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y,
                           ext, thread_tasks(x.shape[0]))
    else:
        _jet_forward_rows(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base, y, dy, d2y,
                          ext, 0, x.shape[0])


def _jet_work(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, *rest):
    return sweep_work(x.shape[0], coef, k) * (1 + dx.shape[2] + d2x.shape[2])


layer_jet_forward = two_forms("layer_jet_forward", "forward", _jet_work, _jet_forward)


@njit(cache=CACHE)
def _weights(b, i, o, dx, d2x, pairs, gy, gdy, gd2y):
    """(A0, A1, A2): what a loss's gradient puts on phi, phi1 and phi2 of edge (i, o) at sample b."""
    a1 = gdy.dtype.type(0)
    a2 = gdy.dtype.type(0)
    for a in range(dx.shape[2]):
        a1 += gdy[b, o, a] * dx[b, i, a]
    for p in range(d2x.shape[2]):
        a1 += gd2y[b, o, p] * d2x[b, i, p]
        a2 += gd2y[b, o, p] * (dx[b, i, pairs[p, 0]] * dx[b, i, pairs[p, 1]])
    return gy[b, o], a1, a2


@njit(cache=CACHE)
def _jet_input_rows(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx, gdx, gd2x,
                    ext, first, last):
    I, n_basis, O = coef.shape
    D, P = dx.shape[2], d2x.shape[2]
    dt = coef.dtype.type
    one = dt(1)
    T = np.zeros((k + 1, 4, k + 1), coef.dtype)
    S = np.zeros(4, coef.dtype)
    for b in range(first, last):
        for i in range(I):
            gx[b, i] = dt(0)
            for a in range(D):
                gdx[b, i, a] = dt(0)
            for p in range(P):
                gd2x[b, i, p] = dt(0)
            xi = x[b, i]
            s = _find_span(knots, i, xi)
            if s >= 0:
                _span_derivatives(ext, i, s, k, xi, T)
            _, b1, b2, b3 = _base_jet(xi, base, one)
            for o in range(O):
                if mask[i, o] == dt(0):
                    continue
                _edge_terms(T, k, s, n_basis, coef, i, o, S)
                m, wb, ws = mask[i, o], w_base[i, o], w_spline[i, o]
                phi1 = m * (wb * b1 + ws * S[1])
                phi2 = m * (wb * b2 + ws * S[2])
                phi3 = m * (wb * b3 + ws * S[3])
                a0, a1, a2 = _weights(b, i, o, dx, d2x, pairs, gy, gdy, gd2y)
                gx[b, i] += a0 * phi1 + a1 * phi2 + a2 * phi3
                for a in range(D):
                    gdx[b, i, a] += gdy[b, o, a] * phi1
                for p in range(P):
                    through = gd2y[b, o, p] * phi2
                    gdx[b, i, pairs[p, 0]] += through * dx[b, i, pairs[p, 1]]
                    gdx[b, i, pairs[p, 1]] += through * dx[b, i, pairs[p, 0]]
                    gd2x[b, i, p] += gd2y[b, o, p] * phi1


@njit(cache=CACHE)
def _jet_param_inputs(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, dcoef,
                      dw_base, dw_spline, ext, first, last):
    """Parameter gradients of inputs first..last-1: every sum over samples runs in sample order."""
    n_basis, O = coef.shape[1], coef.shape[2]
    dt = coef.dtype.type
    one = dt(1)
    T = np.zeros((k + 1, 4, k + 1), coef.dtype)
    S = np.zeros(4, coef.dtype)
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
                _span_derivatives(ext, i, s, k, xi, T)
            b0, b1, b2, _ = _base_jet(xi, base, one)
            for o in range(O):
                if mask[i, o] == dt(0):
                    continue
                _edge_terms(T, k, s, n_basis, coef, i, o, S)
                a0, a1, a2 = _weights(b, i, o, dx, d2x, pairs, gy, gdy, gd2y)
                m = mask[i, o]
                dw_base[i, o] += m * (a0 * b0 + a1 * b1 + a2 * b2)
                dw_spline[i, o] += m * (a0 * S[0] + a1 * S[1] + a2 * S[2])
                if s >= 0:
                    scale = m * w_spline[i, o]
                    for r in range(k + 1):
                        j = s - k + r
                        if 0 <= j < n_basis:
                            dcoef[i, j, o] += scale * (a0 * T[k, 0, r] + a1 * T[k, 1, r] + a2 * T[k, 2, r])


@njit(cache=CACHE, parallel=True)
def _jet_backward_tasks(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx, gdx,
                        gd2x, dcoef, dw_base, dw_spline, ext, row_tasks, input_tasks):
    B, I = x.shape
    for task in prange(row_tasks):
        _jet_input_rows(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx, gdx,
                        gd2x, ext, task * B // row_tasks, (task + 1) * B // row_tasks)
    for task in prange(input_tasks):
        _jet_param_inputs(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, dcoef,
                          dw_base, dw_spline, ext, task * I // input_tasks, (task + 1) * I // input_tasks)


def _jet_backward(parallel, x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx,
                  gdx, gd2x, dcoef, dw_base, dw_spline, dbias):
    """Writes gx (B, I), gdx (B, I, D), gd2x (B, I, P) and dcoef, dw_base, dw_spline, dbias: the
    gradient of sum(gy y) + sum(gdy dy) + sum(gd2y d2y) of layer_jet_forward
    (reference.layer_jet_backward)."""
    ext, _ = _tables(knots, k)
    if parallel:
        _jet_backward_tasks(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx,
                            gdx, gd2x, dcoef, dw_base, dw_spline, ext, thread_tasks(x.shape[0]),
                            thread_tasks(x.shape[1]))
    else:
        _jet_input_rows(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, gx, gdx,
                        gd2x, ext, 0, x.shape[0])
        _jet_param_inputs(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base, dcoef,
                          dw_base, dw_spline, ext, 0, x.shape[1])
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
    return 2 * sweep_work(x.shape[0], coef, k) * (1 + dx.shape[2] + d2x.shape[2])


layer_jet_backward = two_forms("layer_jet_backward", "backward", _jet_backward_work, _jet_backward)
