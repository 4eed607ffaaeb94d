"""End-to-end accuracy on the KAN paper's toy, f(x, y) = exp(sin(pi x) + y^2)."""
import warnings

import numpy as np
import pytest

import kanarray
from kanarray.pipelines.stages import grid_extension

SEEDS = range(5)


def toy(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def schedule(data_seed, model_seed, **fit_kwargs):
    """[2, 5, 1] in float64, 1000 train / 1000 test points, grids 3 -> 5 -> 10 -> 20 with 100
    L-BFGS steps each -> (model, rows) of kanarray.pipelines.stages.grid_extension."""
    data = kanarray.create_dataset(toy, n_var=2, train_num=1000, test_num=1000, seed=data_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # off-grid notices while the hidden ranges move
        model = kanarray.KAN([2, 5, 1], grid=3, k=3, seed=model_seed)
        return grid_extension(model, data, [3, 5, 10, 20], steps=100, **fit_kwargs)


@pytest.fixture(scope="module")
def runs():
    """The schedule on data seed 0 for model seeds 0..4 -> {seed: (model, rows)}."""
    return {seed: schedule(0, seed) for seed in SEEDS}


@pytest.mark.slow
def test_grid_extension_improves_every_seed_tenfold(runs):
    for seed, (model, rows) in runs.items():
        test_rmse = [row["test_rmse"] for row in rows]
        assert all(row["stopped"] is None for row in rows), seed
        assert model.grid == 20
        assert test_rmse[-1] < test_rmse[0] / 10, (seed, test_rmse)


@pytest.mark.slow
def test_final_test_rmse_across_seeds(runs):
    """What a user should expect, measured on this code (model seeds 0-4, data seed 0): test
    RMSE at G = 20 of 8.3e-5, 2.6e-4, 9.1e-5, 1.6e-4 and 8.6e-5, so below 3e-4 for every seed
    and below 1e-4 for three of five (`python bench/toy_seeds.py`). The reference
    implementation (pykan 0.2.8) reaches 3.1e-5 for its seed 0 with 200 steps per grid. The goal
    of < 1e-4 for every seed is not reached yet; these bounds record the rate, with room for
    rounding-level changes, not a lucky seed."""
    final = np.array([rows[-1]["test_rmse"] for _, rows in runs.values()])
    assert np.all(final < 3e-4), final
    assert np.sum(final < 1e-4) >= 2, final
    assert np.median(final) < 1.5e-4, final


@pytest.mark.slow
def test_a_wider_grid_a_longer_history_and_restarts_bring_every_seed_pair_below_1e_4():
    """Data seed s with model seed s, s = 0..4, with fit's grid_margin=0.5 (the grid updates'
    range widened by half a mean cell each side, so test points past the training points' range
    fall inside the grid), lbfgs_history=100 (pykan's 10 underfits this ill-conditioned fit: the
    train RMSE is still falling at each stage's end) and restarts=2 (the whole schedule from
    three starts, keeping the one that ends best on the test split). Scored on 1000 fresh points
    the selection never saw. Over all 25 pairs of data and model seeds 0-4 every pair ends below
    1e-4 (median 3.8e-5, worst 8.2e-5); with the margin and history alone 22 of 25 (the misses
    are starts that settle in a worse minimum at G = 3); with the default settings 4 of 25,
    median 2.0e-4 (`python bench/toy_seeds.py`). About three times the default's cost, so it is
    not the default; this test runs the diagonal of the 25 pairs."""
    for seed in SEEDS:
        fresh = kanarray.create_dataset(toy, n_var=2, train_num=10, test_num=1000, seed=1000 + seed)
        model, _ = schedule(seed, seed, grid_margin=0.5, lbfgs_history=100, restarts=2)
        rmse = np.sqrt(np.mean((model(fresh["test_input"]) - fresh["test_label"]) ** 2))
        assert rmse < 1e-4, (seed, rmse)
