"""Physics-informed training: a PDE's residual and its conditions as one objective of the loop.

    def poisson(x, u, grad, second):             # -(u_xx + u_yy) = f
        r = second[:, 0] + second[:, 1] + f(x)
        return r, np.zeros_like(u), np.zeros_like(grad), np.ones_like(second)
    problem = PDE(poisson, interior=x_in, second=[(0, 0), (1, 1)],
                  conditions=[Dirichlet(x_edge, 0.0)], solution=(x_test, u_test))
    fit_pde(model, problem, opt="adam", steps=500, lr=1e-2)
    fit_pde(model, problem, opt="lbfgs", steps=50)

The model has one output u. At the N interior points the residual function receives x (N, D),
u (N,), grad (N, D) with grad[:, a] = du/dx_a and second (N, P) with second[:, p] = d2u/dx_a dx_b
for the p-th pair (a, b) of `second`, and returns the residual r (N,) and its partial
derivatives with respect to u, grad and second (the shapes of those three): the contract of
KAN.fit's loss_fn, one level up. The loss is

    L = weight * mean_i (lambda_i r_i)^2 + sum_c weight_c * mean_j e_cj^2

with e the misfit of every condition c at its points: Dirichlet u - g, Neumann grad u . n - g,
Periodic u(a) - u(b) and grad u(a) - grad u(b). lambda = 1 unless adaptive or causal weights
are on (both move after every step, by the residual at the step's result; they change the
objective between steps, which suits Adam better than L-BFGS):
- adaptive, residual-based attention: a <- gamma a + eta |r| / max |r|, so that points the
  network keeps failing weigh more;
- causal: the points binned into slices of the time input, slice j weighed by
  c_j = exp(-eps * sum_{i<j} mean_{slice i} r^2), so that later times count once earlier ones
  fit (a PDE solved forward in time, not all at once);
and lambda = a sqrt(c). With resample, the interior points are drawn anew from a pool every
few steps, each with probability proportional to r^2 / mean(r^2) + 1 (RAD), and the weights
start again at 1. Initial conditions of time-dependent problems are Dirichlet conditions on
the t = t0 slice, or exact by construction (u = u0(x) + t v, the residual written for v:
bench/pde.py's Allen-Cahn). The gradient comes from kanarray.core.jet: exact derivatives
forward, the hand-derived backward through them.

Training is kanarray.training.loop.fit's: Adam or L-BFGS, grid updates on all the points
(interior and conditions), NaN steps rolled back. The history's train_loss is the RMS of the
interior residual (unweighted), boundary_loss the RMS misfit over every condition's points, and
test_loss the relative L2 error against `solution` when it is given (else sqrt(L)).
"""
import numbers
from typing import NamedTuple

import numpy as np

from .loop import fit as loop_fit
from .options import fit_options
from ..core.checks import check_int, check_real
from ..core.jet import backward_jet, check_jet_model, check_pairs, forward_jet


