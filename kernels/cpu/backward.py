"""The fused backward of a KAN layer on the CPU, from a BasisTape of its input.

A task owns a group of inputs i and writes only their dcoef[i], dw_base[i], dw_spline[i] and
columns dx[:, i]; every sum over b runs in sample order inside the task, so how inputs are
grouped changes no result. The sweep over a block of samples is written three times, the same
operations in the same order, chosen by shape: one output with k <= 3, k <= 3, and k > 3.
"""
import numpy as np
from numba import njit, prange

from .cache import CACHE
from .parallel import sweep_work, thread_tasks, two_forms
from .tape import TERMS, _basis_tape, new_basis_tape

BACKWARD_BLOCK = 512  # backward: samples every input of a task sweeps before the next block


@njit(cache=CACHE, inline="always")
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


@njit(cache=CACHE)
def _add_rows(dcoef, i, m0, m1, m2, m3, g, b, v0, v1, v2, v3):
    """dcoef[i, m_p, :] += v_p g[b, :] for four terms, one whole row after the other: each loop
    is a contiguous multiply-add that vectorises over o (interleaving the four rows per o kept
    it scalar). Every element still takes its terms in order p = 0..3, so the bits are the same."""
    for o in range(g.shape[1]):
        dcoef[i, m0, o] += g[b, o] * v0
    for o in range(g.shape[1]):
        dcoef[i, m1, o] += g[b, o] * v1
    for o in range(g.shape[1]):
        dcoef[i, m2, o] += g[b, o] * v2
    for o in range(g.shape[1]):
        dcoef[i, m3, o] += g[b, o] * v3


@njit(cache=CACHE)
def _backward_rows_one_output(i, k, first, last, window, values, derivs, base_val, base_slope, g, coef, edge_base,
                              edge_spline, want_dx, dx, dcoef, dw_base):
    """_backward_rows of a layer with one output and k <= 3 (a regression network's last layer):
    the same operations in the same order on scalars, so the same bits, without the loops of
    length one over the outputs, which cost most of the general sweep at O = 1. dx[b, i] is the
    single term plus 0, which is what _sum_fixed_order returns for one term."""
    zero = coef.dtype.type(0)
    eb, es = edge_base[i, 0], edge_spline[i, 0]
    base_sum = dw_base[i, 0]
    for b in range(first, last):
        w = window[i, b]
        m0, m1, m2, m3 = w, w + min(1, k), w + min(2, k), w + min(3, k)
        gb = g[b, 0]
        dcoef[i, m0, 0] += gb * values[i, 0, b]
        dcoef[i, m1, 0] += gb * values[i, 1, b]
        dcoef[i, m2, 0] += gb * values[i, 2, b]
        dcoef[i, m3, 0] += gb * values[i, 3, b]
        base_sum += gb * base_val[i, b]
        if want_dx:
            dspline = (derivs[i, 0, b] * coef[i, m0, 0] + derivs[i, 1, b] * coef[i, m1, 0]
                       + derivs[i, 2, b] * coef[i, m2, 0] + derivs[i, 3, b] * coef[i, m3, 0])
            dx[b, i] = gb * (eb * base_slope[i, b] + es * dspline) + zero
    dw_base[i, 0] = base_sum


@njit(cache=CACHE)
def _backward_rows_one_group(i, k, first, last, window, values, derivs, base_val, base_slope, g, coef, edge_base,
                             edge_spline, want_dx, dx, dcoef, dw_base, dx_terms):
    """_backward_rows for k <= 3 (one group of TERMS terms): a single pass over the outputs per
    sample, each output's g read once for its four coefficient rows, its base term and its dx
    term (1.4 -> 1.3 ns per (b, i, o) at O = 128 and 6.4 -> 3.8 at O = 5 with dx, 3.9 -> 2.0
    without; about the same at O = 32). Every element takes its terms in order p = 0..3, so the
    same bits as the row-by-row form (_add_rows) that k > 3 keeps."""
    O = coef.shape[2]
    for b in range(first, last):
        w = window[i, b]
        bv = base_val[i, b]
        m0, m1, m2, m3 = w, w + min(1, k), w + min(2, k), w + min(3, k)
        v0, v1, v2, v3 = values[i, 0, b], values[i, 1, b], values[i, 2, b], values[i, 3, b]
        if want_dx:
            bs = base_slope[i, b]
            d0, d1, d2, d3 = derivs[i, 0, b], derivs[i, 1, b], derivs[i, 2, b], derivs[i, 3, b]
            for o in range(O):
                gb = g[b, o]
                dspline = d0 * coef[i, m0, o] + d1 * coef[i, m1, o] + d2 * coef[i, m2, o] + d3 * coef[i, m3, o]
                dcoef[i, m0, o] += gb * v0
                dcoef[i, m1, o] += gb * v1
                dcoef[i, m2, o] += gb * v2
                dcoef[i, m3, o] += gb * v3
                dw_base[i, o] += gb * bv
                dx_terms[o] = gb * (edge_base[i, o] * bs + edge_spline[i, o] * dspline)
            dx[b, i] = _sum_fixed_order(dx_terms, O)
        else:
            for o in range(O):
                gb = g[b, o]
                dcoef[i, m0, o] += gb * v0
                dcoef[i, m1, o] += gb * v1
                dcoef[i, m2, o] += gb * v2
                dcoef[i, m3, o] += gb * v3
                dw_base[i, o] += gb * bv


