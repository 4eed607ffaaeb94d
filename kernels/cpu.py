"""Numba CPU kernels of a KAN layer: span search, local B-spline basis, fused forward, fused backward;
and, on the same basis tapes, the regulariser's edge magnitudes; and the L-BFGS direction.

Every kernel here has a twin of the same name in reference.py, and tests hold the two together.

The layer (see reference.py for shapes):
    y[b, o] = bias[o] + sum_i mask[i,o] * ( w_base[i,o] base(x[b,i])
                                           + w_spline[i,o] sum_r coef[i, s-k+r, o] B_r(x[b,i]) )
where s is the knot span of x[b, i] and B_0..B_k are the only bases that can be non-zero there.
The basis is never materialised as a (B, I, G+k) tensor. Per (sample, input) the kernels find
the span by a branch-free binary search and run the Cox–de Boor triangle (O(k^2) flops, unrolled
for k = 3) with the reciprocals of its knot differences looked up, not divided (`_knot_tables`,
once per launch). The result is a BasisTape entry: the first of the k+1 coefficient rows the
sample uses (its window, clamped into the coefficient array, so the rows are constant offsets),
the k+1 values and derivatives, and base(x) and base'(x). Then each sample sweeps the O outputs,
which read contiguous memory because o is the fastest axis of coef, TERMS terms at a time. The
cost per (b, i, o) is about k+3 multiply-adds whatever the grid size G.

Two ways to run a layer:
    layer_forward, layer_backward             from x: the basis is computed where it is used
                                              (forward: one block of samples at a time)
    basis_tape, layer_forward_tape,           training: forward fills a BasisTape of x, which
    layer_backward_tape                       backward reads instead of recomputing the basis
Both run the same compiled sweeps on the same numbers, so they give the same bits.

Serial and parallel forms. Each public kernel is a plain Python function that picks one of two
compiled forms by the size of the work:
    <kernel>_serial     one thread, no threading layer involved
    <kernel>_parallel   the same per-task code under prange
Both forms run the same compiled task function on the same pieces of work, so they give
bit-identical results, for any thread count:
    tapes, span_basis     a task owns a range of samples and writes only their entries (one task
                          per thread)
    forward               a task owns a block of samples b and writes only their rows (forward:
                          FORWARD_TASK_BYTES of rows of y, so coef[i] is read once per task)
    backward              a task owns a group of inputs i and writes only their dcoef[i], dw_base[i],
                          dw_spline[i] and columns dx[:, i]; every sum over b runs in sample order
                          inside the task (how inputs are grouped changes no result)
The parallel form is compiled only when a launch first needs it (small models never pay for it).
No fast-math flag, not even FMA contraction: with contraction LLVM may fuse either product of
a*b + c*d, and it chose differently in the serial and the parallel caller of the same task function
(dx differed in the last bit). Without it every operation rounds as written, so the order of every
sum and product is fixed by this code whatever the compiler inlines where.
Kernels work in the dtype of coef (float32 or float64); constants are typed with
`dtype.type(...)` so that float32 kernels do no float64 arithmetic.

Threads. `max_threads()` is the number of threads the kernels may use now and `thread_limit(n)`
caps it for the calling thread (see their docstrings).
"""
import contextlib
import numbers
import os
import warnings
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