def _points(points, name, n_inputs=None):
    array = np.asarray(points, dtype=np.float64) if not isinstance(points, np.ndarray) else points
    if array.dtype.kind not in "fiu" or array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"{name} must be a 2-D array of points (N, inputs) with N >= 1, got "
                         f"shape {getattr(array, 'shape', None)}")
    if n_inputs is not None and array.shape[1] != n_inputs:
        raise ValueError(f"{name} must have {n_inputs} columns (the problem's inputs), got {array.shape[1]}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array.astype(np.float64)


def _values(values, points, name):
    """A condition's target at N points: a number, an array (N,) or (N, 1), or a callable of the
    points giving one."""
    if callable(values):
        values = values(points)
    shape = (points.shape[0],)
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        return np.full(shape, float(values))
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape and array.shape != shape + (1,):
        raise ValueError(f"{name} must be a number, an array of shape {shape} or a callable of the "
                         f"points giving one, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array.reshape(shape)


def _weight(weight, name):
    return check_real(weight, name, minimum=0)


class Dirichlet:
    """u = values at points (N, D); values: a number, (N,) or a callable of the points."""

    def __init__(self, points, values, weight=1.0):
        self.points = _points(points, "Dirichlet points")
        self.values = _values(values, self.points, "Dirichlet values")
        self.weight = _weight(weight, "Dirichlet weight")


class Neumann:
    """grad u . normals = values at points (N, D); normals (N, D); values as for Dirichlet."""

    def __init__(self, points, normals, values, weight=1.0):
        self.points = _points(points, "Neumann points")
        self.normals = _points(normals, "Neumann normals", self.points.shape[1])
        if self.normals.shape[0] != self.points.shape[0]:
            raise ValueError("Neumann normals must have one row per point")
        self.values = _values(values, self.points, "Neumann values")
        self.weight = _weight(weight, "Neumann weight")


class Periodic:
    """u(points) = u(partners), and grad u too unless derivative=False: periodicity by penalty
    (points (N, D) and partners (N, D): the two faces, row by row)."""

    def __init__(self, points, partners, weight=1.0, derivative=True):
        self.points = _points(points, "Periodic points")
        self.partners = _points(partners, "Periodic partners", self.points.shape[1])
        if self.partners.shape[0] != self.points.shape[0]:
            raise ValueError("Periodic partners must have one row per point")
        self.weight = _weight(weight, "Periodic weight")
        if not isinstance(derivative, bool):
            raise TypeError(f"derivative must be True or False, got {derivative!r}")
        self.derivative = derivative


class PDE:
    """A problem for fit_pde: see the module docstring.

    residual     residual(x, u, grad, second) -> (r, dr/du, dr/dgrad, dr/dsecond)
    interior     collocation points (N, D)
    second       the (a, b) input pairs whose second derivatives the residual reads
    conditions   Dirichlet, Neumann and Periodic conditions
    weight       the residual term's weight
    solution     None, (points, values) or a callable u(points) evaluated at the interior
                 points: the reference that test_loss reports the relative L2 error against
    """

    def __init__(self, residual, interior, second=(), conditions=(), weight=1.0, solution=None):
        if not callable(residual):
            raise TypeError(f"residual must be callable(x, u, grad, second), got {type(residual).__name__}")
        self.residual = residual
        self.interior = _points(interior, "interior")
        n_inputs = self.interior.shape[1]
        self.pairs = check_pairs(second, n_inputs)
        self.conditions = list(conditions)
        for c in self.conditions:
            if not isinstance(c, (Dirichlet, Neumann, Periodic)):
                raise TypeError(f"conditions must be Dirichlet, Neumann or Periodic, got {type(c).__name__}")
            if c.points.shape[1] != n_inputs:
                raise ValueError(f"a {type(c).__name__} condition has points of {c.points.shape[1]} "
                                 f"inputs, the interior {n_inputs}")
        self.weight = _weight(weight, "weight")
        if solution is None:
            self.solution = None
        elif callable(solution):
            self.solution = (self.interior, _values(solution, self.interior, "solution"))
        else:
            if not (isinstance(solution, tuple) and len(solution) == 2):
                raise TypeError("solution must be None, a callable u(points) or a pair (points, values)")
            points = _points(solution[0], "solution points", n_inputs)
            self.solution = (points, _values(solution[1], points, "solution values"))

    def all_points(self, interior=None):
        """Every point the loss reads (N_all, D), with these interior points (default: the
        problem's): where grid updates place the knots."""
        parts = [self.interior if interior is None else interior]
        for c in self.conditions:
            parts.append(c.points)
            if isinstance(c, Periodic):
                parts.append(c.partners)
        return np.concatenate(parts)


def _check_residual(out, n, n_inputs, n_pairs):
    """The residual function's answer as float64 arrays, or a clear error."""
    if not (isinstance(out, tuple) and len(out) == 4):
        raise TypeError("residual must return a tuple (r, dr/du, dr/dgrad, dr/dsecond)")
    shapes = ((n,), (n,), (n, n_inputs), (n, n_pairs))
    names = ("r", "dr/du", "dr/dgrad", "dr/dsecond")
    arrays = []
    for value, shape, name in zip(out, shapes, names):
        array = np.asarray(value, dtype=np.float64)
        if array.shape != shape:
            raise ValueError(f"residual must return {name} of shape {shape}, got {array.shape}")
        arrays.append(array)
    return arrays


class PDEEvaluation(NamedTuple):
    """An evaluation for the loop: loss and grad as every objective's, data_loss the mean
    squared interior residual, reg 0 (no regulariser), boundary the mean squared misfit over
    every condition's points."""

    loss: float
    grad: object
    data_loss: float
    reg: float
    boundary: float


class PDEObjective:
    """A PDE's loss on a model for kanarray.training.loop.fit (one process)."""

    is_root = True

    def __init__(self, model, problem, adaptive=None, causal=None, resample=None, seed=0):
        check_jet_model(model)
        if model.width[-1] != 1:
            raise ValueError(f"fit_pde trains a model with one output u, got width {model.width}")
        if problem.interior.shape[1] != model.width[0]:
            raise ValueError(f"the problem has {problem.interior.shape[1]} inputs, the model {model.width[0]}")
        if causal is not None and not 0 <= causal[0] < model.width[0]:
            raise ValueError(f"causal: the time input must be one of the {model.width[0]} inputs, got {causal[0]}")
        self.model, self.problem = model, problem
        self.adaptive, self.causal, self.resample = adaptive, causal, resample
        self.rng = np.random.default_rng(seed)
        self.steps_taken = 0
        self.first_order = check_pairs([], model.width[0])  # the conditions need u and grad u only
        self._set_points(problem.interior)

    def _set_points(self, points):
        """Collocation points (N, D) host float64: the weights start again at 1."""
        self.points = points
        self.n_rows = points.shape[0]
        self.lam = np.ones(self.n_rows)  # per point: attention * sqrt(causal weight)
        self.attention, self.causal_weight = np.ones(self.n_rows), np.ones(self.n_rows)
        if self.causal is not None:
            column, self.n_slices, _ = self.causal
            t = points[:, column]
            edges = np.linspace(t.min(), t.max(), self.n_slices + 1)
            self.slices = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, self.n_slices - 1)
            self.slice_counts = np.bincount(self.slices, minlength=self.n_slices)

    # the loop's protocol ----------------------------------------------------------------
    def select(self, rows):
        """Before every step after the first: new collocation points when due (resample), then
        the adaptive and causal weights moved by the residual at the model's parameters (the
        last step's result)."""
        if rows is not None:
            raise ValueError("fit_pde uses every collocation point at every step (batch=-1)")
        if self.resample is not None and self.steps_taken and self.steps_taken % self.resample[0] == 0:
            self._resample()
        if (self.adaptive is not None or self.causal is not None) and self.steps_taken:
            r = self.evaluate(self.model.params, need_grad=False)[2]["r"]
            if self.adaptive is not None:
                gamma, eta = self.adaptive
                self.attention = gamma * self.attention + eta * np.abs(r) / max(np.abs(r).max(), 1e-300)
            if self.causal is not None:
                self.causal_weight = self._causal_weights(r)
            self.lam = self.attention * np.sqrt(self.causal_weight)
        self.steps_taken += 1

    def _resample(self):
        """N points drawn from the pool without replacement, point j with probability
        proportional to r_j^2 / mean(r^2) + 1 (residual-based adaptive distribution, RAD)."""
        pool = self.resample[1]
        r = self.residual(pool)[0]
        density = r ** 2 / max(float(np.mean(r ** 2)), 1e-300) + 1
        chosen = self.rng.choice(len(pool), self.n_rows, replace=False, p=density / density.sum())
        self._set_points(pool[np.sort(chosen)])

    def _causal_weights(self, r):
        """exp(-eps * the mean squared residual of all earlier time slices), per point."""
        _, _, eps = self.causal
        slice_mse = np.bincount(self.slices, r ** 2, self.n_slices) / np.maximum(self.slice_counts, 1)
        earlier = np.concatenate([[0.0], np.cumsum(slice_mse)[:-1]])
        return np.exp(-eps * earlier)[self.slices]

    def value_and_grad(self, point):
        loss, grad, parts = self.evaluate(point)
        return PDEEvaluation(loss, grad, parts["residual"], 0.0, parts["boundary"])

    def step_metrics(self, ev):
        return {"train_loss": float(np.sqrt(ev.data_loss)), "boundary_loss": float(np.sqrt(ev.boundary)),
                "test_loss": self.error() if self.problem.solution is not None else float(np.sqrt(ev.loss))}

    def update_grid(self, margin=0.0):
        self.model.regrid(self.problem.all_points(self.points).astype(self.model.np_dtype), None, margin, None)

    def run(self, fn, *args):
        return fn(*args)

    run_on_root = run

    def finish(self):
        return {}

    # the loss ---------------------------------------------------------------------------
    def error(self):
        """Relative L2 error of the model against the problem's solution."""
        points, values = self.problem.solution
        u = np.asarray(self.model(points.astype(self.model.np_dtype)), dtype=np.float64)[:, 0]
        return float(np.linalg.norm(u - values) / max(np.linalg.norm(values), 1e-300))

    def residual(self, points, params=None):
        """(r, (dr/du, dr/dgrad, dr/dsecond), Trace) of the problem's residual at host points
        (N, D), with the parameter views `params` (default: the model's)."""
        jet, trace = forward_jet(self.model, points.astype(self.model.np_dtype), self.problem.pairs, params)
        u, du, d2u = (np.asarray(a[:, 0], dtype=np.float64) for a in jet)
        r, *partials = _check_residual(self.problem.residual(points, u, du, d2u), *points.shape,
                                       len(self.problem.pairs))
        return r, partials, trace

    def evaluate(self, point, need_grad=True):
        """(L, dL/dparams or None, parts) at the flat parameter vector `point`."""
        model, problem = self.model, self.problem
        params = model.views(point)
        grad = np.zeros(model.num_params, model.np_dtype) if need_grad else None
        part_grad = np.empty_like(grad) if need_grad else None
        n = self.n_rows
        r, (dr_u, dr_g, dr_s), trace = self.residual(self.points, params)
        weighted = self.lam * r
        loss = problem.weight * float(np.mean(weighted ** 2))
        if need_grad:
            gr = 2 * problem.weight * self.lam ** 2 * r / n  # dL/dr
            backward_jet(model, trace, (gr * dr_u)[:, None], (gr[:, None] * dr_g)[:, None, :],
                         (gr[:, None] * dr_s)[:, None, :], model.views(part_grad))
            grad += part_grad
        sse, count = 0.0, 0
        for c in problem.conditions:
            c_loss, c_sse, c_count = self._condition(c, params, part_grad)
            loss += c_loss
            sse, count = sse + c_sse, count + c_count
            if need_grad:
                grad += part_grad
        parts = {"r": r, "residual": float(np.mean(r ** 2)), "boundary": sse / max(count, 1)}
        return loss, grad, parts

    def _condition(self, c, params, part_grad):
        """(weighted loss, sum of squared misfits, count) of one condition; its gradient goes to
        part_grad when that is given."""
        model, dtype = self.model, self.model.np_dtype
        if isinstance(c, Periodic):
            ja, ta = forward_jet(model, c.points.astype(dtype), self.first_order, params)
            jb, tb = forward_jet(model, c.partners.astype(dtype), self.first_order, params)
            e = [ja.value[:, 0] - jb.value[:, 0]]
            if c.derivative:
                e += list((ja.grad[:, 0] - jb.grad[:, 0]).T)
            e = np.stack(e, axis=1).astype(np.float64)
            n = e.shape[0]
            loss = c.weight * float(np.mean(e ** 2))
            if part_grad is not None:
                ge = 2 * c.weight * e / e.size
                g_value = ge[:, :1]
                g_grad = (ge[:, 1:] if c.derivative else np.zeros((n, model.width[0])))[:, None, :]
                empty = np.zeros((n, 1, 0))
                backward_jet(model, ta, g_value, g_grad, empty, model.views(part_grad))
                other = np.empty_like(part_grad)
                backward_jet(model, tb, -g_value, -g_grad, empty, model.views(other))
                part_grad += other
            return loss, float((e ** 2).sum()), e.size
        jet, trace = forward_jet(model, c.points.astype(dtype), self.first_order, params)
        n = c.points.shape[0]
        if isinstance(c, Dirichlet):
            e = jet.value[:, 0].astype(np.float64) - c.values
        else:
            e = (jet.grad[:, 0].astype(np.float64) * c.normals).sum(axis=1) - c.values
        loss = c.weight * float(np.mean(e ** 2))
        if part_grad is not None:
            ge = 2 * c.weight * e / n
            g_value = ge[:, None] if isinstance(c, Dirichlet) else np.zeros((n, 1))
            g_grad = (np.zeros((n, 1, model.width[0])) if isinstance(c, Dirichlet)
                      else (ge[:, None] * c.normals)[:, None, :])
            backward_jet(model, trace, g_value, g_grad, np.zeros((n, 1, 0)), model.views(part_grad))
        return loss, float((e ** 2).sum()), n


def fit_pde(model, problem, opt="adam", steps=100, lr=None, update_grid=False, grid_update_num=10,
            start_grid_update_step=-1, stop_grid_update_step=50, grid_margin=0.0, adaptive=False,
            causal=None, resample=None, seed=0, log=None, callback=None, lbfgs_iters=20, lbfgs_history=10):
    """Train `model` (one output, CPU, spline edges) in place on the PDE `problem`; return the
    history (train_loss, boundary_loss, test_loss per step: the module docstring).

    opt, steps, lr, lbfgs_iters, lbfgs_history, log, callback, seed and the grid-update keywords
    are KAN.fit's. adaptive: False, True (residual-based attention with gamma = 0.999, eta =
    0.01) or a pair (gamma, eta), 0 <= gamma <= 1, eta >= 0. causal: None or (time input,
    slices, eps): causal training, the interior points binned into `slices` equal slices of
    that input and each slice's residual weighed by exp(-eps * the mean squared residual of
    the slices before it), so that later times count once earlier ones are fitted. resample:
    None or (every, pool): every `every` steps the interior points are drawn anew from the
    pool (M, D), M >= the interior's N, with probability proportional to r^2 / mean(r^2) + 1
    (RAD; seeded by `seed`).
    """
    if not isinstance(problem, PDE):
        raise TypeError(f"problem must be a kanarray.PDE, got {type(problem).__name__}")
    if adaptive is True:
        adaptive = (0.999, 0.01)
    elif adaptive is False or adaptive is None:
        adaptive = None
    else:
        if not (isinstance(adaptive, tuple) and len(adaptive) == 2):
            raise ValueError(f"adaptive must be True, False or a pair (gamma, eta), got {adaptive!r}")
        adaptive = (check_real(adaptive[0], "adaptive gamma", minimum=0, maximum=1),
                    check_real(adaptive[1], "adaptive eta", minimum=0))
    if causal is not None:
        if not (isinstance(causal, tuple) and len(causal) == 3):
            raise ValueError(f"causal must be None or (time input, slices, eps), got {causal!r}")
        causal = (check_int(causal[0], "causal time input", 0), check_int(causal[1], "causal slices", 1),
                  check_real(causal[2], "causal eps", minimum=0))
    if resample is not None:
        if not (isinstance(resample, tuple) and len(resample) == 2):
            raise ValueError(f"resample must be None or (every, pool), got {type(resample).__name__}")
        pool = _points(resample[1], "resample pool", problem.interior.shape[1])
        if len(pool) < len(problem.interior):
            raise ValueError(f"resample pool must hold at least the {len(problem.interior)} interior points, "
                             f"got {len(pool)}")
        resample = (check_int(resample[0], "resample every", 1), pool)
    options = fit_options(opt, steps, lr, -1, update_grid, grid_update_num, start_grid_update_step,
                          stop_grid_update_step, seed, log, callback, lbfgs_iters, None, grid_margin,
                          lbfgs_history)
    objective = PDEObjective(model, problem, adaptive, causal, resample, seed)
    start = model.snapshot()
    loss, _, _ = objective.evaluate(model.params, need_grad=False)
    if not np.isfinite(loss):
        model.restore(start)
        raise ValueError("the PDE loss is NaN/Inf at the model's starting parameters: check the "
                         "residual function and the points")
    return loop_fit(model, objective, options)
