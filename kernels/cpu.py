"""Numba CPU kernels of a KAN layer: span search, local B-spline basis, fused forward, fused backward.

Every kernel here has a twin of the same name in reference.py, and tests hold the two together.

The layer (see reference.py for shapes):
    y[b, o] = bias[o] + sum_i mask[i,o] * ( w_base[i,o] base(x[b,i])
                                           + w_spline[i,o] sum_r coef[i, s-k+r, o] B_r(x[b,i]) )
where s is the knot span of x[b, i] and B_0..B_k are the only bases that can be non-zero there.
The basis is never materialised as a (B, I, G+k) tensor: for a block of SAMPLES_PER_TASK samples
and one input, `_block_terms` finds each span by binary search and runs the Cox–de Boor triangle
(O(k^2) flops) one entry at a time for the whole block, so its divisions vectorise over samples;
then each sample sweeps the O outputs, which read contiguous memory because o is the fastest axis
of coef, applying the k+1 basis terms TERMS at a time. The cost per (b, i, o) is about k+3
multiply-adds whatever the grid size G.

Serial and parallel forms. Each public kernel (span_basis, layer_forward, layer_backward) is a
plain Python function that picks one of two compiled forms by the size of the work:
    <kernel>_serial     one thread, no threading layer involved
    <kernel>_parallel   the same per-task code under prange
Both forms run the same compiled task function (`_*_rows`, `_backward_input`) on the same pieces
of work, so they give bit-identical results, for any thread count:
    span_basis, forward   a task owns a block of samples b and writes only their rows (forward:
                          FORWARD_TASK_BYTES of rows of y, so coef[i] is read once per task)
    backward              a task owns an input i and writes only dcoef[i], dw_base[i], dw_spline[i]
                          and the column dx[:, i]; sums over b run in sample order inside the task
The parallel form is compiled only when a launch first needs it (small models never pay for it).
No fast-math flag, not even FMA contraction: with contraction LLVM may fuse either product of
a*b + c*d, and it chose differently in the serial and the parallel caller of the same task function
(dx differed in the last bit). Without it every operation rounds as written, so the order of every
sum and product is fixed by this code whatever the compiler inlines where. The sweeps are bound by
loads and stores of coef/dcoef rows, not by multiply-add throughput.
Kernels work in the dtype of coef (float32 or float64); constants are typed with
`dtype.type(...)` so that float32 kernels do no float64 arithmetic.

Threads. `max_threads()` is the number of threads the kernels may use now and `thread_limit(n)`
caps it for the calling thread (see their docstrings).
"""
import contextlib
import numbers
import os
import warnings

import numba
import numpy as np
from numba import njit, prange

SAMPLES_PER_TASK = 64  # span_basis: samples of one parallel task; all kernels: samples of one basis block
# forward: a task keeps the rows y[b, :] of its samples in the L2 cache while it sweeps the inputs,
# so that each input's coef[i] rows are read once per task, not once per 64 samples. At G=200,
# B=4096, I=O=128, float64, one thread: 231 ms with 64-sample tasks, ~135 ms with 256 KiB of y,
# ~110 ms with 512 KiB (CPU time on the busy 2-core EPYC, so rough).
FORWARD_TASK_BYTES = 1 << 19
# A launch goes parallel only from this much work on: (b, i, o) count times (k+2) for the layer
# kernels, B*I*(k+1)^2 for span_basis. Measured on the 2-core AMD EPYC, forward+backward of one
# layer, G=10, float64, workqueue, cores shared with other jobs (load 6-13, no quiet window):
# serial/parallel time 0.3x at work 5e3, 0.6-0.8x at 5e4, 0.8-0.9x at 1.25e5, 1.0-1.2x at 1.28e6
# and up (not measured quiet: no quiet window this session). Below it, waking and joining the second thread costs
# more than it saves, and a short region often waits for a descheduled thread.
PARALLEL_WORK = 1 << 20


