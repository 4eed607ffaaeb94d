"""kanarray.pipelines.discover: from data to a checked formula, for any seed."""
import numpy as np
import pytest

import kanarray
from kanarray.pipelines import discover as discover_module
from kanarray.pipelines.discover import discover
from kanarray.symbolic.formula import formula_function

sp = pytest.importorskip("sympy")

LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]


def sin_plus_square(x):
    return np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2


@pytest.mark.slow
def test_sin_plus_square_is_recovered_through_a_pruned_2_5_1_for_4_of_5_seeds():
    """Measured on this code: seeds 0, 1, 2 and 4 recover sin(pi x_1) + x_2^2 (seeds 0, 1 and 4
    on their second initialisation); seed 3 keeps an edge that fits no library function on all
    four initialisations and says so. Each recovered formula matches its network to ~1e-13 and
    the truth to ~1e-14; the bars are 1e-8 and 1e-6."""
    recovered = []
    for seed in range(5):
        data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=1000,
                                       test_num=1000, seed=seed)
        result = discover(data, [2, 5, 1], lib=LIB, seed=seed)
        if result["stopped"] is not None:
            assert result["formula"] is None and "attempts" in result["stopped"]
            continue
        assert result["model"].width == [2, 1, 1], seed  # pruned to the one node it needs
        assert result["report"]["max_gap"] < 1e-8, seed
        truth = sin_plus_square(data["test_input"])
        values = formula_function(result["formula"], ["x_1", "x_2"])(data["test_input"])
        assert np.max(np.abs(values - truth)) < 1e-6, (seed, result["formula"])
        recovered.append(seed)
    assert len(recovered) >= 4, recovered


@pytest.mark.slow
def test_x_times_y_is_recovered_from_training_through_2_2_1_for_4_of_5_seeds():
    """Measured on this code: 5 of 5 seeds give x_1 x_2 as a difference of two squares of
    linear forms, matching the truth to ~1e-13. lamb is 0.001 here: x_1 x_2 spreads a quarter
    as much as the demo's target, and with the default 0.01 the first initialisation collapses
    (the retry weakens lamb; 3 of 5 seeds then get through)."""
    def product(x):
        return x[:, 0] * x[:, 1]

    recovered = []
    for seed in range(5):
        data = kanarray.create_dataset(product, n_var=2, train_num=1000, test_num=1000, seed=seed)
        result = discover(data, [2, 2, 1], lib=LIB, seed=seed, lamb=0.001)
        if result["stopped"] is not None:
            continue
        assert result["report"]["max_gap"] < 1e-8, seed
        values = formula_function(result["formula"], ["x_1", "x_2"])(data["test_input"])
        if np.max(np.abs(values - product(data["test_input"]))) < 1e-6:
            recovered.append(seed)
    assert len(recovered) >= 4, recovered


def recorded_seeds(monkeypatch):
    """The seeds of the KANs discover builds, in order."""
    seeds = []

    def kan(*args, seed, **kwargs):
        seeds.append(seed)
        return kanarray.KAN(*args, seed=seed, **kwargs)
    monkeypatch.setattr(discover_module, "KAN", kan)
    return seeds


def test_a_collapse_retries_the_same_start_with_a_weaker_regulariser(monkeypatch):
    monkeypatch.setattr(discover_module, "COLLAPSE_R2", 1.5)  # every fit "collapses"
    seeds = recorded_seeds(monkeypatch)
    data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=100, test_num=20, seed=0)
    said = []
    result = discover(data, [2, 2, 1], seed=7, inits=3, lamb=0.01, steps=2, say=said.append)
    assert result["formula"] is None and result["stopped"].startswith(discover_module.COLLAPSED)
    assert ["lamb = 0.01)" in said[0], "lamb = 0.001)" in said[1], "lamb = 0.0001)" in said[2]] \
        == [True, True, True], said
    assert seeds == [7, 7, 7]


def test_other_failures_move_on_to_new_starts(monkeypatch):
    seeds = recorded_seeds(monkeypatch)
    data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=200, test_num=50, seed=0)
    result = discover(data, [2, 3, 1], lib=["x"], seed=7, inits=3)  # x alone fits no sine
    assert result["stopped"] and not result["stopped"].startswith(discover_module.COLLAPSED)
    assert seeds[0] == 7 and len(set(seeds)) == 3, seeds


@pytest.mark.parametrize("kwargs, error, words", [
    ({"width": [2, 5]}, ValueError, "width"),
    ({"width": [2, [5, 1], 1]}, ValueError, "width"),
    ({"inits": 0}, ValueError, "inits"),
    ({"seed": -1}, ValueError, "seed"),
    ({"prune_tolerance": -1.0}, ValueError, "prune_tolerance"),
    ({"refine_grid": 0}, ValueError, "refine_grid"),
    ({"lamb": -0.1}, ValueError, "lamb"),
    ({"lamb_entropy": float("nan")}, ValueError, "lamb_entropy"),
])
def test_bad_arguments_are_named(kwargs, error, words):
    data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=20, test_num=5, seed=0)
    with pytest.raises(error, match=words):
        discover(data, **{"width": [2, 3, 1], **kwargs})


def test_a_pipeline_that_cannot_finish_tries_every_initialisation_and_says_why():
    data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=200, test_num=50, seed=0)
    said = []
    result = discover(data, [2, 3, 1], lib=["x"], seed=0, inits=2, say=said.append)
    assert result["formula"] is None and result["report"] is None and result["init"] is None
    assert "stay splines" in result["stopped"] and "the last of 2 attempts" in result["stopped"]
    assert sum(line.startswith("  init ") for line in said) == 2
