"""kanarray.pipelines.products: the log|y| problem beside a dataset, and its formulas read back."""
import numpy as np
import pytest

import kanarray
from kanarray.pipelines.products import log_dataset

sp = pytest.importorskip("sympy")


def data(f, ranges, seed=0):
    return kanarray.create_dataset(f, n_var=2, ranges=ranges, train_num=50, test_num=20,
                                   seed=seed)


def test_labels_of_one_sign_give_the_log_problem_with_positive_inputs_logged():
    d = data(lambda x: -np.exp(x[:, 0]) * x[:, 1] ** 2, [(-1, 1), (1, 5)])
    logged = log_dataset(d)
    assert logged.sign == -1.0 and logged.logged.tolist() == [False, True]
    np.testing.assert_allclose(logged.data["train_input"][:, 0], d["train_input"][:, 0])
    np.testing.assert_allclose(logged.data["test_input"][:, 1], np.log(d["test_input"][:, 1]))
    np.testing.assert_allclose(logged.data["train_label"], np.log(-d["train_label"]))
    np.testing.assert_allclose(logged.labels(logged.data["test_label"]), d["test_label"])


@pytest.mark.parametrize("f", [lambda x: x[:, 0] * x[:, 1], lambda x: x[:, 0] * 0])
def test_labels_that_change_sign_or_vanish_give_none(f):
    assert log_dataset(data(f, (-1, 1))) is None


def test_a_sum_of_logarithms_reads_back_as_a_product():
    logged = log_dataset(data(lambda x: x[:, 0] / x[:, 1] ** 2, (1, 5)))
    u1, u2 = sp.symbols("x_1 x_2")
    g = sp.Float(2.0) * (sp.Float(0.5) * u1 - u2) + sp.log(sp.Integer(3))
    formula = logged.read_back(g, ["x_1", "x_2"])
    p1, p2 = sp.symbols("x_1 x_2", positive=True)
    assert sp.simplify(formula - 3 * p1 ** sp.Float(1.0) / p2 ** sp.Float(2.0)) == 0


def test_an_input_that_is_not_logged_stays_inside_the_exponential():
    logged = log_dataset(data(lambda x: np.exp(x[:, 0]) * x[:, 1], [(-1, 1), (1, 5)]))
    u1, u2 = sp.symbols("x_1 x_2")
    formula = logged.read_back(u1 + u2, ["x_1", "x_2"])
    assert formula == sp.exp(u1) * sp.Symbol("x_2", positive=True)


def test_read_back_names_every_input():
    logged = log_dataset(data(lambda x: x[:, 0] * x[:, 1], (1, 5)))
    with pytest.raises(ValueError, match="names"):
        logged.read_back(sp.Symbol("x_1"), ["x_1"])
