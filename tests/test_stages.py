"""kanarray.pipelines.stages: the stage runner every pipeline shares."""
import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.pipelines.stages import fix_layer_by_layer, grid_extension, run_stage

pytestmark = pytest.mark.filterwarnings("ignore:layer")


def sine_data(train_num, seed=0, noise=0.0):
    rng = np.random.default_rng(seed + 100)
    data = kanarray.create_dataset(lambda x: np.sin(3 * x[:, 0]) + 0.5 * x[:, 1], n_var=2,
                                   train_num=train_num, test_num=400, seed=seed)
    data["train_label"] = data["train_label"] + noise * rng.normal(size=data["train_label"].shape)
    return data


def test_a_stage_changes_the_model_fits_it_and_records_a_row():
    data = sine_data(100)
    model, row = run_stage("refine 8", KAN([2, 3, 1], grid=4, seed=0), data,
                           lambda m: m.refine(8), steps=2, log=0)
    assert model.grid == 8 and row["grid"] == 8 and row["width"] == [2, 3, 1]
    assert row["stage"] == "refine 8" and row["stopped"] is None and row["seconds"] > 0
    assert row["train_loss"] == row["history"]["train_loss"][-1]
    assert row["test_loss"] == row["history"]["test_loss"][-1]


def test_grid_extension_keeps_the_stage_with_the_best_held_out_error():
    """30 noisy training rows: G = 40 fits them better and the held-out rows worse than G = 4.
    The schedule returns the G = 4 model (keep_best, the default); keep_best=False the last."""
    data = sine_data(30, noise=0.1)
    model, rows = grid_extension(KAN([2, 3, 1], grid=4, seed=0), data, [4, 40], steps=20, log=0)
    assert rows[1]["train_rmse"] < rows[0]["train_rmse"]
    assert rows[1]["test_rmse"] > rows[0]["test_rmse"]  # the fine grid overfits
    assert [row["kept"] for row in rows] == [True, False] and model.grid == 4
    rmse = np.sqrt(np.mean((model(data["test_input"]) - data["test_label"]) ** 2))
    assert rmse == pytest.approx(rows[0]["test_rmse"], rel=1e-12)
    last, rows = grid_extension(KAN([2, 3, 1], grid=4, seed=0), data, [4, 40], steps=20, log=0,
                                keep_best=False)
    assert last.grid == 40 and [row["kept"] for row in rows] == [False, True]


def test_grid_extension_names_its_bad_arguments():
    data = sine_data(30)
    with pytest.raises(ValueError, match="grids must start"):
        grid_extension(KAN([2, 3, 1], grid=4), data, [5, 10], steps=1, log=0)
    with pytest.raises(TypeError, match="keep_best"):
        grid_extension(KAN([2, 3, 1], grid=4), data, [4], steps=1, log=0, keep_best="yes")


def test_edges_are_fixed_layer_by_layer_with_a_refit_between():
    data = kanarray.create_dataset(lambda x: np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2),
                                   n_var=2, train_num=300, test_num=50, seed=0)
    model = KAN([2, 1, 1], grid=10, seed=0)
    model.fit(data, steps=30, log=0)
    refits = []

    def refit(m):
        refits.append([bool((layer.symbolic_fun != "").all()) for layer in m.layers])
        return m

    model, fixed = fix_layer_by_layer(model, data["train_input"], ["x^2", "sin", "exp"], refit)
    assert refits == [[True, False]]  # one refit, after layer 0 was fixed and before layer 1
    assert sorted(fixed) == [(0, 0, 0), (0, 1, 0), (1, 0, 0)]
    assert all(layer.symbolic_fun.all() for layer in model.layers)
