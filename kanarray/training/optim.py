"""Optimizers over flat 1-D parameter vectors: Adam and L-BFGS.

An optimizer is an object with one interface, which is all the training loop knows of it:

    opt = LBFGS(history=10, iters=20)           # or Adam(lr=1e-2); options checked here, once
    state = opt.init(params)
    params, state, step = opt.update(fun, params, state)   # one training step
    state = opt.after_grid_update(state)        # the parameters were moved under it

fun(x) -> (loss, grad, ...) evaluates the objective at an (n,) point: a tuple whose first two
entries are the loss and the gradient; further entries ride along, and step.value is fun's whole
answer at the point the step ends on (its accepted evaluation), with step.n_evals the calls made.
The optimizers live in kanarray.training.adam and kanarray.training.lbfgs, with their building
blocks as pure functions (adam_init/adam_update, lbfgs_init/lbfgs_step, lbfgs_minimize); this
module holds what they share.

All functions take and return arrays of shape (n,) from NumPy or CuPy; the
array module is taken from the inputs, so one implementation serves both
devices (on NumPy arrays the L-BFGS two-loop recursion is a CPU kernel, on CuPy
arrays the same recursion in array operations).  Only scalars (dot products,
norms, losses) and the L-BFGS history's 1 / (y . s) cross to the host.
The dtype of the parameters is kept (float32 or float64): scalars enter the
vector arithmetic as Python floats, which never upcast an array.

The functions are pure, in the style of optax: the state is an immutable
NamedTuple, and every update returns a new state instead of editing one.
"""

import math
import numbers
from typing import NamedTuple

import numpy as np


class Step(NamedTuple):
    """What one optimizer step did: fun's answer at the point it ends on, and its calls of fun."""

    value: tuple
    n_evals: int


def dot(a, b):
    """Dot product of two (n,) vectors (NumPy or CuPy) as a host float."""
    return float(a @ b)


def max_abs(a):
    """Infinity norm of an (n,) vector (NumPy or CuPy) as a host float (NaN if it holds a NaN)."""
    return float(abs(a).max())


def check_vector(a, name):
    """An (n,) float array, n >= 1, from NumPy or CuPy."""
    dtype = getattr(a, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise TypeError(f"{name} must be a 1-D float array (NumPy or CuPy), got "
                        f"{type(a).__name__}" + ("" if dtype is None else f" of dtype {dtype}"))
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {tuple(a.shape)}")


def as_float(value, name):
    """A real scalar (Python, NumPy, or a 0-d array) as a host float; NaN and Inf pass."""
    real_0d = getattr(value, "shape", None) == () and getattr(value, "dtype", np.dtype(object)).kind in "iuf"
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, numbers.Real) or real_0d):
        raise TypeError(f"{name} must be a real scalar, got {type(value).__name__} "
                        f"{getattr(value, 'shape', '')}".rstrip())
    return float(value)


def call(fun, x):
    """``fun(x)``, checked: a tuple (loss, grad, ...) with a real ``loss`` and ``grad`` of
    ``x``'s shape -> (loss as a host float, grad, fun's whole answer)."""
    out = fun(x)
    if not (isinstance(out, tuple) and len(out) >= 2):
        raise TypeError(f"fun must return a pair (loss, grad), got {type(out).__name__}")
    loss = as_float(out[0], "the loss returned by fun")
    if getattr(out[1], "shape", None) != x.shape:
        raise ValueError(f"fun must return a gradient of the point's shape {tuple(x.shape)}, "
                         f"got {type(out[1]).__name__} of shape {getattr(out[1], 'shape', None)}")
    return loss, out[1], out


def to_host(a):
    """A NumPy copy of an (n,) or (m, n) NumPy or CuPy array."""
    return np.array(a) if isinstance(a, np.ndarray) else a.get()


def check_lr(lr):
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return float(lr)
