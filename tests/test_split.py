"""kanarray.pipelines.split: laws that are neither a sum nor a product of one-variable functions,
found by splitting them into laws that are, and only ever returned after the held-out check.

The end-to-end law is tried for 3 seeds (data and discover); the rate the test expects is the
one measured on this code, stated in the test."""
import warnings

import numpy as np
import pytest

import kanarray
from kanarray.pipelines import split as split_module
from kanarray.pipelines.discover import discover
from kanarray.pipelines.split import split_route

pytest.importorskip("sympy")
import sympy  # noqa: E402

LIB = ["x", "x^2", "1/x", "sin"]


def run(f, n_var, ranges, seed, split=2, **kwargs):
    data = kanarray.create_dataset(f, n_var=n_var, ranges=ranges, train_num=1000,
                                   test_num=1000, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover(data, [n_var, 2 * n_var + 1, 1], lib=LIB, seed=seed, split=split, **kwargs), data


def matches(formula, f, n_var, ranges, seed):
    """The formula equals the law on 2000 fresh points to a relative 1e-6."""
    x = np.random.default_rng([seed, 9]).uniform(*ranges, size=(2000, n_var))
    symbols = [sympy.Symbol(f"x_{i + 1}") for i in range(n_var)]
    values = sympy.lambdify(symbols, formula, modules="numpy")(*x.T)
    truth = f(x)
    return float(np.sqrt(np.mean((values - truth) ** 2) / np.mean(truth ** 2))) < 1e-6


def ratio_of_a_difference(x):
    return (x[:, 0] - x[:, 1]) / x[:, 2]


@pytest.mark.slow
def test_a_difference_over_an_input_comes_out_as_the_plain_ratio_for_2_of_3_seeds():
    """(x_1 - x_2) / x_3 on [1, 3]: changes sign, so no product route; the sum route finds no
    pruned network. Two pair steps (x_1 - x_2, then its ratio by x_3) leave one input, and the
    formula put together reads (x_1 - x_2)/x_3, guards dropped. Measured on this code (2-core
    VM, one thread, shared): seeds 0 and 1 exact in 53 s and 25 s; seed 2 gives no formula in
    29 s (its one-input part, y = v, came out of the sum route as a ratio of a square that fails
    the held-out check, and the put-together formula fails it too). Never a wrong formula."""
    found = 0
    for seed in range(3):
        result, _ = run(ratio_of_a_difference, 3, (1, 3), seed)
        if result["stopped"] is None:
            assert result["route"] == "split", (seed, result["route"])
            assert result["check"]["passed"]
            assert matches(result["formula"], ratio_of_a_difference, 3, (1, 3), seed), seed
            x1, x2, x3 = sympy.symbols("x_1 x_2 x_3")
            plain = (x1 - x2) / x3  # up to how sympy orders its signs: -(-x_1 + x_2)/x_3
            assert sympy.expand(result["formula"] - plain) == 0, (seed, result["formula"])
            assert sympy.count_ops(result["formula"]) <= sympy.count_ops(plain) + 1
            found += 1
    assert found >= 2


def test_split_plan_reads_a_product_with_an_offset():
    """b0 + c sin(d), the part a sum split leaves of b + c sin(d): the identity of a product
    holds for f - C only, and C comes out as b0."""
    data = kanarray.create_dataset(lambda x: 2.0 + x[:, 0] * np.sin(x[:, 1]), n_var=2,
                                   ranges=(1, 3), train_num=1000, test_num=1000, seed=0)
    model = split_module.surrogate(data, seed=0)
    plan = split_module.split_plan(model, data["train_input"], data["test_input"])
    assert plan[0] == "product" and plan[1][0] == [[0], [1]]
    assert abs(plan[1][1] - 2.0) < 0.05, plan


def test_put_together_a_sum_and_a_product_with_its_offset():
    """_combine: g_1 + g_2 - f0 for a sum; C + g_1 g_2 / (f0 - C) for a product."""
    x1, x2 = sympy.symbols("x_1 x_2")
    names = ["x_1", "x_2"]
    parts = [{"f0": 3.0, "offset": 0.0}]
    total = split_module._combine(sympy, "sum", [x1 + 2, x2 + 1], parts, names)
    assert sympy.simplify(total - (x1 + x2)) == 0
    parts = [{"f0": 4.0, "offset": 1.0}]
    product = split_module._combine(sympy, "product", [2 * x1, 2 * x2], parts, names)
    assert sympy.simplify(product - (1 + x1 * x2)) == 0
    pair = split_module._rename(sympy, sympy.Symbol("x_2", positive=True) * sympy.Symbol("x_1"),
                                [2, (0, 1, "x_i - x_j")])
    assert sympy.simplify(pair - sympy.Symbol("x_3") * (x1 - x2)) == 0


def test_a_formula_that_fails_the_check_is_never_returned():
    """x_1 + x_2 x_3 splits into two parts; with every put-together formula failing its check
    (finish says so) the route returns no formula and says why; with them passing it returns
    the shortest."""
    data = kanarray.create_dataset(lambda x: x[:, 0] + x[:, 1] * x[:, 2], n_var=3,
                                   ranges=(1, 2), train_num=500, test_num=500, seed=0)
    asked = []

    def solve(sub, depth):
        asked.append((np.shape(sub["train_input"])[1], depth))
        return [sympy.Symbol("x_1") * (sympy.Symbol("x_2") if asked[-1][0] == 2 else 1)]

    def finish(passes):
        def run_finish(formula, network, snap):
            check = {"passed": passes, "reason": "refused", "rmse": 0.0}
            return (formula, check, [(formula, check)]) if snap else (formula, check)
        return run_finish

    refused = split_route(data, solve, finish(False), depth=2)
    assert asked == [(1, 1), (2, 1)]  # the parts [x_1] and [x_2, x_3], one level shallower
    assert refused["formula"] is None and refused["stopped"].startswith("the formula fails")
    assert refused["candidates"] and not any(c["passed"] for _, c in refused["candidates"])
    passed = split_route(data, solve, finish(True), depth=2)
    assert passed["stopped"] is None and passed["check"]["passed"]
    x1, x2, x3 = sympy.symbols("x_1 x_2 x_3")
    assert sympy.simplify(passed["formula"] - (x1 + x2 * x3)).is_number  # g1 + g2 - f0


def test_guards_that_take_one_branch_on_the_rows_are_dropped():
    """Parts put together carry their library functions' guards: 1/(1/v) as sign(v)/Max(1e-4,
    |sign(v)|/Max(1e-4, |v|)), v = (x_1 - x_2)/x_3 crossing 0, and 12/5 - Max(1e-4, |12/5 - v|),
    read v on rows where no guard switches (or where the signs cancel); x_1 x_2 + 1 -
    Max(0, 1 - x_3) reads x_1 x_2 + x_3 on [-1, 1]. A guard that switches stays."""
    from kanarray.symbolic.snap import drop_guards
    x1, x2, x3 = sympy.symbols("x_1 x_2 x_3")
    names = ["x_1", "x_2", "x_3"]
    rows = np.random.default_rng(0).uniform(1, 3, size=(1000, 3))
    v = (x1 - x2) / x3
    eps = sympy.Float(1e-4)
    nested = sympy.sign(v) / sympy.Max(eps, sympy.Abs(sympy.sign(v)) / sympy.Max(eps, sympy.Abs(v)))
    assert drop_guards(nested, names, rows) == v
    assert drop_guards(sympy.Rational(12, 5) - sympy.Max(eps, sympy.Abs(sympy.Rational(12, 5) - v)),
                       names, rows) == v
    around_0 = np.random.default_rng(1).uniform(-1, 1, size=(1000, 3))
    assert drop_guards(x1 * x2 + 1 - sympy.Max(0, 1 - x3), names, around_0) == x1 * x2 + x3
    assert drop_guards(sympy.Abs(x1), names, around_0) == sympy.Abs(x1)


def test_the_split_route_gives_up_when_its_time_is_spent():
    """A deadline already past: the route gives up before the first part is solved, and says why;
    discover's split_time is checked."""
    data = kanarray.create_dataset(lambda x: x[:, 0] + x[:, 1] * x[:, 2], n_var=3,
                                   ranges=(1, 2), train_num=500, test_num=500, seed=0)
    asked = []
    out = split_route(data, lambda sub, depth: asked.append(depth) or [sympy.Symbol("x_1")],
                      lambda f, n, snap: None, depth=2, deadline=0.0)
    assert asked == [] and out["formula"] is None
    assert out["stopped"].startswith(split_module.OUT_OF_TIME), out["stopped"]
    with pytest.raises(ValueError, match="split_time"):
        discover(data, [3, 7, 1], split_time=-1.0)


def test_arguments_are_checked():
    data = kanarray.create_dataset(lambda x: x[:, 0], n_var=2, train_num=20, test_num=20)
    with pytest.raises(ValueError, match="split"):
        discover(data, [2, 1, 1], split=-1)
    with pytest.raises(ValueError, match="depth"):
        split_route(data, lambda d, k: [], lambda f, n: None, depth=0)
    with pytest.raises(TypeError, match="solve"):
        split_route(data, None, lambda f, n: None)
