"""The fused forward of a KAN layer on the CPU:

    y[b, o] = bias[o] + sum_i mask[i,o] * ( w_base[i,o] base(x[b,i])
                                           + w_spline[i,o] sum_r coef[i, s-k+r, o] B_r(x[b,i]) )

where s is the knot span of x[b, i] and B_0..B_k are the only bases that can be non-zero there.
Each sample sweeps the O outputs, which read contiguous memory because o is the fastest axis of
coef, TERMS terms at a time, from a BasisTape of x. A task owns a block of samples and writes
only their rows of y (FORWARD_TASK_BYTES of rows, so coef[i] is read once per task).
"""
import numba
from numba import njit, prange

from .cache import CACHE
from .parallel import sweep_work, two_forms
from .tape import TERMS, _basis_tape, new_basis_tape

# forward: a task keeps the rows y[b, :] of its samples in the L2 cache while it sweeps the inputs,
# so that each input's coef[i] rows are read once per task, not once per 64 samples. At G=200,
# B=4096, I=O=128, float64, one thread: 231 ms with 64-sample tasks, ~135 ms with 256 KiB of y,
# ~110 ms with 512 KiB (CPU time on the busy 2-core EPYC, so rough).
FORWARD_TASK_BYTES = 1 << 19
FORWARD_CHUNK_TASKS = 8  # layer_forward from x: forward tasks whose tape is built at once


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


def _balanced_tasks(B, samples_per_task):
    """Tasks of at most about samples_per_task samples each, as a multiple of the thread count so
    that every thread gets the same share (5 tasks on 2 threads keep one waiting for a fifth)."""
    threads = numba.get_num_threads()
    return max(1, min(B, threads * -(-B // (threads * samples_per_task))))


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


@njit(cache=CACHE, parallel=True)
def _tape_forward_tasks(window, values, base_val, coef, w_base, w_spline, mask, bias, k, n_tasks, y):
    edge_base, edge_spline = mask * w_base, mask * w_spline
    B = y.shape[0]
    for task in prange(n_tasks):
        _tape_forward_rows(window, values, base_val, coef, edge_base, edge_spline, bias, k,
                           task * B // n_tasks, (task + 1) * B // n_tasks, y)


def _layer_forward_tape(parallel, tape, coef, w_base, w_spline, bias, mask, k, y):
    """layer_forward from a filled tape (basis_tape of the layer's input): the same bits.

    Tasks of at most about _forward_task_samples(y) samples: serially one after the other, in
    parallel as equal shares per thread (each row of y is its own, so the split changes nothing
    but the speed)."""
    if parallel:
        _tape_forward_tasks(tape.window, tape.values, tape.base_val, coef, w_base, w_spline, mask, bias, k,
                            _balanced_tasks(y.shape[0], _forward_task_samples(y)), y)
    else:
        _tape_forward_serial(tape.window, tape.values, tape.base_val, coef, w_base, w_spline, mask, bias, k,
                             _forward_task_samples(y), y)


def _layer_forward(parallel, x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Fused forward: writes y (B, O). See the module docstring for the formula.

    The tape of x is built and swept over chunks of FORWARD_CHUNK_TASKS forward tasks, one
    chunk at a time, so memory stays bounded for any batch. Each row of y is computed the same
    way in any chunk, and as layer_forward_tape computes it."""
    B = x.shape[0]
    rows = _forward_task_samples(y) * FORWARD_CHUNK_TASKS
    tape = None
    for first in range(0, B, rows):
        last = min(B, first + rows)
        if tape is None or tape.window.shape[1] != last - first:
            tape = new_basis_tape(last - first, x.shape[1], knots.shape[1], k, coef.dtype)
        _basis_tape(parallel, x[first:last], knots, k, base, tape)
        _layer_forward_tape(parallel, tape, coef, w_base, w_spline, bias, mask, k, y[first:last])


def _forward_tape_work(tape, coef, w_base, w_spline, bias, mask, k, y):
    return sweep_work(y.shape[0], coef, k)


def _forward_work(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    return sweep_work(x.shape[0], coef, k)


layer_forward_tape = two_forms("layer_forward_tape", "forward", _forward_tape_work, _layer_forward_tape)
layer_forward_tape_serial, layer_forward_tape_parallel = layer_forward_tape.serial, layer_forward_tape.parallel
layer_forward = two_forms("layer_forward", "forward", _forward_work, _layer_forward)
layer_forward_serial, layer_forward_parallel = layer_forward.serial, layer_forward.parallel