TAPE_BLOCK = 4096  # tapes: samples whose inputs are copied to contiguous columns at a time
BACKWARD_BLOCK = 512  # backward: samples every input of a task sweeps before the next block
# forward: a task keeps the rows y[b, :] of its samples in the L2 cache while it sweeps the inputs,
# so that each input's coef[i] rows are read once per task, not once per 64 samples. At G=200,
# B=4096, I=O=128, float64, one thread: 231 ms with 64-sample tasks, ~135 ms with 256 KiB of y,
# ~110 ms with 512 KiB (CPU time on the busy 2-core EPYC, so rough).
FORWARD_TASK_BYTES = 1 << 19
FORWARD_CHUNK_TASKS = 8  # layer_forward from x: forward tasks whose tape is built at once
# A launch goes parallel only from this much work on, per kind of kernel: B*I*(k+1)^2 for
# span_basis and the tapes ("basis"), (b, i, o) count times (k+2) for the layer sweeps. On the
# 2-core Xeon VM (quiet, workqueue, 2 threads) a launch costs 130-160 us even when empty, and
# more after serial work has let the second vCPU sleep: parallel / serial time of one launch,
# G=10, float64, serial and parallel calls alternating (as in an evaluation): basis 1.2-1.9 up to
# 1.5e6, 0.6-0.8 at 5e6; forward 1.0-1.8 up to 5e7, 0.5 at 3.4e8 (B=4096, I=O=128); backward
# 1.0-1.5 up to 1.5e7, 0.55-0.85 at 5e7, 0.5 at 3.4e8. Back to back (the second thread awake)
# they win from about 1e6 and 1e7. In whole evaluations, where parallel launches follow one
# another, [8, 32, 32, 1] at 10,000 rows took 35 ms (median of 6 alternating rounds) with the
# layer sweeps parallel from 1e7 against 40 ms from 3e7, and [4, 9, 1] the same 3.7 ms.
PARALLEL_WORK = {"basis": 4 * 10 ** 6, "forward": 10 ** 7, "backward": 10 ** 7}


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


def _go_parallel(kind, work):
    return work >= PARALLEL_WORK[kind] and numba.get_num_threads() > 1


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


# ---------------------------------------------------------------- the tape


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