@njit(cache=CACHE)
def _backward_rows(i, k, first, last, window, values, derivs, base_val, base_slope, g, coef, edge_base, edge_spline,
                   want_dx, dx, dcoef, dw_base, dspline, dx_terms):
    """Samples first..last-1 of layer_backward's sweep on input i: accumulates C[i] (in dcoef[i])
    and D[i] (in dw_base[i]), see layer_backward, and when want_dx writes dx[b, i] (without it,
    none of the basis derivatives are read). dspline, dx_terms: scratch of O entries."""
    O = coef.shape[2]
    if O == 1 and values.shape[1] == TERMS:
        _backward_rows_one_output(i, k, first, last, window, values, derivs, base_val, base_slope, g, coef,
                                  edge_base, edge_spline, want_dx, dx, dcoef, dw_base)
        return
    if values.shape[1] == TERMS:
        _backward_rows_one_group(i, k, first, last, window, values, derivs, base_val, base_slope, g, coef,
                                 edge_base, edge_spline, want_dx, dx, dcoef, dw_base, dx_terms)
        return
    for b in range(first, last):  # k > 3
        w = window[i, b]
        bv = base_val[i, b]
        bs = base_slope[i, b]
        m0, m1, m2, m3 = w, w + min(1, k), w + min(2, k), w + min(3, k)
        v0, v1, v2, v3 = values[i, 0, b], values[i, 1, b], values[i, 2, b], values[i, 3, b]
        if want_dx:
            d0, d1, d2, d3 = derivs[i, 0, b], derivs[i, 1, b], derivs[i, 2, b], derivs[i, 3, b]
            for o in range(O):
                dspline[o] = d0 * coef[i, m0, o] + d1 * coef[i, m1, o] + d2 * coef[i, m2, o] + d3 * coef[i, m3, o]
        _add_rows(dcoef, i, m0, m1, m2, m3, g, b, v0, v1, v2, v3)
        for r in range(TERMS, values.shape[1], TERMS):  # k > 3: the further groups of terms
            m0, m1, m2, m3 = w + min(r, k), w + min(r + 1, k), w + min(r + 2, k), w + min(r + 3, k)
            v0, v1, v2, v3 = values[i, r, b], values[i, r + 1, b], values[i, r + 2, b], values[i, r + 3, b]
            if want_dx:
                d0, d1, d2, d3 = derivs[i, r, b], derivs[i, r + 1, b], derivs[i, r + 2, b], derivs[i, r + 3, b]
                for o in range(O):
                    dspline[o] += (d0 * coef[i, m0, o] + d1 * coef[i, m1, o] + d2 * coef[i, m2, o]
                                   + d3 * coef[i, m3, o])
            _add_rows(dcoef, i, m0, m1, m2, m3, g, b, v0, v1, v2, v3)
        for o in range(O):
            dw_base[i, o] += g[b, o] * bv
        if want_dx:
            for o in range(O):
                dx_terms[o] = g[b, o] * (edge_base[i, o] * bs + edge_spline[i, o] * dspline[o])
            dx[b, i] = _sum_fixed_order(dx_terms, O)


@njit(cache=CACHE)
def _backward_finish(i, coef, edge_spline, mask, dcoef, dw_base, dw_spline):
    """The per-edge factors of input i, once its sweep is done: dw_base = mask D,
    dw_spline = mask sum_m coef C, dcoef = edge_spline C."""
    zero = coef.dtype.type(0)
    for o in range(coef.shape[2]):
        dw_spline[i, o] = zero
        dw_base[i, o] *= mask[i, o]
    for m in range(coef.shape[1]):
        for o in range(coef.shape[2]):
            dw_spline[i, o] += coef[i, m, o] * dcoef[i, m, o]
            dcoef[i, m, o] *= edge_spline[i, o]
    for o in range(coef.shape[2]):
        dw_spline[i, o] *= mask[i, o]