def _cache_available():
    """True when Numba has a writable place for this module's kernel cache.

    Numba looks, in order, in NUMBA_CACHE_DIR, in __pycache__ next to this file, and in the
    user's cache folder (~/.cache/numba, XDG_CACHE_HOME), so an installed read-only
    site-packages caches in the user's folder. Where none is writable, decorating with cache=True
    would fail at import; the kernels then compile in every process instead.
    """
    try:
        njit(cache=True)(_cache_available)
    except RuntimeError as error:
        warnings.warn(f"kanarray CPU kernels: no writable Numba cache folder ({error}); kernels will "
                      "compile in every process. Set NUMBA_CACHE_DIR to a writable folder.", RuntimeWarning)
        return False
    return True


CACHE = _cache_available()
TERMS = 4  # the basis terms of one span are applied to the O outputs four at a time (one sweep for k=3)




def _prefer_workqueue():
    """Use Numba's workqueue threading layer unless the user chose one (NUMBA_THREADING_LAYER).

    Measured on the 2-core machine with other CPU-bound processes running (load 6-7): with GNU
    OpenMP (Numba's default here; it spin-waits at the join) every parallel launch took >= 24 ms,
    even for 40 us of work; with workqueue the parallel forms cost about what the serial ones do
    (0.9-1.2x) at every size. tbb (pip package) was not available to compare. workqueue's
    limitation: no parallel launches from two Python threads at once (kanarray does none).
    The layer is chosen once per process, at the first parallel launch of any Numba code.
    """
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"


_prefer_workqueue()


def max_threads():
    """Number of threads the kernels may use now in the calling thread (1 = always serial)."""
    return numba.get_num_threads()


