"""Stages of a pipeline, run one way: change the model, fit it, record a row.

    model, row = run_stage("refine 20", model, dataset, lambda m: m.refine(20), steps=30)
    model, rows = grid_extension(model, dataset, [3, 5, 10, 20], steps=100)
    model, fixed = fix_layer_by_layer(model, x_train, lib, refit=lambda m: m.fit(...))

Every pipeline of kanarray goes through these: the grid-extension schedule, `kanarray.discover`
(and so `kanarray demo`), `kanarray fit` and the scikit-learn estimators. A row is a dict:
{"stage", "width", "grid", "train_loss", "test_loss", "seconds", "stopped", "history"}, the
losses the last step's of fit's history (RMSEs for the mean squared error, cross-entropies for
"ce", with "train_accuracy" and "test_accuracy" then) and "history" fit's whole result.
"""
import time

import numpy as np

from ..core.checks import check_int


def run_stage(name, model, dataset, change=None, **fit_kwargs):
    """change(model) -> model (a refine, a pruning, edges fixed; None: the model as it is), then
    model.fit(dataset, **fit_kwargs) -> (the fitted model, its row)."""
    start = time.perf_counter()
    if change is not None:
        model = change(model)
    history = model.fit(dataset, **fit_kwargs)
    row = {"stage": name, "width": list(model.width), "grid": model.grid,
           **{key: values[-1] if values else np.nan for key, values in history.items()
              if key.startswith(("train_", "test_")) and isinstance(values, list)},
           "seconds": time.perf_counter() - start, "stopped": history["stopped"],
           "history": history}
    return model, row


def grid_extension(model, dataset, grids, steps=200, refine_on_samples=False, restarts=0,
                   keep_best=True, **fit_kwargs):
    """Train `model` on each grid of `grids` in turn (the KAN paper's recipe); return the
    model of the stage that ends with the lowest test-split loss (keep_best=False: the last
    stage's) and a table of every stage.

    The first entry of grids must be model.grid. Between stages the model is refined with
    model.refine(G), which subdivides the current knots (or follows the training samples when
    refine_on_samples is set); fit_kwargs go to every stage's model.fit. A finer grid can fit
    the training rows better and the held-out ones worse (it overfits); keeping the best stage
    means a finer grid never makes the held-out error worse. The test split then serves as a
    validation split: score the result on data it has not seen.
    restarts: also run the whole schedule from this many fresh initialisations
    (model.fresh_start) and keep the run whose kept stage has the lowest test-split loss
    (NaN counts as worst, ties go to the earlier start and stage). The choice is made at the
    end, not on the first grid, because the coarse grid does not tell which start ends best.
    `model` itself is trained in place as start 0 whichever start is kept.
    -> (model, [{"grid", "train_rmse", "test_rmse", "seconds", "stopped", "start", "kept",
       "history"}, ...]), the rows of the kept start; "start" is its number (0: `model`'s own
       initialisation), "kept" marks the stage returned; with loss="ce" the *_rmse entries
       hold the cross-entropies
    """
    grids = list(grids)
    if not grids or grids[0] != model.grid:
        raise ValueError(f"grids must start with the model's grid {model.grid}, got {grids}")
    restarts = check_int(restarts, "restarts", 0)
    if not isinstance(keep_best, bool):
        raise TypeError(f"keep_best must be True or False, got {keep_best!r}")
    best = None
    for start in range(restarts + 1):
        first = model if start == 0 else model.fresh_start(start)
        models, rows = _one_schedule(first, dataset, grids, steps, refine_on_samples, fit_kwargs)
        scores = [float(row["test_rmse"]) if np.isfinite(row["test_rmse"]) else np.inf for row in rows]
        kept = int(np.argmin(scores)) if keep_best else len(rows) - 1
        if best is None or scores[kept] < best[0]:
            best = (scores[kept], models[kept],
                    [dict(row, start=start, kept=stage == kept) for stage, row in enumerate(rows)])
    return best[1], best[2]


def _one_schedule(model, dataset, grids, steps, refine_on_samples, fit_kwargs):
    """(the model after every stage, a row for every stage)."""
    models, rows = [], []
    x = dataset["train_input"] if refine_on_samples else None
    for stage, grid in enumerate(grids):
        change = None if stage == 0 else lambda m, g=grid: m.refine(g, x=x)
        model, row = run_stage(f"grid {grid}", model, dataset, change, steps=steps, **fit_kwargs)
        models.append(model)
        rows.append({"grid": grid, "train_rmse": row["train_loss"], "test_rmse": row["test_loss"],
                     "seconds": row["seconds"], "stopped": row["stopped"], "history": row["history"]})
    return models, rows


def fix_layer_by_layer(model, x, lib, refit, share=None):
    """Fix every edge of `model` to its best library function (KAN.auto_symbolic on inputs x),
    one layer at a time, refitting after each layer but the last (refit(model) -> model), so
    that the later splines adapt to the exact functions before them. Stops at the first layer
    where an edge fits no library function well (it stays a spline: no formula then).

    share(model, fits) -> (model, fits): what every process continues with after a layer was
    fixed (MPI: the root's decision sent to all; default: as it is).
    -> (model, {(l, i, j): (name or "", R^2)} of every edge tried)
    """
    fixed = {}
    for l in range(model.depth):
        fits = model.auto_symbolic(lib=lib, x=x, verbose=0, layers=[l])
        if share is not None:
            model, fits = share(model, fits)
        fixed.update(fits)
        if not all(name for name, _ in fits.values()):
            break
        if l < model.depth - 1:
            model = refit(model)
    return model, fixed
