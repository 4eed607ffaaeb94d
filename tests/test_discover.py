"""kanarray.pipelines.discover: from data to a checked formula, for any seed."""
import numpy as np
import pytest

import kanarray
from kanarray.pipelines import check as check_module
from kanarray.pipelines import discover as discover_module
from kanarray.pipelines.discover import discover
from kanarray.symbolic.formula import formula_function

sp = pytest.importorskip("sympy")

LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]


def sin_plus_square(x):
    return np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2


def product(x):
    return x[:, 0] * x[:, 1]


def ratio(x):
    return x[:, 0] / x[:, 1]


@pytest.mark.slow
def test_sin_plus_square_is_recovered_through_a_pruned_2_5_1_for_4_of_5_seeds():
    """Measured on this code: seeds 0, 1, 2 and 4 recover sin(pi x_1) + x_2^2 (seeds 0, 1 and 4
    on their second initialisation); seed 3 stops on all four (no pruned network fits, or an
    edge fits no library function) and says so. Each recovered formula matches its network to ~1e-13 and
    the truth to ~1e-14 (the bars are 1e-8 and 1e-6), and reads x_2**2 + sin(pi*x_1)."""
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
        assert str(result["formula"]) == "x_2**2 + sin(pi*x_1)", seed  # pi snapped
        recovered.append(seed)
    assert len(recovered) >= 4, recovered


@pytest.mark.slow
def test_x_times_y_reads_x_1_times_x_2_through_2_2_1_for_3_of_3_seeds():
    """x_1 x_2 on [-1, 1]^2 changes sign, so only the sum route runs: [2, 2, 1] writes it as a
    difference of two squares of linear forms, which expanded and snapped reads x_1*x_2.
    Measured on this code: seeds 0-2 all print x_1*x_2. The default lamb = 0.01 collapses the
    first fit of each (labels with a small spread); with lamb ten times weaker seed 2 gets
    through at once, seeds 1 and 0 after one and two new starts."""
    printed = []
    for seed in range(3):
        data = kanarray.create_dataset(product, n_var=2, train_num=1000, test_num=1000, seed=seed)
        result = discover(data, [2, 2, 1], lib=LIB, seed=seed)
        printed.append(str(result["formula"]))
    assert printed == ["x_1*x_2"] * 3, printed


@pytest.mark.slow
@pytest.mark.parametrize("f, printed", [(product, "x_1*x_2"), (ratio, "x_1/x_2")])
def test_products_and_ratios_of_positive_inputs_read_as_written_for_3_of_3_seeds(f, printed):
    """On [1, 5]^2 the labels keep one sign: the product route fits log y = log x_1 +- log x_2
    through [2, 1] and reads it back (the sum route, through exp(log|x_1| + log|x_2|) and its
    guards read on the rows, may read it as well: same operations, and the sum route wins a
    tie). Measured on this code: 3 of 3 seeds each, the formula exact to round-off on the
    held-out rows."""
    for seed in range(3):
        data = kanarray.create_dataset(f, n_var=2, ranges=(1, 5), train_num=1000, test_num=1000,
                                       seed=seed)
        result = discover(data, [2, 5, 1], lib=LIB, seed=seed)
        assert str(result["formula"]) == printed, (seed, result)
        assert any(o["route"] == "product" and str(o["formula"]) == printed
                   for o in result["routes"]), (seed, result["routes"])
        assert result["check"]["rmse"] <= result["check"]["exact_limit"]


@pytest.mark.slow
def test_one_percent_label_noise_still_gives_the_ratio_for_3_of_3_seeds():
    """Labels with Gaussian noise of 1% of their RMS: the pruning tolerance follows the noise
    (about the noise, not 1% of the labels' spread), the check passes the formula whose
    residuals are the noise, and the snapped formula is the truth. Measured on this code:
    3 of 3 seeds give x_1/x_2 through the product route."""
    for seed in range(3):
        data = kanarray.create_dataset(ratio, n_var=2, ranges=(1, 5), train_num=1000,
                                       test_num=1000, seed=seed)
        rng = np.random.default_rng([seed, 1])
        sigma = 0.01 * np.sqrt(np.mean(data["train_label"] ** 2))
        for part in ("train_label", "test_label"):
            data[part] = data[part] + rng.normal(0, sigma, data[part].shape)
        result = discover(data, [2, 5, 1], lib=LIB, seed=seed)
        assert result["stopped"] is None, (seed, result["stopped"])
        assert str(result["formula"]) == "x_1/x_2", (seed, result["formula"])
        assert result["noise"]["sigma"] > 0.5 * sigma  # the estimate sees the noise


FEYNMAN_LIB = ["x", "x^2", "x^3", "1/x", "1/x^2", "sqrt", "1/sqrt(x)", "exp", "log", "tanh",
               "sin", "abs"]  # bench/feynman_recovery.py's


