"""Grid extension schedule: train, refine to a finer grid, train again (the KAN paper's recipe)."""
import time

import numpy as np

from ..core.checks import check_int


def grid_extension(model, dataset, grids, steps=200, refine_on_samples=False, restarts=0,
                   **fit_kwargs):
    """Train `model` on each grid of `grids` in turn; return the last model and a table.

    The first entry of grids must be model.grid. Between stages the model is refined with
    model.refine(G), which subdivides the current knots (or follows the training samples when
    refine_on_samples is set); fit_kwargs go to every stage's model.fit.
    restarts: also run the whole schedule from this many fresh initialisations
    (model.fresh_start) and keep the run whose last stage ends with the lowest test-split RMSE
    (NaN counts as worst, ties go to the earlier start). The test split then serves as a
    validation split: score the result on data it has not seen. The choice is made at the
    end, not on the first grid, because the coarse grid does not tell which start ends best.
    `model` itself is trained in place as start 0 whichever start is kept.
    -> (model, [{"grid", "train_rmse", "test_rmse", "seconds", "stopped", "start"}, ...]), the
       rows of the kept start; "start" is its number (0: `model`'s own initialisation)
    """
    grids = list(grids)
    if not grids or grids[0] != model.grid:
        raise ValueError(f"grids must start with the model's grid {model.grid}, got {grids}")
    restarts = check_int(restarts, "restarts", 0)
    best = None
    for start in range(restarts + 1):
        first = model if start == 0 else model.fresh_start(start)
        final, rows = _one_schedule(first, dataset, grids, steps, refine_on_samples, fit_kwargs)
        score = rows[-1]["test_rmse"]
        score = float(score) if np.isfinite(score) else np.inf
        if best is None or score < best[0]:
            best = (score, final, [dict(row, start=start) for row in rows])
    return best[1], best[2]


def _one_schedule(model, dataset, grids, steps, refine_on_samples, fit_kwargs):
    rows = []
    for stage, grid in enumerate(grids):
        start = time.perf_counter()
        if stage:
            model = model.refine(grid, x=dataset["train_input"] if refine_on_samples else None)
        results = model.fit(dataset, steps=steps, **fit_kwargs)
        rows.append({"grid": grid, "train_rmse": results["train_loss"][-1],
                     "test_rmse": results["test_loss"][-1], "seconds": time.perf_counter() - start,
                     "stopped": results["stopped"]})
    return model, rows
