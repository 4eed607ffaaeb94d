"""L-BFGS with a strong-Wolfe line search over a flat parameter vector, as pure steps and as an
optimizer.

    opt = LBFGS(history=10, iters=20)      # kanarray.training.optim's interface
    x, loss, grad, state, info = lbfgs_step(fun, x, loss, grad, lbfgs_init())
    x, loss, n_iter, n_evals = lbfgs_minimize(fun, x0)
"""
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .optim import Step, as_float, call, check_lr, check_vector, dot, max_abs, to_host
from ..core.arrays import array_module
from ..core.checks import check_callable, check_int, check_real
from ..kernels import cpu as cpu_kernels


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
        alphas.append(float(rho) * dot(s, q))
        q -= alphas[-1] * y  # in place: q and r are this function's own arrays
    r = state.gamma * q
    for s, y, rho, alpha in zip(state.s_hist, state.y_hist, state.rho, reversed(alphas)):
        r += (alpha - float(rho) * dot(y, r)) * s
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
    slope ``gtd = g . d``, and fun's whole answer ``value``."""

    t: float
    f: float
    g: object
    gtd: float
    value: tuple


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
    d_norm = max_abs(d)
    n_evals = 0

    def evaluate(t):
        nonlocal n_evals
        n_evals += 1
        f, g, value = call(fun, x + t * d)
        return _Trial(t, f, g, dot(g, d) if math.isfinite(f) else math.nan, value)

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
    check_vector(x, "x")
    check_vector(grad, "grad")
    if grad.shape != x.shape:
        raise ValueError(f"grad must have the shape of x {tuple(x.shape)}, got {tuple(grad.shape)}")
    loss = as_float(loss, "loss")
    if not isinstance(state, LBFGSState):
        raise TypeError(f"state must be an LBFGSState (from lbfgs_init), got {type(state).__name__}")
    x, loss, grad, _, state, info = _lbfgs_iteration(
        fun, x, loss, grad, None, state,
        check_real(lr, "lr", above=0),  # a Python float: a NumPy scalar upcasts float32
        check_int(history_size, "history_size", 1), check_int(max_ls, "max_ls", 1),
        check_real(tolerance_grad, "tolerance_grad", minimum=0),
        check_real(tolerance_change, "tolerance_change", minimum=0))
    return x, loss, grad, state, info


def _lbfgs_iteration(fun, x, loss, grad, value, state, lr, history_size, max_ls, tolerance_grad,
                     tolerance_change):
    """lbfgs_step without its argument checks, for callers that validated them once (LBFGS):
    loss (a host float) and grad are fun(x)'s, value its whole answer; -> (x_new, loss_new,
    grad_new, value_new, state_new, info)."""
    t = lr  # the first trial step

    def unchanged(converged):
        info = {"n_evals": 0, "converged": converged, "step": 0.0, "failed": not converged}
        return x, loss, grad, value, state if converged else lbfgs_init()._replace(n_iter=state.n_iter), info

    grad_max = max_abs(grad)
    if not (math.isfinite(loss) and math.isfinite(grad_max)):
        return unchanged(converged=False)
    if grad_max <= tolerance_grad:
        return unchanged(converged=True)

    d = _two_loop(grad, state)
    gtd = dot(grad, d)
    if not gtd < 0.0:  # not a descent direction (or NaN): restart
        state = lbfgs_init()._replace(n_iter=state.n_iter)
        d = -grad
        gtd = dot(grad, d)
    if gtd == 0.0:  # grad . grad underflowed: stationary to working precision
        return unchanged(converged=True)
    if not math.isfinite(gtd):  # grad . grad overflowed: no finite slope to test decrease against
        return unchanged(converged=False)
    if not len(state.rho):  # |grad|_1 > 0, and finite because grad . grad is
        t *= min(1.0, 1.0 / float(array_module(grad).abs(grad).sum()))

    start = _Trial(0.0, loss, grad, gtd, value)
    trial, n_evals = _strong_wolfe(fun, x, d, start, t, max_ls, tolerance_change)

    if trial is start:
        info = {"n_evals": n_evals, "converged": False, "step": 0.0, "failed": True}
        return x, loss, grad, value, lbfgs_init()._replace(n_iter=state.n_iter), info

    s = trial.t * d
    y = trial.g - grad
    ys = dot(y, s)
    yy = dot(y, y)
    if ys > 1e-10 * yy:  # curvature guard keeps the inverse Hessian positive definite
        state = state._replace(
            s_hist=_push(state.s_hist, s, history_size),
            y_hist=_push(state.y_hist, y, history_size),
            rho=np.append(state.rho, 1.0 / ys)[-history_size:],
            gamma=ys / yy,
        )
    state = state._replace(n_iter=state.n_iter + 1)

    converged = (
        max_abs(trial.g) <= tolerance_grad
        or abs(trial.f - loss) < tolerance_change
        or trial.t * max_abs(d) <= tolerance_change
    )
    info = {"n_evals": n_evals, "converged": converged, "step": trial.t, "failed": False}
    return x + s, trial.f, trial.g, trial.value, state, info


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
    check_vector(x0, "x0")
    max_iter = check_int(max_iter, "max_iter", 0)
    loss, grad, _ = call(fun, x0)
    x, state, n_evals = x0, lbfgs_init(), 1
    for _ in range(max_iter):
        x, loss, grad, state, info = lbfgs_step(fun, x, loss, grad, state, **kw)
        n_evals += info["n_evals"]
        if info["failed"] or info["converged"]:
            break
    return x, loss, state.n_iter, n_evals