@njit(cache=CACHE)
def _backward_group(first_input, last_input, k, window, values, derivs, base_val, base_slope, g, coef, edge_base,
                    edge_spline, mask, want_dx, dx, dcoef, dw_base, dw_spline):
    """layer_backward's work on inputs first_input..last_input-1 from the tape: their dcoef,
    dw_base, dw_spline and (want_dx) dx columns. The samples go BACKWARD_BLOCK at a time, all
    the group's inputs over one block before the next, so that the block's rows of g stay in
    the cache while every input reads them; each sum over b still runs in sample order."""
    zero = coef.dtype.type(0)
    B = g.shape[0]
    dspline = np.empty(coef.shape[2], coef.dtype)
    dx_terms = np.empty(coef.shape[2], coef.dtype)
    for i in range(first_input, last_input):
        dcoef[i, :, :] = zero
        dw_base[i, :] = zero
    for first in range(0, B, BACKWARD_BLOCK):
        last = min(B, first + BACKWARD_BLOCK)
        for i in range(first_input, last_input):
            _backward_rows(i, k, first, last, window, values, derivs, base_val, base_slope, g, coef, edge_base,
                           edge_spline, want_dx, dx, dcoef, dw_base, dspline, dx_terms)
    for i in range(first_input, last_input):
        _backward_finish(i, coef, edge_spline, mask, dcoef, dw_base, dw_spline)


@njit(cache=CACHE)
def _bias_gradient(g, dbias):
    """dbias[o] = sum_b g[b, o], in sample order."""
    dbias[:] = g.dtype.type(0)
    for b in range(g.shape[0]):
        for o in range(g.shape[1]):
            dbias[o] += g[b, o]


@njit(cache=CACHE)
def _backward_inputs(k, window, values, derivs, base_val, base_slope, g, coef, w_base, w_spline, mask,
                     want_dx, dx, dcoef, dw_base, dw_spline, dbias):
    _bias_gradient(g, dbias)
    edge_base, edge_spline = mask * w_base, mask * w_spline
    _backward_group(0, coef.shape[0], k, window, values, derivs, base_val, base_slope, g, coef, edge_base,
                    edge_spline, mask, want_dx, dx, dcoef, dw_base, dw_spline)


@njit(cache=CACHE, parallel=True)
def _backward_tasks(k, window, values, derivs, base_val, base_slope, g, coef, w_base, w_spline, mask,
                    want_dx, dx, dcoef, dw_base, dw_spline, dbias, n_groups):
    _bias_gradient(g, dbias)
    edge_base, edge_spline = mask * w_base, mask * w_spline
    I = coef.shape[0]
    for group in prange(n_groups):
        _backward_group(group * I // n_groups, (group + 1) * I // n_groups, k, window, values, derivs, base_val,
                        base_slope, g, coef, edge_base, edge_spline, mask, want_dx, dx, dcoef, dw_base, dw_spline)


def _input_gradient(dx, g, I):
    """(want_dx, dx) for the compiled sweeps: dx None -> the input gradient is not wanted, and an
    empty array of the same type stands in for it (no second compiled specialisation)."""
    return (True, dx) if dx is not None else (False, np.empty((0, I), g.dtype))


def _layer_backward_tape(parallel, tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward from a filled tape (basis_tape of the layer's input): the same bits.
    dx None: the input gradient is not computed (the first layer of a network in training, whose
    input is the data); the parameter gradients are the same bits either way. Parallel: one task
    per group of inputs, as many groups as threads (the grouping does not change any result:
    each input's sums are its own)."""
    want_dx, dx = _input_gradient(dx, g, coef.shape[0])
    if parallel:
        _backward_tasks(k, tape.window, tape.values, tape.derivs, tape.base_val, tape.base_slope, g, coef,
                        w_base, w_spline, mask, want_dx, dx, dcoef, dw_base, dw_spline, dbias,
                        thread_tasks(coef.shape[0]))
    else:
        _backward_inputs(k, tape.window, tape.values, tape.derivs, tape.base_val, tape.base_slope, g, coef,
                         w_base, w_spline, mask, want_dx, dx, dcoef, dw_base, dw_spline, dbias)


def _layer_backward(parallel, x, g, knots, coef, w_base, w_spline, mask, k, base, dx, dcoef, dw_base, dw_spline,
                    dbias):
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
    The outputs are overwritten, not accumulated into. It builds the tape of x (O(B I k)
    memory); layer_backward_tape reuses one that forward already built.
    """
    tape = new_basis_tape(x.shape[0], x.shape[1], knots.shape[1], k, coef.dtype)
    _basis_tape(parallel, x, knots, k, base, tape)
    _layer_backward_tape(parallel, tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias)


def _backward_work(B, coef, k):
    """sweep_work, or 0 for one input: its sweep is a single task, which runs serially anyway."""
    return sweep_work(B, coef, k) if coef.shape[0] > 1 else 0


def _backward_tape_work(tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias):
    return _backward_work(g.shape[0], coef, k)


def _layer_backward_work(x, g, knots, coef, w_base, w_spline, mask, k, base, dx, dcoef, dw_base, dw_spline, dbias):
    return _backward_work(x.shape[0], coef, k)


layer_backward_tape = two_forms("layer_backward_tape", "backward", _backward_tape_work, _layer_backward_tape)
layer_backward_tape_serial, layer_backward_tape_parallel = layer_backward_tape.serial, layer_backward_tape.parallel
layer_backward = two_forms("layer_backward", "backward", _layer_backward_work, _layer_backward)
layer_backward_serial, layer_backward_parallel = layer_backward.serial, layer_backward.parallel
