"""Optimizers over flat 1-D parameter vectors: Adam and L-BFGS.

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

from ..core.arrays import array_module
from ..core.checks import check_callable, check_int, check_real
from ..kernels import cpu as cpu_kernels


def _dot(a, b):
    """Dot product of two (n,) vectors (NumPy or CuPy) as a host float."""
    return float(a @ b)


def _max_abs(a):
    """Infinity norm of an (n,) vector (NumPy or CuPy) as a host float (NaN if it holds a NaN)."""
    return float(abs(a).max())


def _check_vector(a, name):
    """An (n,) float array, n >= 1, from NumPy or CuPy."""
    dtype = getattr(a, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise TypeError(f"{name} must be a 1-D float array (NumPy or CuPy), got "
                        f"{type(a).__name__}" + ("" if dtype is None else f" of dtype {dtype}"))
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {tuple(a.shape)}")


def _as_float(value, name):
    """A real scalar (Python, NumPy, or a 0-d array) as a host float; NaN and Inf pass."""
    real_0d = getattr(value, "shape", None) == () and getattr(value, "dtype", np.dtype(object)).kind in "iuf"
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, numbers.Real) or real_0d):
        raise TypeError(f"{name} must be a real scalar, got {type(value).__name__} "
                        f"{getattr(value, 'shape', '')}".rstrip())
    return float(value)


def _call(fun, x):
    """``fun(x) -> (loss, grad)`` with ``loss`` as a host float and ``grad`` of ``x``'s shape."""
    out = fun(x)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"fun must return a pair (loss, grad), got {type(out).__name__}")
    loss = _as_float(out[0], "the loss returned by fun")
    if getattr(out[1], "shape", None) != x.shape:
        raise ValueError(f"fun must return a gradient of the point's shape {tuple(x.shape)}, "
                         f"got {type(out[1]).__name__} of shape {getattr(out[1], 'shape', None)}")
    return loss, out[1]


# -------------------------------------------------------------------------- Adam


class AdamState(NamedTuple):
    """Adam moments.  ``m``, ``v``: (n,) arrays; ``step``: updates done so far."""

    step: int
    m: object
    v: object


def adam_init(params):
    """Zero moments for parameters ``params`` of shape (n,)."""
    xp = array_module(params)
    return AdamState(step=0, m=xp.zeros_like(params), v=xp.zeros_like(params))