@dataclass(frozen=True)
class LBFGS:
    """L-BFGS with a strong-Wolfe line search and its options, checked once: update runs up to
    `iters` iterations (lbfgs_step) from params, keeping `history` curvature pairs; lr scales
    the first trial step. The tolerances default to PyTorch's LBFGS as pykan calls it: never
    stop on them (a float64 MSE near 1e-12 still moves by far less than any fixed absolute
    threshold while it keeps improving)."""

    lr: float = 1.0
    history: int = HISTORY_SIZE
    iters: int = 20
    max_ls: int = MAX_LINE_SEARCH
    tolerance_grad: float = 1e-32
    tolerance_change: float = 1e-32

    def __post_init__(self):
        object.__setattr__(self, "lr", check_lr(self.lr))
        object.__setattr__(self, "history", check_int(self.history, "lbfgs_history", 1))
        object.__setattr__(self, "iters", check_int(self.iters, "lbfgs_iters", 1))
        object.__setattr__(self, "max_ls", check_int(self.max_ls, "max_ls", 1))
        object.__setattr__(self, "tolerance_grad", check_real(self.tolerance_grad, "tolerance_grad", minimum=0))
        object.__setattr__(self, "tolerance_change", check_real(self.tolerance_change, "tolerance_change", minimum=0))

    def init(self, params):
        return lbfgs_init()

    def update(self, fun, params, state):
        loss, grad, value = call(fun, params)
        point, n_evals = params, 1
        for _ in range(self.iters):
            point, loss, grad, value, state, info = _lbfgs_iteration(
                fun, point, loss, grad, value, state, self.lr, self.history, self.max_ls,
                self.tolerance_grad, self.tolerance_change)
            n_evals += info["n_evals"]
            if info["converged"] or info["failed"]:
                break
        return point, state, Step(value, n_evals)

    def after_grid_update(self, state):
        return lbfgs_init()  # the parameters moved: old curvature pairs no longer apply

    def save_state(self, state):
        """(JSON scalars, {name: host array}) of a state, for a checkpoint."""
        pairs = {name: to_host(getattr(state, name)) if len(getattr(state, name)) else np.zeros((0,))
                 for name in ("s_hist", "y_hist")}
        return ({"n_iter": state.n_iter, "gamma": state.gamma},
                {**pairs, "rho": np.asarray(state.rho, dtype=np.float64)})

    def load_state(self, scalars, arrays, params):
        """The state save_state wrote, on the device of params."""
        xp = array_module(params)
        pairs = [xp.asarray(arrays[name], dtype=params.dtype) if arrays[name].size else ()
                 for name in ("s_hist", "y_hist")]
        rho = arrays["rho"] if arrays["rho"].size else ()
        return LBFGSState(*pairs, rho, int(scalars["n_iter"]), float(scalars["gamma"]))
