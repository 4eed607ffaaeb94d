"""Built-in losses: pure functions over NumPy or CuPy arrays, each with its hand-derived gradient.

Every loss takes the model's outputs `pred` (B, n_out) and the labels, and returns
(loss, dloss/dpred): loss a host float, the gradient an array of pred's shape on pred's device.
That is the `loss_fn` contract of kanarray.training.loop.fit. The array module is taken from the input
(kanarray.core.arrays.array_module), so one implementation serves both devices.

    mse(pred, y)                   mean over all entries of (pred - y)^2
    cross_entropy(logits, labels)  mean over rows of -log softmax(logits)[label]
    accuracy(logits, labels)       share of rows whose largest logit is the label's

and the pieces the objective sums over rows and processes: squared_error, rmse, hits, and the
per-row row_squared_errors and row_cross_entropies.
"""
import numpy as np

from ..core.arrays import array_module, is_cupy_array
from ..core.metrics import log_softmax


def _check_outputs(pred, name):
    shape = getattr(pred, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array (batch, outputs) with at least one row and "
                         f"one column, got shape {shape}")
    if pred.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point array, got dtype {pred.dtype}")


def _check_labels(labels, logits):
    """Integer class ids (B,) in [0, n_classes), on the logits' device."""
    xp = array_module(logits)
    labels = xp.asarray(labels)
    n_rows, n_classes = logits.shape
    if labels.shape != (n_rows,):
        raise ValueError(f"labels must have shape ({n_rows},): one class id per row of the "
                         f"logits, got shape {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(f"labels must lie in [0, {n_classes}) for {n_classes} classes, "
                         f"got class id {bad}")
    return labels


def squared_error(pred, y):
    """(sum of squared errors, residual pred - y) of predictions against labels, both (B, O)."""
    residual = pred - y
    return float((residual * residual).sum()), residual


def mse(pred, y):
    """Mean squared error over all entries of pred and y (both (B, n_out)).

    -> (loss, dloss/dpred) with dloss/dpred = 2 (pred - y) / (B n_out).
    """
    _check_outputs(pred, "pred")
    if getattr(y, "shape", None) != pred.shape:
        raise ValueError(f"y must have the shape of pred {tuple(pred.shape)}, "
                         f"got {getattr(y, 'shape', None)}")
    residual = pred - y
    return float((residual * residual).mean()), residual * (2.0 / residual.size)


def cross_entropy(logits, labels):
    """Softmax cross-entropy, averaged over rows.

    logits (B, C) floats, labels (B,) integer class ids in [0, C).
    loss = -(1/B) sum_b log p_b[labels_b],  p_b = softmax(logits_b)
    dloss/dlogits = (p - onehot(labels)) / B
    -> (loss, dloss/dlogits)
    """
    _check_outputs(logits, "logits")
    labels = _check_labels(labels, logits)
    xp = array_module(logits)
    n_rows = logits.shape[0]
    rows = xp.arange(n_rows)
    log_p = log_softmax(logits)
    loss = -float(log_p[rows, labels].mean())
    grad = xp.exp(log_p)
    grad[rows, labels] -= 1.0
    grad *= 1.0 / n_rows
    return loss, grad


def row_squared_errors(pred, y):
    """Per row, the squared error summed over the outputs: host float64 (B,)."""
    residual = pred - y
    return _host(residual * residual).sum(axis=1)


def row_cross_entropies(logits, labels):
    """Per row, -log softmax(logits_b)[labels_b]: host float64 (B,)."""
    _check_outputs(logits, "logits")
    labels = _check_labels(labels, logits)
    rows = array_module(logits).arange(logits.shape[0])
    return -_host(log_softmax(logits)[rows, labels])


def _host(array):
    return np.asarray(array.get() if is_cupy_array(array) else array, dtype=np.float64)


def hits(logits, labels):
    """Rows (a host float) whose largest logit is at the label's class."""
    _check_outputs(logits, "logits")
    labels = _check_labels(labels, logits)
    return float((logits.argmax(axis=1) == labels).sum())


def accuracy(logits, labels):
    """Share of rows (a host float in [0, 1]) whose largest logit is at the label's class."""
    return hits(logits, labels) / logits.shape[0]