def adam_update(grad, state, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """One bias-corrected Adam update (Kingma & Ba, Algorithm 1).

    Args:
        grad: (n,) gradient at the current parameters.
        state: ``AdamState`` from ``adam_init`` or a previous update.
        lr > 0, 0 <= b1 < 1, 0 <= b2 < 1, eps > 0: step size, moment decay rates and the
        denominator's floor (a zero eps would give 0/0 where a gradient entry stays zero).

    Returns:
        ``(delta, new_state)``: ``delta`` is (n,) and ``params + delta`` is the
        new point.  Neither ``grad`` nor ``state`` is modified.
    """
    _check_vector(grad, "grad")
    if not isinstance(state, AdamState):
        raise TypeError(f"state must be an AdamState (from adam_init), got {type(state).__name__}")
    if state.m.shape != grad.shape:
        raise ValueError(f"grad has shape {tuple(grad.shape)} but state holds moments of shape "
                         f"{tuple(state.m.shape)}")
    # check_real returns Python floats: NumPy scalars would upcast float32 vectors
    lr = check_real(lr, "lr", above=0)
    b1 = check_real(b1, "b1", minimum=0, below=1)
    b2 = check_real(b2, "b2", minimum=0, below=1)
    eps = check_real(eps, "eps", above=0)
    xp = array_module(grad)
    step = state.step + 1
    m = b1 * state.m + (1.0 - b1) * grad
    v = b2 * state.v + (1.0 - b2) * (grad * grad)
    m_hat = m / (1.0 - b1**step)
    v_hat = v / (1.0 - b2**step)
    delta = -lr * m_hat / (xp.sqrt(v_hat) + eps)
    return delta, AdamState(step=step, m=m, v=v)


# -------------------------------------------------------------------------- L-BFGS

HISTORY_SIZE = 10  # L-BFGS: curvature pairs kept
MAX_LINE_SEARCH = 25  # L-BFGS: most evaluations of one line search
_C1 = 1e-4  # sufficient decrease (Armijo) constant
_C2 = 0.9  # curvature constant of the strong Wolfe conditions


class LBFGSState(NamedTuple):
    """L-BFGS memory. ``s_hist``, ``y_hist``: (m, n) arrays, steps ``x_{k+1} - x_k`` and
    gradient changes ``g_{k+1} - g_k`` one a row, newest last (``()`` when empty); ``rho``:
    (m,) host array of ``1 / (y . s)``; ``n_iter``: accepted iterations so far; ``gamma``:
    ``s . y / y . y`` of the newest pair, the initial inverse Hessian's scale (1 without)."""

    s_hist: object
    y_hist: object
    rho: object
    n_iter: int
    gamma: float


def lbfgs_init():
    """Empty L-BFGS memory."""
    return LBFGSState(s_hist=(), y_hist=(), rho=(), n_iter=0, gamma=1.0)


def _two_loop(grad, state):
    """Search direction ``-H grad`` (Nocedal & Wright, Algorithm 7.4), shape (n,): the CPU
    kernel for NumPy arrays, the same recursion in array operations for CuPy."""
    if not len(state.rho):
        return -grad
    if array_module(grad) is np:
        return cpu_kernels.lbfgs_direction(state.s_hist, state.y_hist, state.rho, state.gamma, grad)
    return _two_loop_arrays(grad, state)


def _two_loop_arrays(grad, state):
    """The two-loop recursion in array operations (any array module: CuPy's path)."""
    q = -grad
    alphas = []
    for s, y, rho in zip(state.s_hist[::-1], state.y_hist[::-1], state.rho[::-1]):
        alphas.append(float(rho) * _dot(s, q))
        q -= alphas[-1] * y  # in place: q and r are this function's own arrays
    r = state.gamma * q
    for s, y, rho, alpha in zip(state.s_hist, state.y_hist, state.rho, reversed(alphas)):
        r += (alpha - float(rho) * _dot(y, r)) * s
    return r


def _push(history, row, size):
    """(m, n) history with `row` appended as its newest row, keeping the last `size` rows."""
    if not len(history) or size == 1:
        return row[None].copy()
    return array_module(row).concatenate([history[max(len(history) - size + 1, 0):], row[None]])


def _cubic_min(t1, f1, g1, t2, f2, g2, lo, hi):
    """Minimiser in [lo, hi] of the cubic through (t1, f1, g1) and (t2, f2, g2).

    ``g1``, ``g2`` are slopes along the line (Nocedal & Wright, eq. 3.59).
    Falls back to the midpoint of [lo, hi] when the cubic has no real, finite
    minimiser, or when t1 == t2 leaves it undefined.
    """
    if t1 == t2:
        return 0.5 * (lo + hi)
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (t1 - t2)
    d2_sq = d1 * d1 - g1 * g2
    if d2_sq < 0.0:
        return 0.5 * (lo + hi)
    d2 = math.copysign(math.sqrt(d2_sq), t2 - t1)
    denom = g2 - g1 + 2.0 * d2
    if denom == 0.0:
        return 0.5 * (lo + hi)
    t = t2 - (t2 - t1) * (g2 + d2 - d1) / denom
    if not math.isfinite(t):
        return 0.5 * (lo + hi)
    return min(max(t, lo), hi)


class _Trial(NamedTuple):
    """One line-search evaluation: step ``t``, loss ``f``, gradient ``g`` (n,),
    slope ``gtd = g . d``."""

    t: float
    f: float
    g: object
    gtd: float


def _is_finite(trial):
    return math.isfinite(trial.f) and math.isfinite(trial.gtd)


def _strong_wolfe(fun, x, d, start, t, max_ls, tolerance_change):
    """Strong-Wolfe line search along ``d`` (Nocedal & Wright, Algorithms 3.5/3.6).

    ``start`` is the ``_Trial`` at t = 0 and ``t`` the first trial step.  A
    trial with a non-finite loss or slope counts as "too far": it closes the
    bracket, and zoom bisects towards the last finite point.

    Returns ``(trial, n_evals)``: the accepted trial, which satisfies both
    strong-Wolfe conditions unless the evaluation budget ``max_ls`` or the
    bracket width ran out first; then it is the lowest point with sufficient
    decrease, or ``start`` itself when there is none.
    """
    d_norm = _max_abs(d)
    n_evals = 0

    def evaluate(t):
        nonlocal n_evals
        n_evals += 1
        f, g = _call(fun, x + t * d)
        return _Trial(t, f, g, _dot(g, d) if math.isfinite(f) else math.nan)

    def armijo_fails(trial):
        return not _is_finite(trial) or trial.f > start.f + _C1 * trial.t * start.gtd

    def curvature_holds(trial):
        return abs(trial.gtd) <= -_C2 * start.gtd

    # Bracketing phase (Algorithm 3.5): grow the step until an interval
    # [lo, hi] is known to contain a strong-Wolfe point.
    prev = start
    while True:
        if n_evals >= max_ls:
            return prev, n_evals
        trial = evaluate(t)
        if armijo_fails(trial) or (prev is not start and trial.f >= prev.f):
            lo, hi = prev, trial
            break
        if curvature_holds(trial):
            return trial, n_evals
        if trial.gtd >= 0.0:
            lo, hi = trial, prev
            break
        # Extrapolate by cubic interpolation, to between 1.01 t and 10 t.
        t_next = _cubic_min(
            prev.t, prev.f, prev.gtd, trial.t, trial.f, trial.gtd,
            trial.t + 0.01 * (trial.t - prev.t), 10.0 * trial.t,
        )
        prev, t = trial, t_next

    # Zoom phase (Algorithm 3.6).  Invariant: ``lo`` has the lowest loss of
    # the points with sufficient decrease, and the interval between lo and hi
    # contains a strong-Wolfe point.
    while n_evals < max_ls and abs(hi.t - lo.t) * d_norm >= tolerance_change:
        a, b = min(lo.t, hi.t), max(lo.t, hi.t)
        margin = 0.1 * (b - a)  # keep each trial off the ends of the interval
        if _is_finite(hi):
            t = _cubic_min(lo.t, lo.f, lo.gtd, hi.t, hi.f, hi.gtd, a + margin, b - margin)
        else:
            t = 0.5 * (a + b)
        trial = evaluate(t)
        if armijo_fails(trial) or trial.f >= lo.f:
            hi = trial
            continue
        if curvature_holds(trial):
            return trial, n_evals
        if trial.gtd * (hi.t - lo.t) >= 0.0:
            hi = lo
        lo = trial
    return lo, n_evals


def lbfgs_step(
    fun,
    x,
    loss,
    grad,
    state,
    lr=1.0,
    history_size=HISTORY_SIZE,
    max_ls=MAX_LINE_SEARCH,
    tolerance_grad=1e-12,
    tolerance_change=1e-14,
):
    """One L-BFGS iteration with a strong-Wolfe line search.

    Args:
        fun: ``fun(x) -> (loss, grad)`` for an (n,) point; the loss may be
            NaN or Inf, which the line search treats as a step too far.
        x: (n,) current point; ``loss``, ``grad`` (n,): ``fun(x)``.
        state: ``LBFGSState`` from ``lbfgs_init`` or a previous step.
        lr: first trial step of the line search.  Without curvature history
            (first iteration, or after a reset) the direction is ``-grad`` and
            the trial step is ``min(1, 1 / |grad|_1) * lr``, as in PyTorch.
        history_size: number of (s, y) pairs kept.
        max_ls: most evaluations of ``fun`` in the line search.
        tolerance_grad: converged when ``|grad_new|_inf <= tolerance_grad``.
        tolerance_change: converged when the loss change or the step's
            infinity norm falls below it.

    Returns:
        ``(x_new, loss_new, grad_new, state_new, info)`` with ``info`` a dict
        ``{"n_evals": int, "converged": bool, "step": float, "failed": bool}``.
        ``step`` is the accepted step length along the direction.

        A point already stationary (``|grad|_inf <= tolerance_grad``, in
        particular an exactly zero gradient) is convergence: it is returned
        unchanged with ``converged=True`` and ``n_evals=0``; so is a gradient
        too small for ``grad . grad`` to be nonzero in floating point.

        When the line search finds no point with sufficient decrease (e.g.
        every trial is non-finite), or ``loss``, ``grad`` or the slope
        ``grad . d`` is not finite so that there is nothing to descend along,
        the input point is returned unchanged with ``failed=True`` and the
        history is cleared, so that a further call starts again from steepest
        descent.
    """
    check_callable(fun, "fun")
    _check_vector(x, "x")
    _check_vector(grad, "grad")
    if grad.shape != x.shape:
        raise ValueError(f"grad must have the shape of x {tuple(x.shape)}, got {tuple(grad.shape)}")
    loss = _as_float(loss, "loss")
    if not isinstance(state, LBFGSState):
        raise TypeError(f"state must be an LBFGSState (from lbfgs_init), got {type(state).__name__}")
    return lbfgs_update(fun, x, loss, grad, state,
                        check_real(lr, "lr", above=0),  # a Python float: a NumPy scalar upcasts float32
                        check_int(history_size, "history_size", 1), check_int(max_ls, "max_ls", 1),
                        check_real(tolerance_grad, "tolerance_grad", minimum=0),
                        check_real(tolerance_change, "tolerance_change", minimum=0))


def lbfgs_update(fun, x, loss, grad, state, lr, history_size, max_ls, tolerance_grad, tolerance_change):
    """lbfgs_step without its argument checks, for a loop that validated them once (the
    training loop: kanarray.training.loop.fit); lr a Python float, loss a host float."""
    t = lr  # the first trial step

    def unchanged(converged):
        info = {"n_evals": 0, "converged": converged, "step": 0.0, "failed": not converged}
        return x, loss, grad, state if converged else lbfgs_init()._replace(n_iter=state.n_iter), info

    grad_max = _max_abs(grad)
    if not (math.isfinite(loss) and math.isfinite(grad_max)):
        return unchanged(converged=False)
    if grad_max <= tolerance_grad:
        return unchanged(converged=True)

    d = _two_loop(grad, state)
    gtd = _dot(grad, d)
    if not gtd < 0.0:  # not a descent direction (or NaN): restart
        state = lbfgs_init()._replace(n_iter=state.n_iter)
        d = -grad
        gtd = _dot(grad, d)
    if gtd == 0.0:  # grad . grad underflowed: stationary to working precision
        return unchanged(converged=True)
    if not math.isfinite(gtd):  # grad . grad overflowed: no finite slope to test decrease against
        return unchanged(converged=False)
    if not len(state.rho):  # |grad|_1 > 0, and finite because grad . grad is
        t *= min(1.0, 1.0 / float(array_module(grad).abs(grad).sum()))

    start = _Trial(0.0, loss, grad, gtd)
    trial, n_evals = _strong_wolfe(fun, x, d, start, t, max_ls, tolerance_change)

    if trial is start:
        info = {"n_evals": n_evals, "converged": False, "step": 0.0, "failed": True}
        return x, loss, grad, lbfgs_init()._replace(n_iter=state.n_iter), info

    s = trial.t * d
    y = trial.g - grad
    ys = _dot(y, s)
    yy = _dot(y, y)
    if ys > 1e-10 * yy:  # curvature guard keeps the inverse Hessian positive definite
        state = state._replace(
            s_hist=_push(state.s_hist, s, history_size),
            y_hist=_push(state.y_hist, y, history_size),
            rho=np.append(state.rho, 1.0 / ys)[-history_size:],
            gamma=ys / yy,
        )
    state = state._replace(n_iter=state.n_iter + 1)

    converged = (
        _max_abs(trial.g) <= tolerance_grad
        or abs(trial.f - loss) < tolerance_change
        or trial.t * _max_abs(d) <= tolerance_change
    )
    info = {"n_evals": n_evals, "converged": converged, "step": trial.t, "failed": False}
    return x + s, trial.f, trial.g, state, info


def lbfgs_minimize(fun, x0, max_iter=100, **kw):
    """Minimise ``fun(x) -> (loss, grad)`` from the (n,) point ``x0``.

    Repeats ``lbfgs_step`` (keyword arguments ``kw`` are passed on) until it
    reports convergence or failure, or ``max_iter`` iterations are done.

    Returns:
        ``(x, loss, n_iter, n_evals)``: final (n,) point and its loss, the
        number of accepted iterations and of calls to ``fun`` (including the
        first).  A stationary ``x0`` gives ``(x0, fun(x0)[0], 0, 1)``.
    """
    check_callable(fun, "fun")
    _check_vector(x0, "x0")
    max_iter = check_int(max_iter, "max_iter", 0)
    loss, grad = _call(fun, x0)
    x, state, n_evals = x0, lbfgs_init(), 1
    for _ in range(max_iter):
        x, loss, grad, state, info = lbfgs_step(fun, x, loss, grad, state, **kw)
        n_evals += info["n_evals"]
        if info["failed"] or info["converged"]:
            break
    return x, loss, state.n_iter, n_evals