@pytest.mark.slow
def test_one_percent_label_noise_snaps_an_exponent_within_the_noise_for_3_of_3_seeds():
    """k x^2 / 2 (Feynman I.14.4, row 15 of the bench: seeds 15-17 as the bench draws its
    data) with 1% label noise: the fitted exponent of x_1 is about 1.0004; snapping it to 1
    raises the held-out RMSE by more than SNAP_SLACK but less than the RMSE's sampling spread,
    so the snap is kept. Measured on this code: 3 of 3 seeds read x_1*x_2**2/2 (seed 15 read
    0.4996*x_1**(22/(7*pi))*x_2**2 when only SNAP_SLACK was allowed)."""
    for seed in (15, 16, 17):
        data = kanarray.create_dataset(lambda x: x[:, 0] * x[:, 1] ** 2 / 2, n_var=2,
                                       ranges=(1, 5), train_num=1000, test_num=1000, seed=seed)
        rng = np.random.default_rng([seed, 1])
        sigma = 0.01 * np.sqrt(np.mean(data["train_label"] ** 2))
        for part in ("train_label", "test_label"):
            data[part] = data[part] + rng.normal(0, sigma, data[part].shape)
        result = discover(data, [2, 5, 1], lib=FEYNMAN_LIB, seed=seed)
        assert str(result["formula"]) == "x_1*x_2**2/2", (seed, result["formula"])


def gaussian():
    """Feynman I.6.2a, exp(-theta^2/2)/sqrt(2 pi) on [1, 3], as bench/feynman_recovery.py
    draws it."""
    return kanarray.create_dataset(lambda x: np.exp(-x[:, 0] ** 2 / 2) / np.sqrt(2 * np.pi),
                                   n_var=1, ranges=(1, 3), train_num=1000, test_num=1000, seed=0)


def test_a_smooth_look_alike_is_refused_with_its_numbers_and_the_product_route_finds_the_law():
    """Through [1, 3, 1] the sum route fixes the pruned network's two edges to functions that
    each fit their spline with R^2 > 0.99, and the formula fits the held-out labels to a
    relative 5e-5, but what it misses varies smoothly with theta. Without the held-out check
    discover returned such formulas as found (on these data 0.219 - 0.224*tanh(1.048*x_1 -
    1.147), 3e-3 off in relative RMSE); now that route stops and says why. log f = -theta^2/2
    - log sqrt(2 pi)
    is one edge of log theta, an exponential, which the product route fits and reads back
    exactly."""
    result = discover(gaussian(), [1, 3, 1], lib=FEYNMAN_LIB, seed=0)
    routes = {r["route"]: r for r in result["routes"]}
    refused, check = routes["sum"]["stopped"], routes["sum"]["check"]
    assert refused.startswith(discover_module.FAILED_CHECK) and routes["sum"]["formula"] is None
    assert not check["passed"] and check["whiteness"] < check["whiteness_min"]
    assert f"{check['rmse']:.3e}" in refused and "whiteness" in refused
    assert result["route"] == "product", result["stopped"]
    assert str(result["formula"]) == "sqrt(2)*exp(-x_1**2/2)/(2*sqrt(pi))"
    assert result["check"]["rmse"] <= result["check"]["exact_limit"]


@pytest.mark.slow
def test_a_product_whose_labels_change_sign_comes_out_through_the_factors_route_for_3_of_3_seeds():
    """x_1 sin(x_2) on [1, 3] x [0, 5]: the labels change sign (no log|y|) and one hidden layer
    of sums writes a product only the long way; one multiplication node of one factor per input
    writes it as it is. Measured on this code: 3 of 3 seeds print x_1*sin(x_2), exact to
    round-off on the held-out rows."""
    for seed in range(3):
        data = kanarray.create_dataset(lambda x: x[:, 0] * np.sin(x[:, 1]), n_var=2,
                                       ranges=[(1, 3), (0, 5)], train_num=1000, test_num=1000,
                                       seed=seed)
        result = discover(data, [2, 5, 1], lib=FEYNMAN_LIB, seed=seed)
        assert result["route"] == "factors" and str(result["formula"]) == "x_1*sin(x_2)", \
            (seed, result["stopped"], result["formula"])
        assert result["check"]["rmse"] <= result["check"]["exact_limit"]


def test_the_factors_route_masks_every_edge_but_one_per_factor_and_stops_when_nothing_fits(
        monkeypatch):
    """sin(pi (x_1 + x_2)) is no product of one-variable functions: the factors route's fit
    misses the tolerance from every start, and the route says so."""
    started = []
    start = discover_module._start

    def recorded(width, settings, seed, data):
        model = start(width, settings, seed, data)
        started.append((width, np.array(model.backend.to_numpy(model.layers[0].mask))))
        return model
    monkeypatch.setattr(discover_module, "_start", recorded)
    monkeypatch.setattr(discover_module, "_symbolic_model", _stop_unless_factors(
        discover_module._symbolic_model))
    data = kanarray.create_dataset(lambda x: np.sin(np.pi * (x[:, 0] + x[:, 1])), n_var=2,
                                   train_num=200, test_num=50, seed=0)
    result = discover(data, [2, 3, 1], lib=["x"], seed=0, steps=5, inits=2)
    routes = {r["route"]: r for r in result["routes"]}
    assert set(routes) == {"sum", "factors"}  # labels change sign: no product route
    assert routes["factors"]["stopped"].startswith(discover_module.NOT_A_PRODUCT)
    assert "the last of 2 attempts" in routes["factors"]["stopped"]
    masks = [mask for width, mask in started if width == [2, [0, 1], 1]]
    assert len(masks) == 2 and all(np.array_equal(m, np.eye(2)) for m in masks)  # 2 starts
    assert routes["factors"]["noise"] is routes["sum"]["noise"]


