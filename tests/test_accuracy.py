"""End-to-end accuracy on the KAN paper's toy, f(x, y) = exp(sin(pi x) + y^2)."""
import warnings

import numpy as np
import pytest

import kanarray
from kanarray.schedule import grid_extension

SEEDS = range(5)


def toy(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def schedule(data_seed, model_seed, **fit_kwargs):
    """[2, 5, 1] in float64, 1000 train / 1000 test points, grids 3 -> 5 -> 10 -> 20 with 100
    L-BFGS steps each -> (model, rows) of kanarray.schedule.grid_extension."""
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
def test_grid_margin_holds_other_data_seeds_below_1_5e_4():
    """Data seed s with model seed s, s = 1..4, with fit's grid_margin=0.5 (the grid updates'
    range widened by half a mean cell each side): test RMSE at G = 20 of 1.1e-4, 5.0e-5, 7.4e-5
    and 8.4e-5; with the default 0, 2.0e-4, 3.0e-4, 1.3e-4 and 9.5e-4 (test points past the
    training points' range, in the splines' extension cells). Over all 25 pairs of data and
    model seeds 0-4 the margin takes the median from 2.0e-4 to 9.1e-5 and the count below 1e-4
    from 4 to 16 (worst 1.5e-3; `python bench/toy_seeds.py`). It is not the default: it cost
    fine grids their rate (bench/train_toy.py) and kanarray.discover two of its five recoveries
    when measured with the previous kernels' rounding."""
    final = np.array([schedule(seed, seed, grid_margin=0.5)[1][-1]["test_rmse"]
                      for seed in range(1, 5)])
    assert np.all(final < 1.5e-4), final
    assert np.median(final) < 1.2e-4, final


@pytest.mark.slow
def test_grid_margin_and_a_longer_lbfgs_history_bring_every_model_seed_below_1e_4():
    """Data seed 0, model seeds 0-4, with fit's grid_margin=0.5 and lbfgs_history=100 (instead of
    pykan's 10: on this ill-conditioned fit the short history underfits, the train RMSE still
    falling at each stage's end): test RMSE at G = 20 of 5.9e-5, 4.7e-5, 6.5e-5, 5.0e-5 and
    6.1e-5. Over all 25 pairs of data and model seeds 0-4: 22 below 1e-4, median 5.9e-5, worst
    2.2e-4 (`python bench/toy_seeds.py`; the default settings: 4 of 25, median 2.0e-4)."""
    final = np.array([schedule(0, seed, grid_margin=0.5, lbfgs_history=100)[1][-1]["test_rmse"]
                      for seed in SEEDS])
    assert np.all(final < 1e-4), final