@contextlib.contextmanager
def thread_limit(n):
    """Cap the kernels' threads in the calling thread to n while the block runs; None = no cap.

    n larger than the threads Numba started (NUMBA_NUM_THREADS) is the same as no cap. The
    previous setting is restored on exit, also when the block raises.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"thread_limit: n must be None or an integer >= 1, got {n!r}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _go_parallel(work):
    return work >= PARALLEL_WORK and numba.get_num_threads() > 1


@njit(cache=CACHE)
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


@njit(cache=CACHE)
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


@njit(cache=CACHE)
def _block_terms(knots, i, x, first, last, k, n_basis, span, rows, values, derivs, left, right, with_derivs):
    """The basis terms of the samples first..last-1 on input i, vectorised over samples.

    For sample b (column c = b - first) and term r = 0..T-1 (T = rows.shape[0], a multiple of
    TERMS): rows[r, c] is the coefficient row and values[r, c], derivs[r, c] the basis value
    B_{s-k+r}(x) and derivative, by the Cox–de Boor triangle
        B_{m,j} = (x - t_m) / (t_{m+j} - t_m) B_{m,j-1} + (t_{m+j+1} - x) / (t_{m+j+1} - t_{m+1}) B_{m+1,j-1}
        B'_{m,k} = k ( B_{m,k-1} / (t_{m+k} - t_m) - B_{m+1,k-1} / (t_{m+k+1} - t_{m+1}) )
    computed one triangle entry at a time for all samples of the block (inner loops over c).
    Terms whose basis index falls outside 0..n_basis-1, padding terms (r > k), and every term of
    a sample outside the knot range are zero and point at row 0, so that the sweeps over outputs
    can always apply TERMS terms at once: adding 0 * coef changes nothing.
    span[c] is the knot span of the sample (-1 outside the knot range); left, right: (k+1, block)
    scratch.
    """
    nb = last - first
    dtype = values.dtype
    zero = dtype.type(0)
    one = dtype.type(1)
    for c in range(nb):
        s = _find_span(knots, i, x[first + c, i])
        span[c] = s
        if s < 0:
            s = 0  # any valid span: the terms are zeroed at the end
        for j in range(1, k + 1):
            left[j, c] = x[first + c, i] - _knot(knots, i, s + 1 - j)
            right[j, c] = _knot(knots, i, s + j) - x[first + c, i]
        values[0, c] = one
        derivs[0, c] = one  # holds the order k-1 row until the end
    for j in range(1, k + 1):
        for c in range(nb):
            values[j, c] = zero
        for r in range(j - 1, -1, -1):  # downwards: values[r+1] is already order j
            for c in range(nb):
                temp = values[r, c] / (right[r + 1, c] + left[j - r, c])
                values[r + 1, c] += left[j - r, c] * temp
                values[r, c] = right[r + 1, c] * temp
        if with_derivs and j == k - 1:
            for r in range(k):
                for c in range(nb):
                    derivs[r, c] = values[r, c]
    if with_derivs:
        order = dtype.type(k)
        for r in range(k, -1, -1):  # downwards, so derivs[r-1] still holds the order k-1 value
            for c in range(nb):
                rising = derivs[r - 1, c] / (right[r, c] + left[k - r + 1, c]) if r >= 1 else zero
                falling = derivs[r, c] / (right[r + 1, c] + left[k - r, c]) if r < k else zero
                derivs[r, c] = order * (rising - falling)
    for r in range(rows.shape[0]):  # written as selects, so that the loop over c vectorises
        for c in range(nb):
            m = span[c] - k + r
            used = span[c] >= 0 and r <= k and m >= 0 and m < n_basis
            rows[r, c] = m if used else 0
            values[r, c] = values[r, c] if used else zero
            derivs[r, c] = derivs[r, c] if used else zero


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
def _n_terms(k):
    return TERMS * ((k + TERMS) // TERMS)  # k+1 rounded up to a multiple of TERMS


@njit(cache=CACHE)
def _block_scratch(k, dtype_of):
    """span, rows, values, derivs, left, right for _block_terms on up to SAMPLES_PER_TASK samples."""
    dtype = dtype_of.dtype
    n = _n_terms(k)
    return (np.empty(SAMPLES_PER_TASK, np.int64), np.empty((n, SAMPLES_PER_TASK), np.int64), np.empty((n, SAMPLES_PER_TASK), dtype),
            np.empty((n, SAMPLES_PER_TASK), dtype), np.empty((k + 1, SAMPLES_PER_TASK), dtype),
            np.empty((k + 1, SAMPLES_PER_TASK), dtype))


# ---------------------------------------------------------------- span_basis


@njit(cache=CACHE)
def _span_basis_rows(x, knots, k, first, last, spans, values, derivs):
    """span_basis for the samples first..last-1, in blocks of SAMPLES_PER_TASK."""
    I = x.shape[1]
    n_basis = knots.shape[1] - 1 - k
    span, rows, vals, ders, left, right = _block_scratch(k, values)
    for start in range(first, last, SAMPLES_PER_TASK):
        stop = min(last, start + SAMPLES_PER_TASK)
        for i in range(I):
            _block_terms(knots, i, x, start, stop, k, n_basis, span, rows, vals, ders, left, right, True)
            for b in range(start, stop):
                c = b - start
                spans[b, i] = span[c]
                for r in range(k + 1):
                    values[b, i, r] = vals[r, c]
                    derivs[b, i, r] = ders[r, c]


def span_basis_serial(x, knots, k, spans, values, derivs):
    """span_basis on one thread."""
    _span_basis_rows(x, knots, k, 0, x.shape[0], spans, values, derivs)


@njit(cache=CACHE, parallel=True)
def span_basis_parallel(x, knots, k, spans, values, derivs):
    """span_basis with one task per SAMPLES_PER_TASK samples."""
    B = x.shape[0]
    for task in prange((B + SAMPLES_PER_TASK - 1) // SAMPLES_PER_TASK):
        _span_basis_rows(x, knots, k, task * SAMPLES_PER_TASK, min(B, (task + 1) * SAMPLES_PER_TASK),
                         spans, values, derivs)


def span_basis(x, knots, k, spans, values, derivs):
    """Spans and the k+1 local basis values and derivatives of every (sample, input).

    x (B, I), knots (I, n) -> writes spans (B, I) int64, values and derivs (B, I, k+1).
    Entries whose basis index is outside 0..G+k-1, and all entries outside the knot range
    (span -1), are zero.
    """
    work = x.shape[0] * x.shape[1] * (k + 1) * (k + 1)
    form = span_basis_parallel if _go_parallel(work) else span_basis_serial
    form(x, knots, k, spans, values, derivs)


# ---------------------------------------------------------------- forward


@njit(cache=CACHE)
def _forward_rows(x, knots, coef, edge_base, edge_spline, bias, k, base, first, last, y):
    """layer_forward for the samples first..last-1, with edge_* = mask * w_* (I, O)."""
    I = x.shape[1]
    n_basis = coef.shape[1]
    O = coef.shape[2]
    one = coef.dtype.type(1)
    span, rows, values, derivs, left, right = _block_scratch(k, coef)
    for b in range(first, last):
        for o in range(O):
            y[b, o] = bias[o]
    # inputs outside, samples inside: coef[i] stays in cache for all the samples of the task
    for i in range(I):
        for start in range(first, last, SAMPLES_PER_TASK):
            stop = min(last, start + SAMPLES_PER_TASK)
            _block_terms(knots, i, x, start, stop, k, n_basis, span, rows, values, derivs, left, right, False)
            for b in range(start, stop):
                c = b - start
                base_val, _ = _base_at(x[b, i], base, one)
                for r in range(0, rows.shape[0], TERMS):
                    m0, m1, m2, m3 = rows[r, c], rows[r + 1, c], rows[r + 2, c], rows[r + 3, c]
                    v0, v1, v2, v3 = values[r, c], values[r + 1, c], values[r + 2, c], values[r + 3, c]
                    if r == 0:
                        for o in range(O):
                            y[b, o] += edge_base[i, o] * base_val + edge_spline[i, o] * (
                                v0 * coef[i, m0, o] + v1 * coef[i, m1, o] + v2 * coef[i, m2, o] + v3 * coef[i, m3, o])
                    else:
                        for o in range(O):
                            y[b, o] += edge_spline[i, o] * (
                                v0 * coef[i, m0, o] + v1 * coef[i, m1, o] + v2 * coef[i, m2, o] + v3 * coef[i, m3, o])


def _forward_task_samples(y):
    """Samples of one forward task: FORWARD_TASK_BYTES of rows of y, a multiple of SAMPLES_PER_TASK."""
    return max(1, FORWARD_TASK_BYTES // (y.shape[1] * y.itemsize) // SAMPLES_PER_TASK) * SAMPLES_PER_TASK


def layer_forward_serial(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """layer_forward on one thread: the parallel form's tasks, one after the other."""
    edge_base, edge_spline = mask * w_base, mask * w_spline
    B, samples = x.shape[0], _forward_task_samples(y)
    for first in range(0, B, samples):
        _forward_rows(x, knots, coef, edge_base, edge_spline, bias, k, base, first, min(B, first + samples), y)


