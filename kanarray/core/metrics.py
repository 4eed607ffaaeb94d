"""Small statistics of predictions that every part of kanarray uses, each written once.

    r2_score(pred, y)        coefficient of determination (pooled, or averaged over outputs)
    r2_from_sums(sse, sst)   the same from its two sums
    rmse(pred, y)            root mean squared error over every entry
    mean_and_std(y)          per-column mean and standard deviation, without overflow
    softmax(logits)          class probabilities, row by row
    log_softmax(logits)      their logarithms, stable for any finite logits

All take NumPy or CuPy arrays (the array module is taken from the input); the scalars come back
as host floats.
"""
import numpy as np

from .arrays import array_module


def r2_from_sums(sse, sst, tol=0.0):
    """R^2 = 1 - SSE/SST; values that do not vary (SST <= tol) score 1 when predicted exactly
    (SSE <= tol), else 0 (scikit-learn's convention)."""
    if sst <= tol:
        return 1.0 if sse <= tol else 0.0
    return 1.0 - sse / sst


def r2_score(pred, y, average=False):
    """R^2 of predictions against values of the same shape, (N,) or (N, O), SST about each
    column's mean. Pooled over every entry, or with average=True each column's R^2 averaged
    (scikit-learn's default for several outputs)."""
    squares, spread = (pred - y) ** 2, (y - y.mean(axis=0)) ** 2
    if not average:
        return r2_from_sums(float(squares.sum()), float(spread.sum()))
    xp = array_module(y)
    residual, total = (np.atleast_1d(_host(xp, a.sum(axis=0))) for a in (squares, spread))
    return float(np.mean([r2_from_sums(float(r), float(t)) for r, t in zip(residual, total)]))


def rmse(pred, y):
    """Root mean squared error over every entry of predictions and labels of the same shape."""
    residual = pred - y
    return float(np.sqrt(float((residual * residual).sum()) / max(residual.size, 1)))


def mean_and_std(y, total=None, sum_rows=None):
    """Per-column (mean, standard deviation) of host values y (N, C), float64. Computed in
    units of the largest |y| and in two passes, so that no sum overflows (E[y^2] would near
    1e155). total(values, op) -> values combined over processes with "SUM" or "MAX" (MPI; None:
    this process's rows are all); sum_rows(v) -> the column sums of v (N, C) over the rows of
    every process (default: total(v.sum(axis=0)))."""
    total = total or (lambda values, op="SUM": np.asarray(values, dtype=np.float64))
    sum_rows = sum_rows or (lambda values: total(values.sum(axis=0)))
    y = np.asarray(y, dtype=np.float64)
    unit = total(np.abs(y).max(axis=0, initial=0.0), "MAX")
    unit = np.where(unit > 0, unit, 1.0)
    count = total([y.shape[0]])[0]
    mean = sum_rows(y / unit) / count
    std = np.sqrt(sum_rows((y / unit - mean) ** 2) / count)
    return mean * unit, std * unit


def log_softmax(logits):
    """log softmax along rows of (N, C) logits: every row shifted by its maximum first, so the
    largest exponent is exp(0) = 1 and nothing overflows."""
    xp = array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Class probabilities of (N, C) logits, row by row (shifted by each row's maximum)."""
    xp = array_module(logits)
    e = xp.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _host(xp, a):
    return a if xp is np else xp.asnumpy(a)