def _tables(knots, k, ext=None, inv=None):
    n = knots.shape[1]
    ext = np.empty((knots.shape[0], n + 2 * k), knots.dtype) if ext is None else ext
    inv = np.empty((knots.shape[0], n - 1, k * (k + 1) // 2), knots.dtype) if inv is None else inv
    _knot_tables(knots, k, ext, inv)
    return ext, inv


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


def basis_tape_serial(x, knots, k, base, tape):
    """basis_tape on one thread."""
    _tables(knots, k, tape.ext, tape.inv)
    _tape_task(x, knots, k, base, 0, x.shape[0], *tape)


@njit(cache=CACHE, parallel=True)
def _tape_tasks(x, knots, k, base, window, values, derivs, base_val, base_slope, ext, inv, n_tasks):
    B = x.shape[0]
    for task in prange(n_tasks):
        _tape_task(x, knots, k, base, task * B // n_tasks, (task + 1) * B // n_tasks,
                   window, values, derivs, base_val, base_slope, ext, inv)


def basis_tape_parallel(x, knots, k, base, tape):
    """basis_tape with one task per thread, each on a contiguous range of samples (an entry
    depends on its own sample only, so the split changes nothing but the speed)."""
    _tables(knots, k, tape.ext, tape.inv)
    _tape_tasks(x, knots, k, base, *tape, max(1, min(x.shape[0], numba.get_num_threads())))


def basis_tape(x, knots, k, base, tape):
    """Fill `tape` (new_basis_tape(B, I, n_knots, k, dtype)) for x (B, I): see BasisTape.

    The windows the tape holds (from the previous fill, in training) are read first as each
    sample's likely span (_find_span_near); any content gives the same result."""
    work = x.shape[0] * x.shape[1] * (k + 1) * (k + 1)
    form = basis_tape_parallel if _go_parallel("basis", work) else basis_tape_serial
    form(x, knots, k, base, tape)


# ---------------------------------------------------------------- span_basis


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


def span_basis_serial(x, knots, k, spans, values, derivs):
    """span_basis on one thread."""
    _span_basis_rows(x, knots, k, 0, x.shape[0], spans, values, derivs, *_tables(knots, k))


@njit(cache=CACHE, parallel=True)
def _span_basis_tasks(x, knots, k, spans, values, derivs, ext, inv, n_tasks):
    B = x.shape[0]
    for task in prange(n_tasks):
        _span_basis_rows(x, knots, k, task * B // n_tasks, (task + 1) * B // n_tasks, spans, values, derivs,
                         ext, inv)


def span_basis_parallel(x, knots, k, spans, values, derivs):
    """span_basis with one task per thread, each on a contiguous range of samples."""
    _span_basis_tasks(x, knots, k, spans, values, derivs, *_tables(knots, k),
                      max(1, min(x.shape[0], numba.get_num_threads())))


def span_basis(x, knots, k, spans, values, derivs):
    """Spans and the k+1 local basis values and derivatives of every (sample, input).

    x (B, I), knots (I, n) -> writes spans (B, I) int64, values and derivs (B, I, k+1) of the
    bases s-k..s. Entries whose basis index is outside 0..G+k-1, and all entries outside the
    knot range (span -1), are zero.
    """
    work = x.shape[0] * x.shape[1] * (k + 1) * (k + 1)
    form = span_basis_parallel if _go_parallel("basis", work) else span_basis_serial
    form(x, knots, k, spans, values, derivs)


# ---------------------------------------------------------------- forward


@njit(cache=CACHE)
def _forward_sweep_one_output(i, first, last, column, k, window, values, base_val, coef, edge_base, edge_spline,
                              y):
    """_forward_sweep of a layer with one output and k <= 3 (a regression network's last layer):
    the same operations in the same order on scalars, so the same bits, without a loop of
    length one per sample."""
    eb, es = edge_base[i, 0], edge_spline[i, 0]
    for b in range(first, last):
        c = column + b - first
        w = window[i, c]
        m0, m1, m2, m3 = w, w + min(1, k), w + min(2, k), w + min(3, k)
        y[b, 0] += eb * base_val[i, c] + es * (
            values[i, 0, c] * coef[i, m0, 0] + values[i, 1, c] * coef[i, m1, 0]
            + values[i, 2, c] * coef[i, m2, 0] + values[i, 3, c] * coef[i, m3, 0])


@njit(cache=CACHE)
def _forward_sweep(i, first, last, column, k, window, values, base_val, coef, edge_base, edge_spline, y):
    """y[b, :] += every edge of input i at samples first..last-1 (tape columns column..).

    The T terms go TERMS at a time (one group for k <= 3); a padding term (p > k, value 0)
    reads row window + k.
    """
    O = coef.shape[2]
    if O == 1 and values.shape[1] == TERMS:
        _forward_sweep_one_output(i, first, last, column, k, window, values, base_val, coef, edge_base,
                                  edge_spline, y)
        return
    for b in range(first, last):
        c = column + b - first
        w = window[i, c]
        bv = base_val[i, c]
        m0, m1, m2, m3 = w, w + min(1, k), w + min(2, k), w + min(3, k)
        v0, v1, v2, v3 = values[i, 0, c], values[i, 1, c], values[i, 2, c], values[i, 3, c]
        for o in range(O):
            y[b, o] += edge_base[i, o] * bv + edge_spline[i, o] * (
                v0 * coef[i, m0, o] + v1 * coef[i, m1, o] + v2 * coef[i, m2, o] + v3 * coef[i, m3, o])
        for r in range(TERMS, values.shape[1], TERMS):
            m0, m1, m2, m3 = w + min(r, k), w + min(r + 1, k), w + min(r + 2, k), w + min(r + 3, k)
            v0, v1, v2, v3 = values[i, r, c], values[i, r + 1, c], values[i, r + 2, c], values[i, r + 3, c]
            for o in range(O):
                y[b, o] += edge_spline[i, o] * (
                    v0 * coef[i, m0, o] + v1 * coef[i, m1, o] + v2 * coef[i, m2, o] + v3 * coef[i, m3, o])


@njit(cache=CACHE)
def _clear_rows(bias, first, last, y):
    for b in range(first, last):
        for o in range(y.shape[1]):
            y[b, o] = bias[o]


def _forward_task_samples(y):
    """Samples of one forward task: FORWARD_TASK_BYTES of rows of y, a multiple of 64."""
    return max(1, FORWARD_TASK_BYTES // (y.shape[1] * y.itemsize) // 64) * 64


def _forward_in_chunks(fill, forward, x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """layer_forward as fill (a basis_tape form) then forward (a layer_forward_tape form) over
    chunks of FORWARD_CHUNK_TASKS forward tasks: the tape of one chunk at a time, so memory
    stays bounded for any batch. Each row of y is computed the same way in any chunk."""
    B = x.shape[0]
    rows = _forward_task_samples(y) * FORWARD_CHUNK_TASKS
    tape = None
    for first in range(0, B, rows):
        last = min(B, first + rows)
        if tape is None or tape.window.shape[1] != last - first:
            tape = new_basis_tape(last - first, x.shape[1], knots.shape[1], k, coef.dtype)
        fill(x[first:last], knots, k, base, tape)
        forward(tape, coef, w_base, w_spline, bias, mask, k, y[first:last])


def layer_forward_serial(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """layer_forward on one thread."""
    _forward_in_chunks(basis_tape_serial, layer_forward_tape_serial, x, knots, coef, w_base, w_spline, bias,
                       mask, k, base, y)


def layer_forward_parallel(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """layer_forward with the tapes' tasks over sample blocks and the sweep's over row tasks."""
    _forward_in_chunks(basis_tape_parallel, layer_forward_tape_parallel, x, knots, coef, w_base, w_spline,
                       bias, mask, k, base, y)


def layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Fused forward: writes y (B, O). See the module docstring for the formula."""
    work = x.shape[0] * x.shape[1] * coef.shape[2] * (k + 2)
    form = layer_forward_parallel if _go_parallel("forward", work) else layer_forward_serial
    form(x, knots, coef, w_base, w_spline, bias, mask, k, base, y)


@njit(cache=CACHE)
def _tape_forward_rows(window, values, base_val, coef, edge_base, edge_spline, bias, k, first, last, y):
    _clear_rows(bias, first, last, y)
    for i in range(coef.shape[0]):
        _forward_sweep(i, first, last, first, k, window, values, base_val, coef, edge_base, edge_spline, y)


@njit(cache=CACHE)
def _tape_forward_serial(window, values, base_val, coef, w_base, w_spline, mask, bias, k, samples_per_task, y):
    edge_base, edge_spline = mask * w_base, mask * w_spline
    B = y.shape[0]
    for first in range(0, B, samples_per_task):
        _tape_forward_rows(window, values, base_val, coef, edge_base, edge_spline, bias, k, first,
                           min(B, first + samples_per_task), y)


def layer_forward_tape_serial(tape, coef, w_base, w_spline, bias, mask, k, y):
    """layer_forward_tape on one thread, the tasks of the parallel form one after the other."""
    _tape_forward_serial(tape.window, tape.values, tape.base_val, coef, w_base, w_spline, mask, bias, k,
                         _forward_task_samples(y), y)


@njit(cache=CACHE, parallel=True)
def _tape_forward_tasks(window, values, base_val, coef, w_base, w_spline, mask, bias, k, n_tasks, y):
    edge_base, edge_spline = mask * w_base, mask * w_spline
    B = y.shape[0]
    for task in prange(n_tasks):
        _tape_forward_rows(window, values, base_val, coef, edge_base, edge_spline, bias, k,
                           task * B // n_tasks, (task + 1) * B // n_tasks, y)


def _balanced_tasks(B, samples_per_task):
    """Tasks of at most about samples_per_task samples each, as a multiple of the thread count so
    that every thread gets the same share (5 tasks on 2 threads keep one waiting for a fifth)."""
    threads = numba.get_num_threads()
    return max(1, min(B, threads * -(-B // (threads * samples_per_task))))


def layer_forward_tape_parallel(tape, coef, w_base, w_spline, bias, mask, k, y):
    """layer_forward_tape with tasks of at most about _forward_task_samples(y) samples, equal
    shares per thread (each row of y is its own, so the split changes nothing but the speed)."""
    _tape_forward_tasks(tape.window, tape.values, tape.base_val, coef, w_base, w_spline, mask, bias, k,
                        _balanced_tasks(y.shape[0], _forward_task_samples(y)), y)


def layer_forward_tape(tape, coef, w_base, w_spline, bias, mask, k, y):
    """layer_forward from a filled tape (basis_tape of the layer's input): the same bits."""
    work = y.shape[0] * coef.shape[0] * coef.shape[2] * (k + 2)
    form = layer_forward_tape_parallel if _go_parallel("forward", work) else layer_forward_tape_serial
    form(tape, coef, w_base, w_spline, bias, mask, k, y)


# ---------------------------------------------------------------- backward


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


def layer_backward_tape_serial(tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward_tape on one thread."""
    _backward_inputs(k, *tape[:5], g, coef, w_base, w_spline, mask, *_input_gradient(dx, g, coef.shape[0]),
                     dcoef, dw_base, dw_spline, dbias)


def layer_backward_tape_parallel(tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward_tape with one task per group of inputs, as many groups as threads (the
    grouping does not change any result: each input's sums are its own)."""
    _backward_tasks(k, *tape[:5], g, coef, w_base, w_spline, mask, *_input_gradient(dx, g, coef.shape[0]),
                    dcoef, dw_base, dw_spline, dbias, min(coef.shape[0], numba.get_num_threads()))


def layer_backward_tape(tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward from a filled tape (basis_tape of the layer's input): the same bits.
    dx None: the input gradient is not computed (the first layer of a network in training, whose
    input is the data); the parameter gradients are the same bits either way."""
    work = g.shape[0] * coef.shape[0] * coef.shape[2] * (k + 2)
    form = (layer_backward_tape_parallel if _go_parallel("backward", work) and coef.shape[0] > 1
            else layer_backward_tape_serial)
    form(tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias)


def layer_backward_serial(x, g, knots, coef, w_base, w_spline, mask, k, base,
                          dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward on one thread."""
    tape = new_basis_tape(x.shape[0], x.shape[1], knots.shape[1], k, coef.dtype)
    basis_tape_serial(x, knots, k, base, tape)
    layer_backward_tape_serial(tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias)


def layer_backward_parallel(x, g, knots, coef, w_base, w_spline, mask, k, base,
                            dx, dcoef, dw_base, dw_spline, dbias):
    """layer_backward with the tape's tasks over samples and the sweep's over inputs."""
    tape = new_basis_tape(x.shape[0], x.shape[1], knots.shape[1], k, coef.dtype)
    basis_tape_parallel(x, knots, k, base, tape)
    layer_backward_tape_parallel(tape, g, coef, w_base, w_spline, mask, k, dx, dcoef, dw_base, dw_spline, dbias)


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
    The outputs are overwritten, not accumulated into. It builds the tape of x (O(B I k)
    memory); layer_backward_tape reuses one that forward already built.
    """
    work = x.shape[0] * x.shape[1] * coef.shape[2] * (k + 2)
    form = layer_backward_parallel if _go_parallel("backward", work) and x.shape[1] > 1 else layer_backward_serial
    form(x, g, knots, coef, w_base, w_spline, mask, k, base, dx, dcoef, dw_base, dw_spline, dbias)


# ---------------------------------------------------------------- edge magnitudes (the regulariser)


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
    _magnitude_backward(k, *tape[:5], coef, w_base, w_spline, mask * w_base, mask * w_spline, scale,
                        dx, dcoef, dw_base, dw_spline)


# ---------------------------------------------------------------- the L-BFGS direction


@njit(cache=CACHE)
def lbfgs_direction(s_hist, y_hist, rho, gamma, grad):
    """-H grad by the L-BFGS two-loop recursion (Nocedal & Wright, Algorithm 7.4) over the
    pairs s_hist, y_hist (m, n), oldest first, rho (m,) = 1 / (s . y), initial scaling gamma.
    One compiled loop instead of 4m array operations (on small models those were the
    optimizer's cost); sums run in index order."""
    m, n = s_hist.shape
    q = -grad
    alphas = np.empty(m, np.float64)
    for j in range(m - 1, -1, -1):
        dot = 0.0
        for t in range(n):
            dot += s_hist[j, t] * q[t]
        alphas[j] = rho[j] * dot
        a = q.dtype.type(alphas[j])
        for t in range(n):
            q[t] -= a * y_hist[j, t]
    r = q.dtype.type(gamma) * q
    for j in range(m):
        dot = 0.0
        for t in range(n):
            dot += y_hist[j, t] * r[t]
        c = r.dtype.type(alphas[j] - rho[j] * dot)
        for t in range(n):
            r[t] += c * s_hist[j, t]
    return r
