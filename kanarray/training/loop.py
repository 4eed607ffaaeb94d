"""The training loop: an optimizer over a model's flat parameter vector, on an objective.

The loop follows the reference implementation's conventions: `steps` outer steps (an L-BFGS
step runs up to `iters` iterations with a strong-Wolfe line search, PyTorch's LBFGS default,
which pykan's step counts assume); grid updates on the options' GridSchedule; the RMSE logged
per step. Results come back as a dict of per-step lists.

It knows its optimizer only by the interface of kanarray.training.optim (init, update,
after_grid_update) and what it minimises only as an objective (kanarray.training.objective):
it never asks which optimizer runs or where the rows live. A step that leaves a non-finite
loss, gradient or parameters stops training: everything the step changed (parameters and knots,
a grid update included) is restored, a warning is issued and results["stopped"] says why. An
exception (from a loss_fn, a callback, a checkpoint write, or Ctrl-C) also puts the model back
to its last good step before it propagates. Nothing is lost.
"""
import dataclasses
import json
import sys
import time
import warnings

import numpy as np


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


def fit(model, objective, options, resume=None):
    """Train `model` in place on `objective` with kanarray.training.options.FitOptions (checked
    when made); return the history (see kanarray.KAN.fit).

    With options.checkpoint the model is saved after every good step together with the state
    of this fit (the step, the optimizer's state, the batch generator, the history). resume:
    that state as read back from such a checkpoint (the model already holds its parameters
    and knots): the fit goes on from the step after it and ends with the bits of a fit that
    was never interrupted.
    """
    n_rows = objective.n_rows
    if options.batch != -1 and options.batch > n_rows:
        raise ValueError(f"batch must be -1 or at most the {n_rows} training rows, got {options.batch}")
    opt, batch = options.opt, options.batch
    rng = np.random.default_rng(options.seed)
    results = {"train_loss": [], "test_loss": [], "n_evals": [], "evals_per_second": [],
               "seconds": 0.0, "stopped": None, "reg": []}
    progress = Progress(options.log, objective.is_root, model.grid)
    state, first = opt.init(model.params), 0
    if resume is not None:
        first, state, results = _resumed(resume, model, objective, options, rng)
    start = time.perf_counter()
    last_good = model.snapshot()  # what a failing step goes back to (it may move the knots too)

    try:
        for step in range(first, options.steps):
            step_start = time.perf_counter()
            objective.select(None if batch == -1 else np.sort(rng.choice(n_rows, batch, replace=False)))
            if options.grid.due(step):
                objective.update_grid(options.grid.margin)
                state = opt.after_grid_update(state)
            point, state, taken = opt.update(objective.value_and_grad, model.params.copy(), state)
            model.params[...] = point
            ev = taken.value

            xp = model.backend.xp
            if not (np.isfinite(ev.loss) and bool(xp.isfinite(ev.grad).all())
                    and bool(xp.isfinite(model.params).all())):
                model.restore(last_good)
                results["stopped"] = (f"step {step}: the loss, its gradient or the parameters became "
                                      "NaN/Inf; restored the parameters of the last good step (and "
                                      "its knots)")
                if objective.is_root:
                    warnings.warn(results["stopped"], RuntimeWarning, stacklevel=3)
                break
            last_good = model.snapshot()

            results["reg"].append(ev.reg)
            for key, value in objective.step_metrics(ev).items():
                results.setdefault(key, []).append(value)
            results["n_evals"].append(taken.n_evals)
            results["evals_per_second"].append(taken.n_evals / max(time.perf_counter() - step_start, 1e-9))
            progress.step(step, options.steps, results)
            if options.checkpoint is not None:
                objective.run_on_root(model.save, options.checkpoint, None,
                                      _record(step + 1, objective, options, state, rng, results))
            if options.callback is not None:
                objective.run(options.callback, step, model, results)

    except BaseException:  # an error (a callback, a loss_fn, Ctrl-C): back to the last good step
        model.restore(last_good)
        progress.close()
        raise
    progress.close()
    results.update(objective.finish())
    results["seconds"] = time.perf_counter() - start
    return results


def _record(steps_done, objective, options, state, rng, results):
    """(JSON dict, {name: host array}): the state of this fit after `steps_done` steps."""
    scalars, arrays = options.opt.save_state(state)
    return ({"steps_done": steps_done, "agreed": _agreed(objective, options),
             "rng": rng.bit_generator.state, "optimizer": scalars, "results": results}, arrays)


def _agreed(objective, options):
    """What a resumed fit must share with the one that wrote the checkpoint, as JSON."""
    loss = objective.loss if isinstance(objective.loss, str) else "callable"
    agreed = [repr(options.opt), options.batch, repr(options.grid), options.seed, loss,
              repr(objective.reg)]  # not steps: a resumed fit may go on for longer
    return json.loads(json.dumps(agreed))


def check_resumable(record, objective, options):
    """Raise unless the checkpointed fit whose JSON record this is ran with the same options,
    loss and regulariser as the one to resume it."""
    if record.get("agreed") != _agreed(objective, options):
        raise ValueError(f"resume: the checkpoint was written by a fit with other options "
                         f"({record.get('agreed')!r}); resume with the same ones, or start anew")


def _resumed(resume, model, objective, options, rng):
    """(first step, optimizer state, history so far) of a checkpointed fit; the generator
    `rng` is put where it was."""
    record, arrays = resume
    check_resumable(record, objective, options)
    rng.bit_generator.state = record["rng"]
    state = options.opt.load_state(record["optimizer"], arrays, model.params)
    return int(record["steps_done"]), state, record["results"]


def fit_restarts(model, objective, options, restarts, fresh_state):
    """fit from the model's state and from `restarts` fresh initialisations; keep the best.

    Candidate 0 starts from the model as it is, candidate r >= 1 from fresh_state(r) (a
    model.snapshot() of a new initialisation). Each trains with the same arguments; the one
    with the lowest held-out loss (the objective's test split, at its last step; NaN counts as
    worst, ties go to the earlier candidate) is put back in the model and its history returned,
    with "restart_test_loss" (one entry per candidate) and "restart" (the index kept).
    An error during a later candidate puts back the best candidate so far and re-raises.
    options.checkpoint always holds the best candidate so far: the first writes it after every
    good step, a later one only once it has finished and beaten the others.
    """
    scores, best = [], None
    later = dataclasses.replace(options, checkpoint=None)
    for r in range(restarts + 1):
        if r:
            model.restore(fresh_state(r))
        try:
            history = fit(model, objective, later if r else options)
        except BaseException:
            if best is not None:
                model.restore(best[1])
            raise
        held_out = history["test_loss"][-1] if history["test_loss"] else np.inf
        scores.append(float(held_out) if np.isfinite(held_out) else np.inf)
        if best is None or scores[-1] < best[0]:
            best = (scores[-1], model.snapshot(), history, r)
            if r and options.checkpoint is not None:
                objective.run_on_root(model.save, options.checkpoint)
    _, state, history, kept = best
    model.restore(state)
    history["restart_test_loss"], history["restart"] = scores, kept
    return history
