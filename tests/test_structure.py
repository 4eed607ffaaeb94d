"""The structure of a function read from a trained surrogate's input derivatives
(kanarray.analysis.structure): which inputs matter, additive and multiplicative groups, and
the pairs that enter only as a sum, difference, product or ratio. Each law is tried for 3
surrogates (data and model seeds 0-2); all 3 are expected to read right."""
import warnings

import numpy as np
import pytest

import kanarray
from kanarray.analysis.structure import input_jacobian, structure
from finite_differences import central_differences


def surrogate(f, n_var, ranges, seed):
    """A [d, 2d+1, 1] KAN fitted to f (grid 5, then 20) -> (model, held-out inputs)."""
    data = kanarray.create_dataset(f, n_var=n_var, ranges=list(ranges), train_num=1000,
                                   test_num=1000, seed=seed)
    model = kanarray.KAN([n_var, 2 * n_var + 1, 1], grid=5, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, opt="LBFGS", steps=50, log=0)
        model = model.refine(20, x=data["train_input"])
        model.fit(data, opt="LBFGS", steps=50, log=0, update_grid=False)
    return model, data["test_input"]


def kinds(found, pair):
    return {s["kind"] for s in found["symmetries"] if s["inputs"] == pair}


@pytest.mark.parametrize("seed", range(3))
def test_a_sum_with_a_product_and_an_unused_input(seed):
    model, x = surrogate(lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] * x[:, 2], 4, (-1, 1), seed)
    found = structure(model, x)
    assert found["irrelevant"] == [3]
    assert found["additive"] == [[0], [1, 2]]
    assert found["multiplicative"] is None  # f changes sign
    assert kinds(found, (1, 2)) == {"x_i * x_j"}


@pytest.mark.parametrize("seed", range(3))
def test_a_product_of_three_factors(seed):
    model, x = surrogate(lambda x: np.exp(x[:, 0]) * (x[:, 1] ** 2 + 1) * np.cos(x[:, 2]), 3,
                         (-1, 1), seed)
    found = structure(model, x)
    assert found["irrelevant"] == [] and found["additive"] == [[0, 1, 2]]
    assert found["multiplicative"] == [[0], [1], [2]]


@pytest.mark.parametrize("seed", range(3))
def test_a_function_of_a_difference(seed):
    model, x = surrogate(lambda x: np.exp(-(x[:, 0] - x[:, 1]) ** 2), 2, (-1, 1), seed)
    found = structure(model, x)
    assert found["additive"] == [[0, 1]] and kinds(found, (0, 1)) == {"x_i - x_j"}


@pytest.mark.parametrize("seed", range(3))
def test_a_function_of_a_ratio(seed):
    model, x = surrogate(lambda x: np.exp(x[:, 0] / x[:, 1]), 2, (0.5, 2), seed)
    found = structure(model, x)
    assert found["multiplicative"] == [[0, 1]] and kinds(found, (0, 1)) == {"x_i / x_j"}


def test_the_input_jacobian_is_the_derivative_of_every_output():
    """Multiplication nodes and both scalings included, against central differences."""
    model = kanarray.KAN([3, [3, 1], 2], grid=5, seed=0, input_scaling=([1.0, 0, -2], [2.0, 1, 3]),
                         output_scaling=([0.5, -1], [3.0, 0.25]))
    model.params = np.random.default_rng(1).normal(0, 0.3, model.params.shape)
    x = np.random.default_rng(2).uniform(-0.9, 0.9, (7, 3)) * [2, 1, 3] + [1, 0, -2]
    jac = input_jacobian(model, x)
    assert jac.shape == (7, 2, 3)
    for b in range(7):
        for o in range(2):
            want = central_differences(lambda p: model(p[None, :])[0, o], x[b].copy())
            np.testing.assert_allclose(jac[b, o], want, rtol=1e-6, atol=1e-8)


def test_bad_arguments_are_named():
    model = kanarray.KAN([2, 3, 1], grid=5, seed=0)
    x = np.zeros((10, 2))
    for kwargs, words in (({"output": 1}, "output"), ({"tol": -1}, "tol"),
                          ({"irrelevant": "a"}, "irrelevant")):
        with pytest.raises((ValueError, TypeError), match=words):
            structure(model, x, **kwargs)
    with pytest.raises(ValueError, match="2 rows"):
        structure(model, x[:1])
