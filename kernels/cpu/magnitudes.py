"""The regulariser's edge magnitudes on the CPU, from a BasisTape of the layer's input:
sum_b |phi[b, i, o]| of every edge's spline-branch activation, and its gradient. One thread:
the regulariser is for interpretable-size models; every sum runs in sample order.
"""
import numpy as np
from numba import njit

from .backward import _sum_fixed_order
from .cache import CACHE
from .tape import TERMS


@njit(cache=CACHE)
def _spline_at(i, b, o, k, window, values, coef):
    """sum_p values[i, p, b] coef[i, window + p, o] over the T terms (padding terms are 0)."""
    w = window[i, b]
    total = values.dtype.type(0)
    for p in range(values.shape[1]):
        total += values[i, p, b] * coef[i, w + min(p, k), o]
    return total


@njit(cache=CACHE)
def _magnitude_sums(k, window, values, base_val, coef, edge_base, edge_spline, sums):
    """sums[i, o] = sum_b |phi[b, i, o]|, phi = edge_base base(x) + edge_spline spline(x)."""
    B = window.shape[1]
    zero = coef.dtype.type(0)
    for i in range(coef.shape[0]):
        for o in range(coef.shape[2]):
            sums[i, o] = zero
        for b in range(B):
            if values.shape[1] == TERMS:  # k <= 3: _spline_at written out, the same operations
                w = window[i, b]
                m0, m1, m2, m3 = w, w + min(1, k), w + min(2, k), w + min(3, k)
                v0, v1, v2, v3 = values[i, 0, b], values[i, 1, b], values[i, 2, b], values[i, 3, b]
                bv = base_val[i, b]
                for o in range(coef.shape[2]):
                    spline = zero + v0 * coef[i, m0, o] + v1 * coef[i, m1, o] + v2 * coef[i, m2, o] + v3 * coef[i, m3, o]
                    sums[i, o] += abs(edge_base[i, o] * bv + edge_spline[i, o] * spline)
                continue
            for o in range(coef.shape[2]):
                phi = edge_base[i, o] * base_val[i, b] + edge_spline[i, o] * _spline_at(i, b, o, k, window, values, coef)
                sums[i, o] += abs(phi)


def edge_magnitude_sums(tape, coef, w_base, w_spline, mask, k, sums):
    """sums (I, O) = sum_b |phi[b, i, o]| of the spline branch of every edge,
        phi[b, i, o] = mask (w_base base(x[b,i]) + w_spline sum_m coef[i,m,o] B_im(x[b,i])),
    from a filled BasisTape of x (the L1 magnitudes of the regulariser, times B). One thread:
    the regulariser is for interpretable-size models."""
    _magnitude_sums(k, tape.window, tape.values, tape.base_val, coef, mask * w_base, mask * w_spline, sums)


@njit(cache=CACHE, inline="always")
def _magnitude_backward_sample(i, b, k, window, values, derivs, base_val, base_slope, coef, w_base, w_spline,
                               edge_base, edge_spline, scale, dcoef, dw_base, dw_spline, dx_terms):
    """_magnitude_backward's work on sample b of input i for k <= 3 (four terms), the rows and
    basis values read once for all outputs; dx_terms[o] gets the input-gradient terms."""
    zero = coef.dtype.type(0)
    w = window[i, b]
    m0, m1, m2, m3 = w, w + min(1, k), w + min(2, k), w + min(3, k)
    v0, v1, v2, v3 = values[i, 0, b], values[i, 1, b], values[i, 2, b], values[i, 3, b]
    d0, d1, d2, d3 = derivs[i, 0, b], derivs[i, 1, b], derivs[i, 2, b], derivs[i, 3, b]
    bv, bs = base_val[i, b], base_slope[i, b]
    for o in range(coef.shape[2]):
        c0, c1, c2, c3 = coef[i, m0, o], coef[i, m1, o], coef[i, m2, o], coef[i, m3, o]
        spline = zero + v0 * c0 + v1 * c1 + v2 * c2 + v3 * c3
        phi = edge_base[i, o] * bv + edge_spline[i, o] * spline
        q = scale[i, o] if phi > zero else (-scale[i, o] if phi < zero else phi - phi)
        dw_base[i, o] += q * bv
        dw_spline[i, o] += q * spline
        qs = q * w_spline[i, o]
        dcoef[i, m0, o] += qs * v0
        dcoef[i, m1, o] += qs * v1
        dcoef[i, m2, o] += qs * v2
        dcoef[i, m3, o] += qs * v3
        slope = zero + d0 * c0 + d1 * c1 + d2 * c2 + d3 * c3
        dx_terms[o] = q * w_base[i, o] * bs + qs * slope


@njit(cache=CACHE)
def _magnitude_backward(k, window, values, derivs, base_val, base_slope, coef, w_base, w_spline, edge_base,
                        edge_spline, scale, dx, dcoef, dw_base, dw_spline):
    B = window.shape[1]
    O = coef.shape[2]
    dx_terms = np.empty(O, coef.dtype)
    zero = coef.dtype.type(0)
    for i in range(coef.shape[0]):
        for b in range(B):
            w = window[i, b]
            if values.shape[1] == TERMS:  # k <= 3: the loop below written out, the same operations
                _magnitude_backward_sample(i, b, k, window, values, derivs, base_val, base_slope, coef, w_base,
                                           w_spline, edge_base, edge_spline, scale, dcoef, dw_base, dw_spline,
                                           dx_terms)
                dx[b, i] += _sum_fixed_order(dx_terms, O)
                continue
            for o in range(O):
                spline = _spline_at(i, b, o, k, window, values, coef)
                phi = edge_base[i, o] * base_val[i, b] + edge_spline[i, o] * spline
                q = scale[i, o] if phi > zero else (-scale[i, o] if phi < zero else phi - phi)
                dw_base[i, o] += q * base_val[i, b]
                dw_spline[i, o] += q * spline
                qs = q * w_spline[i, o]
                slope = zero
                for p in range(values.shape[1]):
                    m = w + min(p, k)
                    dcoef[i, m, o] += qs * values[i, p, b]
                    slope += derivs[i, p, b] * coef[i, m, o]
                dx_terms[o] = q * w_base[i, o] * base_slope[i, b] + qs * slope
            dx[b, i] += _sum_fixed_order(dx_terms, O)


def edge_magnitude_backward(tape, coef, w_base, w_spline, mask, k, scale, dx, dcoef, dw_base, dw_spline):
    """Add the gradient of sum_{i,o} scale[i,o] / mask[i,o] sum_b |phi[b,i,o]| (phi as in
    edge_magnitude_sums; scale = dR/d(sum |phi|) times mask, (I, O)) to dx (B, I) and the
    parameter gradients:
        q = sign(phi) scale,   dw_base += sum_b q base(x),   dw_spline += sum_b q spline(x),
        dcoef[i, m, o] += sum_b q w_spline B_m(x),   dx += sum_o q (w_base base'(x) + w_spline spline'(x))
    sign(0) = 0. One thread, sums in sample order."""
    _magnitude_backward(k, tape.window, tape.values, tape.derivs, tape.base_val, tape.base_slope, coef, w_base,
                        w_spline, mask * w_base, mask * w_spline, scale, dx, dcoef, dw_base, dw_spline)
