"""End-to-end accuracy on the KAN paper's toy, f(x, y) = exp(sin(pi x) + y^2)."""
import warnings

import numpy as np
import pytest

import kanarray
from kanarray.schedule import grid_extension

SEEDS = range(5)


def toy(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


@pytest.fixture(scope="module")
def runs():
    """[2, 5, 1] in float64, 1000 train / 1000 test points (data seed 0), grids 3 -> 5 -> 10 ->
    20 with 100 L-BFGS steps each, for model seeds 0..4 -> {seed: (model, rows)}."""
    data = kanarray.create_dataset(toy, n_var=2, train_num=1000, test_num=1000, seed=0)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # off-grid notices while the hidden ranges move
        for seed in SEEDS:
            model = kanarray.KAN([2, 5, 1], grid=3, k=3, seed=seed)
            out[seed] = grid_extension(model, data, [3, 5, 10, 20], steps=100)
    return out


@pytest.mark.slow
def test_grid_extension_improves_every_seed_tenfold(runs):
    for seed, (model, rows) in runs.items():
        test_rmse = [row["test_rmse"] for row in rows]
        assert all(row["stopped"] is None for row in rows), seed
        assert model.grid == 20
        assert test_rmse[-1] < test_rmse[0] / 10, (seed, test_rmse)


@pytest.mark.slow
def test_final_test_rmse_across_seeds(runs):
    """What a user should expect, measured on this code (model seeds 0-4): test RMSE at G = 20 of
    7.2e-5, 2.0e-4, 7.5e-5, 1.9e-4 and 9.7e-5, so below 3e-4 for every seed and below 1e-4
    for about half of them. The reference implementation (pykan 0.2.8) reaches 3.1e-5 for its
    seed 0 with 200 steps per grid. The goal of < 1e-4 for every seed is not reached yet; these
    bounds record the rate, with room for rounding-level changes, not a lucky seed."""
    final = np.array([rows[-1]["test_rmse"] for _, rows in runs.values()])
    assert np.all(final < 3e-4), final
    assert np.sum(final < 1e-4) >= 2, final
    assert np.median(final) < 1.5e-4, final
