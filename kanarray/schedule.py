"""Grid extension schedule: train, refine to a finer grid, train again (the KAN paper's recipe)."""
import time


def grid_extension(model, dataset, grids, steps=200, refine_on_samples=False, restarts=0,
                   **fit_kwargs):
    """Train `model` on each grid of `grids` in turn; return the last model and a table.

    The first entry of grids must be model.grid. Between stages the model is refined with
    model.refine(G), which subdivides the current knots (or follows the training samples when
    refine_on_samples is set). restarts goes to the first stage's fit (the later stages refine
    the initialisation it kept); fit_kwargs go to every stage's model.fit.
    -> (model, [{"grid", "train_rmse", "test_rmse", "seconds", "stopped"}, ...])
    """
    grids = list(grids)
    if not grids or grids[0] != model.grid:
        raise ValueError(f"grids must start with the model's grid {model.grid}, got {grids}")
    rows = []
    for stage, grid in enumerate(grids):
        start = time.perf_counter()
        if stage:
            model = model.refine(grid, x=dataset["train_input"] if refine_on_samples else None)
        results = model.fit(dataset, steps=steps, restarts=0 if stage else restarts, **fit_kwargs)
        rows.append({"grid": grid, "train_rmse": results["train_loss"][-1],
                     "test_rmse": results["test_loss"][-1], "seconds": time.perf_counter() - start,
                     "stopped": results["stopped"]})
    return model, rows