def _stop_unless_factors(symbolic_model):
    """_symbolic_model that stops the sum route at once, so that the factors route runs."""
    def wrapped(data, settings, width, *args):
        if len(width) == 3 and not isinstance(width[1], list):
            return None, "stopped for the test", {}, None
        return symbolic_model(data, settings, width, *args)
    return wrapped


def test_when_no_route_passes_discover_stops_with_each_routes_reason(monkeypatch):
    """The held-out check made impossible to pass: no formula, and the reason names both
    routes and the check's numbers."""
    monkeypatch.setattr(check_module, "EXACT_SHARE", -1.0)  # not even an RMSE of 0 passes
    monkeypatch.setattr(check_module, "CHECK_FACTOR", -1.0)
    data = kanarray.create_dataset(product, n_var=2, ranges=(1, 2), train_num=200,
                                   test_num=100, seed=0)
    result = discover(data, [2, 2, 1], lib=["x", "x^2"], seed=0, inits=1, steps=5)
    assert result["formula"] is None and result["report"] is None
    assert result["stopped"].startswith("sum route: ") and "; product route: " in result["stopped"]
    product_route = result["routes"][1]
    assert product_route["stopped"].startswith(discover_module.FAILED_CHECK)
    assert f"{product_route['check']['rmse']:.3e}" in result["stopped"]


def test_a_true_formula_passes_its_check_and_reads_with_simple_numbers():
    def f(x):
        return x[:, 0] ** 2 + 0.5 * x[:, 1]

    data = kanarray.create_dataset(f, n_var=2, train_num=500, test_num=500, seed=0)
    result = discover(data, [2, 3, 1], lib=["x", "x^2"], seed=0)
    assert result["route"] == "sum" and result["check"]["passed"]
    assert str(result["formula"]) == "x_1**2 + x_2/2"
    assert result["report"]["max_gap"] < 1e-8  # before its snap: what the network computes
    front = result["front"]  # the unsnapped formula has more operations and a larger error
    assert [c["pick"] for c in front] == [True] and str(front[0]["formula"]) == "x_1**2 + x_2/2"
    assert front[0]["passed"] and front[0]["rmse"] == result["check"]["rmse"]


def test_the_pareto_front_keeps_what_no_other_formula_beats_and_always_the_pick():
    def c(formula, operations, rmse, passed=True):
        return {"route": "sum", "formula": formula, "operations": operations, "rmse": rmse,
                "passed": passed}
    candidates = [c("a", 2, 1e-1, False), c("b", 4, 1e-3), c("b2", 4, 1e-2), c("d", 6, 1e-3),
                  c("e", 7, 1e-9), c("a", 2, 1e-1, False), c("f", 9, 1e-9)]
    front = discover_module.pareto_front(candidates, pick="d")
    assert [x["formula"] for x in front] == ["a", "b", "d", "e"]
    assert [x["pick"] for x in front] == [False, False, True, False]
    assert discover_module.pareto_front([]) == []


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
    result = discover(data, [2, 2, 1], seed=7, inits=3, lamb=0.01, steps=2, split=0,
                      products=False, say=said.append)  # one route's retries: the sum route
    assert result["formula"] is None and result["stopped"].startswith(discover_module.COLLAPSED)
    said = [line for line in said if line.startswith("  init ")]
    assert ["lamb = 0.01)" in said[0], "lamb = 0.001)" in said[1], "lamb = 0.0001)" in said[2]] \
        == [True, True, True], said
    assert seeds == [7, 7, 7, 7]  # stage 0's fit for the noise, then the same start three times


def test_other_failures_move_on_to_new_starts(monkeypatch):
    seeds = recorded_seeds(monkeypatch)
    data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=200, test_num=50, seed=0)
    result = discover(data, [2, 3, 1], lib=["x"], seed=7, inits=3, split=0)  # x fits no sine
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
    ({"products": 1}, TypeError, "products"),
])
def test_bad_arguments_are_named(kwargs, error, words):
    data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=20, test_num=5, seed=0)
    with pytest.raises(error, match=words):
        discover(data, **{"width": [2, 3, 1], **kwargs})


def test_a_pipeline_that_cannot_finish_tries_every_initialisation_and_says_why():
    data = kanarray.create_dataset(sin_plus_square, n_var=2, train_num=200, test_num=50, seed=0)
    said = []
    result = discover(data, [2, 3, 1], lib=["x"], seed=0, inits=2, products=False,
                      say=said.append)  # the sum route alone
    assert result["formula"] is None and result["report"] is None and result["init"] is None
    assert "stay splines" in result["stopped"] and "the last of 2 attempts" in result["stopped"]
    assert sum(line.startswith("  init ") for line in said) == 2