@njit(cache=CACHE, parallel=True)
def _forward_tasks(x, knots, coef, edge_base, edge_spline, bias, k, base, samples_per_task, y):
    B = x.shape[0]
    for task in prange((B + samples_per_task - 1) // samples_per_task):
        _forward_rows(x, knots, coef, edge_base, edge_spline, bias, k, base,
                      task * samples_per_task, min(B, (task + 1) * samples_per_task), y)


def layer_forward_parallel(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """layer_forward with one task per _forward_task_samples(y) samples."""
    _forward_tasks(x, knots, coef, mask * w_base, mask * w_spline, bias, k, base, _forward_task_samples(y), y)


def layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Fused forward: writes y (B, O). See the module docstring for the formula."""
    work = x.shape[0] * x.shape[1] * coef.shape[2] * (k + 2)
    form = layer_forward_parallel if _go_parallel(work) else layer_forward_serial
    form(x, knots, coef, w_base, w_spline, bias, mask, k, base, y)


# ---------------------------------------------------------------- backward


@njit(cache=CACHE)
def _backward_input(i, x, g, knots, coef, edge_base, edge_spline, mask, k, base,
                    dx, dcoef, dw_base, dw_spline):
    """layer_backward's work on input i: dx[:, i], dcoef[i], dw_base[i], dw_spline[i].

    The sweep over samples accumulates C[i] (in dcoef[i]) and D[i] (in dw_base[i]), see
    layer_backward; the per-edge factors are applied once at the end.
    """
    B = x.shape[0]
    n_basis = coef.shape[1]
    O = coef.shape[2]
    dtype = coef.dtype
    zero = dtype.type(0)
    one = dtype.type(1)
    span, rows, values, derivs, left, right = _block_scratch(k, coef)
    dspline = np.empty(O, dtype)
    dx_terms = np.empty(O, dtype)
    dcoef[i, :, :] = zero
    dw_base[i, :] = zero
    for start in range(0, B, SAMPLES_PER_TASK):
        stop = min(B, start + SAMPLES_PER_TASK)
        _block_terms(knots, i, x, start, stop, k, n_basis, span, rows, values, derivs, left, right, True)
        for b in range(start, stop):
            c = b - start
            base_val, base_slope = _base_at(x[b, i], base, one)
            for r in range(0, rows.shape[0], TERMS):
                m0, m1, m2, m3 = rows[r, c], rows[r + 1, c], rows[r + 2, c], rows[r + 3, c]
                v0, v1, v2, v3 = values[r, c], values[r + 1, c], values[r + 2, c], values[r + 3, c]
                d0, d1, d2, d3 = derivs[r, c], derivs[r + 1, c], derivs[r + 2, c], derivs[r + 3, c]
                for o in range(O):
                    go = g[b, o]
                    dcoef[i, m0, o] += go * v0
                    dcoef[i, m1, o] += go * v1
                    dcoef[i, m2, o] += go * v2
                    dcoef[i, m3, o] += go * v3
                    slope = d0 * coef[i, m0, o] + d1 * coef[i, m1, o] + d2 * coef[i, m2, o] + d3 * coef[i, m3, o]
                    dspline[o] = slope if r == 0 else dspline[o] + slope
            for o in range(O):
                dw_base[i, o] += g[b, o] * base_val
                dx_terms[o] = g[b, o] * (edge_base[i, o] * base_slope + edge_spline[i, o] * dspline[o])
            dx[b, i] = _sum_fixed_order(dx_terms, O)
    for o in range(O):
        dw_spline[i, o] = zero
        dw_base[i, o] *= mask[i, o]
    for m in range(n_basis):
        for o in range(O):
            dw_spline[i, o] += coef[i, m, o] * dcoef[i, m, o]
            dcoef[i, m, o] *= edge_spline[i, o]
    for o in range(O):
        dw_spline[i, o] *= mask[i, o]


@njit(cache=CACHE)
def _bias_gradient(g, dbias):
    """dbias[o] = sum_b g[b, o], in sample order."""
    dbias[:] = g.dtype.type(0)
    for b in range(g.shape[0]):
        for o in range(g.shape[1]):
            dbias[o] += g[b, o]


@njit(cache=CACHE)
def _backward_inputs(x, g, knots, coef, edge_base, edge_spline, mask, k, base, dx, dcoef, dw_base, dw_spline):
    for i in range(x.shape[1]):
        _backward_input(i, x, g, knots, coef, edge_base, edge_spline, mask, k, base, dx, dcoef, dw_base, dw_spline)


def layer_backward_serial(x, g, knots, coef, w_base, w_spline, mask, k, base,
                          dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward on one thread."""
    _bias_gradient(g, dbias)
    _backward_inputs(x, g, knots, coef, mask * w_base, mask * w_spline, mask, k, base,
                     dx, dcoef, dw_base, dw_spline)


@njit(cache=CACHE, parallel=True)
def _backward_tasks(x, g, knots, coef, edge_base, edge_spline, mask, k, base, dx, dcoef, dw_base, dw_spline):
    for i in prange(x.shape[1]):
        _backward_input(i, x, g, knots, coef, edge_base, edge_spline, mask, k, base, dx, dcoef, dw_base, dw_spline)


def layer_backward_parallel(x, g, knots, coef, w_base, w_spline, mask, k, base,
                            dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward with one task per input i."""
    _bias_gradient(g, dbias)
    _backward_tasks(x, g, knots, coef, mask * w_base, mask * w_spline, mask, k, base,
                    dx, dcoef, dw_base, dw_spline)


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
    work = x.shape[0] * x.shape[1] * coef.shape[2] * (k + 2)
    form = layer_backward_parallel if _go_parallel(work) and x.shape[1] > 1 else layer_backward_serial
    form(x, g, knots, coef, w_base, w_spline, mask, k, base, dx, dcoef, dw_base, dw_spline, dbias)
