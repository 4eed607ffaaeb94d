"""End-to-end accuracy on the KAN paper's toy, f(x, y) = exp(sin(pi x) + y^2)."""
import warnings

import numpy as np

import kanarray
from kanarray.schedule import grid_extension


def toy(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def test_grid_extension_reaches_test_rmse_below_1e_4():
    """[2, 5, 1] in float64, 1000 train / 1000 test points, grids 3 -> 5 -> 10 -> 20.

    The reference implementation (pykan 0.2.8) reaches 3.1e-5 at G = 20 with 200 L-BFGS steps
    per grid; 100 steps per grid keep this test short.
    """
    data = kanarray.create_dataset(toy, n_var=2, train_num=1000, test_num=1000, seed=0)
    model = kanarray.KAN([2, 5, 1], grid=3, k=3, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, rows = grid_extension(model, data, [3, 5, 10, 20], steps=100)
    test_rmse = [row["test_rmse"] for row in rows]
    assert all(row["stopped"] is None for row in rows)
    assert test_rmse[-1] < 1e-4, test_rmse
    assert test_rmse[-1] < test_rmse[0] / 10  # extension keeps improving the fit
    assert model.grid == 20
