"""The training loop: L-BFGS or Adam over a model's flat parameter vector, on an objective.

The loop follows the reference implementation's conventions: `steps` outer steps, each L-BFGS
step running up to `lbfgs_iters` iterations with a strong-Wolfe line search (PyTorch's LBFGS
default, which pykan's step counts assume); grid updates every
stop_grid_update_step // grid_update_num steps until stop_grid_update_step; RMSE logged per
step. Results come back as a dict of per-step lists.

What it minimises is an objective (kanarray.training.objective): this loop never asks where the rows
live. A step that leaves a non-finite loss, gradient or parameters stops training: everything
the step changed (parameters and knots, a grid update included) is restored, a warning is issued
and results["stopped"] says why. An exception (from a loss_fn, a callback, a checkpoint write,
or Ctrl-C) also puts the model back to its last good step before it propagates. Nothing is lost.
"""
import numbers
import sys
import time
import warnings

import numpy as np

from ..core.checks import check_int, check_real
from .optim import HISTORY_SIZE, MAX_LINE_SEARCH, adam_init, adam_update, lbfgs_init, lbfgs_update

# Like pykan: never stop an L-BFGS step on tolerances; a float64 MSE near 1e-12 still moves by
# far less than any fixed absolute threshold while it keeps improving.
LBFGS_TOLERANCE = 1e-32
OPTIMIZERS = ("lbfgs", "adam")


def check_loop_arguments(opt, steps, lr, batch, update_grid, grid_update_num,
                         start_grid_update_step, stop_grid_update_step, seed, log, callback,
                         lbfgs_iters, grid_margin=0.0, lbfgs_history=HISTORY_SIZE):
    """The loop's arguments, validated; returns (steps, lr, lbfgs_iters) normalised."""
    if opt not in OPTIMIZERS:
        raise ValueError(f"opt must be one of {OPTIMIZERS}, got {opt!r}")
    steps = check_int(steps, "steps", 0)
    lbfgs_iters = check_int(lbfgs_iters, "lbfgs_iters", 1)
    check_int(lbfgs_history, "lbfgs_history", 1)
    if lr is None:
        lr = 1.0 if opt == "lbfgs" else 1e-2
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if batch != -1:
        check_int(batch, "batch", 1)
    if not isinstance(update_grid, (bool, np.bool_)):
        raise TypeError(f"update_grid must be True or False, got {update_grid!r}")
    check_int(grid_update_num, "grid_update_num", 1)
    check_int(start_grid_update_step, "start_grid_update_step", -1)
    check_int(stop_grid_update_step, "stop_grid_update_step", 0)
    check_real(grid_margin, "grid_margin", minimum=0)
    check_int(seed, "seed", 0)
    if log is not None:
        check_int(log, "log", 0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable(step, model, results) or None, got "
                        f"{type(callback).__name__}")
    return steps, float(lr), lbfgs_iters


def _lbfgs_step(objective, params, state, lr, lbfgs_iters, history):
    """Up to lbfgs_iters L-BFGS iterations, keeping `history` curvature pairs, from params
    -> (point, loss, grad, state, n_evals)."""
    loss, grad = objective.value_and_grad(params)
    loss, n_evals, point = float(loss), 1, params
    for _ in range(lbfgs_iters):
        point, loss, grad, state, info = lbfgs_update(  # arguments checked once, by fit
            objective.value_and_grad, point, loss, grad, state, lr, history, MAX_LINE_SEARCH,
            LBFGS_TOLERANCE, LBFGS_TOLERANCE)
        n_evals += info["n_evals"]
        if info["converged"] or info["failed"]:
            break
    return point, loss, grad, state, n_evals


class Progress:
    """What fit prints. log=None: one line updated in place on a terminal, nothing otherwise;
    log=0: nothing; log=n: a line every n steps (for files and batch jobs)."""

    def __init__(self, log, is_root, grid):
        self.every = log
        self.live = log is None and is_root and sys.stdout.isatty()
        self.quiet = not is_root or (log is None and not self.live) or log == 0
        self.grid = grid

    def step(self, step, steps, results):
        if self.quiet or (not self.live and step % self.every):
            return
        line = (f"step {step:5d}/{steps} | grid {self.grid} | train {results['train_loss'][-1]:.3e} "
                f"| test {results['test_loss'][-1]:.3e}"
                + (f" | test acc {results['test_accuracy'][-1]:.4f}" if "test_accuracy" in results else "")
                + f" | {results['evals_per_second'][-1]:.0f} evals/s")
        print(f"\r{line}" if self.live else line, end="" if self.live else "\n", flush=True)

    def close(self):
        if self.live:
            print(flush=True)


def fit(model, objective, opt="lbfgs", steps=100, lr=None, batch=-1, update_grid=True,
        grid_update_num=10, start_grid_update_step=-1, stop_grid_update_step=50, seed=0, log=None,
        callback=None, lbfgs_iters=20, checkpoint=None, grid_margin=0.0,
        lbfgs_history=HISTORY_SIZE):
    """Train `model` in place on `objective`; return the history (see kanarray.KAN.fit)."""
    steps, lr, lbfgs_iters = check_loop_arguments(
        opt, steps, lr, batch, update_grid, grid_update_num, start_grid_update_step,
        stop_grid_update_step, seed, log, callback, lbfgs_iters, grid_margin, lbfgs_history)
    n_rows = objective.n_rows
    if batch != -1 and batch > n_rows:
        raise ValueError(f"batch must be -1 or at most the {n_rows} training rows, got {batch}")
    grid_update_freq = max(1, stop_grid_update_step // grid_update_num)
    rng = np.random.default_rng(seed)
    lamb = 0.0 if objective.reg is None else objective.reg.lamb
    results = {"train_loss": [], "test_loss": [], "n_evals": [], "evals_per_second": [],
               "seconds": 0.0, "stopped": None, "reg": []}
    progress = Progress(log, objective.is_root, model.grid)
    adam_state = adam_init(model.params)
    lbfgs_state = lbfgs_init()
    start = time.perf_counter()
    last_good = model.snapshot()  # what a failing step goes back to (it may move the knots too)

    try:
        for step in range(steps):
            step_start = time.perf_counter()
            objective.select(None if batch == -1 else np.sort(rng.choice(n_rows, batch, replace=False)))
            if (update_grid and step % grid_update_freq == 0
                    and start_grid_update_step <= step < stop_grid_update_step):
                objective.update_grid(grid_margin)
                lbfgs_state = lbfgs_init()  # the parameters moved: old curvature pairs no longer apply

            if opt == "lbfgs":
                point, loss, grad, lbfgs_state, n_evals = _lbfgs_step(
                    objective, model.params.copy(), lbfgs_state, lr, lbfgs_iters, lbfgs_history)
                model.params[...] = point
            else:
                loss, grad = objective.value_and_grad(model.params.copy())
                n_evals = 1
                delta, adam_state = adam_update(grad, adam_state, lr=lr)
                model.params[...] = model.params + delta

            xp = model.backend.xp
            if not (np.isfinite(loss) and bool(xp.isfinite(grad).all())
                    and bool(xp.isfinite(model.params).all())):
                model.restore(last_good)
                results["stopped"] = (f"step {step}: the loss, its gradient or the parameters became "
                                      "NaN/Inf; restored the parameters of the last good step (and "
                                      "its knots)")
                if objective.is_root:
                    warnings.warn(results["stopped"], RuntimeWarning, stacklevel=3)
                break
            last_good = model.snapshot()

            reg_value = 0.0 if objective.reg is None else objective.regularizer_value()
            results["reg"].append(reg_value)
            for key, value in objective.step_metrics(loss - lamb * reg_value).items():
                results.setdefault(key, []).append(value)
            results["n_evals"].append(n_evals)
            results["evals_per_second"].append(n_evals / max(time.perf_counter() - step_start, 1e-9))
            progress.step(step, steps, results)
            if checkpoint is not None:
                objective.run_on_root(model.save, checkpoint)
            if callback is not None:
                objective.run(callback, step, model, results)

    except BaseException:  # an error (a callback, a loss_fn, Ctrl-C): back to the last good step
        model.restore(last_good)
        progress.close()
        raise
    progress.close()
    results.update(objective.finish())
    results["seconds"] = time.perf_counter() - start
    return results


def fit_restarts(model, objective, restarts, fresh_state, **loop):
    """fit from the model's state and from `restarts` fresh initialisations; keep the best.

    Candidate 0 starts from the model as it is, candidate r >= 1 from fresh_state(r) (a
    model.snapshot() of a new initialisation). Each trains with the same arguments; the one
    with the lowest held-out loss (the objective's test split, at its last step; NaN counts as
    worst, ties go to the earlier candidate) is put back in the model and its history returned,
    with "restart_test_loss" (one entry per candidate) and "restart" (the index kept).
    An error during a later candidate puts back the best candidate so far and re-raises.
    """
    scores, best = [], None
    for r in range(restarts + 1):
        if r:
            model.restore(fresh_state(r))
        try:
            history = fit(model, objective, **loop)
        except BaseException:
            if best is not None:
                model.restore(best[1])
            raise
        held_out = history["test_loss"][-1] if history["test_loss"] else np.inf
        scores.append(float(held_out) if np.isfinite(held_out) else np.inf)
        if best is None or scores[-1] < best[0]:
            best = (scores[-1], model.snapshot(), history, r)
    _, state, history, kept = best
    model.restore(state)
    history["restart_test_loss"], history["restart"] = scores, kept
    return history
