"""The demo: the whole interpretability story on f(x1, x2) = exp(sin(pi x1) + x2^2).

Runs kanarray.pipelines.discover from a [2, 5, 1] KAN: a fit with sparsity regularisation, pruning to the
fewest hidden nodes that still fit the data, a refined grid, every edge replaced by a library
function (auto-symbolic), the formula's constants by Levenberg–Marquardt. Prints the recovered
formula with its report (kanarray.symbolic.report), the RMSE and time of every stage, and saves a plot of
the network. Where no initialisation gets through (the regularised fit collapses to a constant,
an edge fits no library function), the demo says so instead of printing a wrong formula.
"""
import time
import warnings

import numpy as np

from ..io.data import create_dataset
from .discover import discover
from ..symbolic import expr
from ..symbolic.formula import formula_trees, round_formula
from ..core.metrics import rmse
from ..symbolic.report import report_lines
from ..funcs.library import optional_sympy

DEMO_LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]
DEMO_TARGET = "exp(sin(pi*x_1) + x_2**2)"
PRUNE_TOLERANCE = 1e-2  # a pruned network fits if its train RMSE <= this * std of the labels
INITS = 4  # attempts (initialisations, or retries after a collapse) before the demo gives up


def demo_function(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def matches_target(formula, tree=None):
    """Whether a (rounded) formula is exactly the target, with pi as discover snaps it or
    rounded to 4 decimals: by sympy, or without it (no snap then) by the rounded formula's
    expression tree (kanarray.symbolic.expr) computing the same values as the target with pi to
    4 decimals at 10,000 points of [-1, 1]^2 (to 1e-12)."""
    sp = optional_sympy()
    if sp is not None:
        x1, x2 = sp.symbols("x_1 x_2")
        found = sp.sympify(formula)
        return any(sp.simplify(found - sp.exp(sp.sin(pi * x1) + x2 ** 2)) == 0
                   for pi in (sp.pi, sp.Float("3.1416")))
    x = np.random.default_rng(0).uniform(-1, 1, (10_000, 2))
    got = expr.evaluate(expr.rounded(tree, 4), {"x_1": x[:, 0], "x_2": x[:, 1]})
    want = np.exp(np.sin(3.1416 * x[:, 0]) + x[:, 1] ** 2)
    return bool(np.allclose(got, want, rtol=1e-12, atol=0))


def run_demo(seed=0, out="kan_demo.png", plot=True, verbose=True, train_num=1000):
    """Run the demo pipeline; returns a dict with the model, formula, stage table and plot path.

    -> {"model", "stopped": None or why the pipeline stopped early, "formula" (full precision)
        and "formula_rounded" (None when stopped), "exact": whether the rounded formula is the
        target (None without sympy or a formula), "report" (kanarray.symbolic.report.formula_report on
        the test data, None when stopped), "fixed" (auto_symbolic's result), "stages":
        [{"stage", "width", "grid", "train_rmse", "test_rmse", "seconds"}], "plot", "seconds"}
    """
    say = print if verbose else (lambda *a, **k: None)
    dataset = create_dataset(demo_function, n_var=2, train_num=train_num, test_num=train_num,
                             seed=seed)
    x_train, y_train = dataset["train_input"], dataset["train_label"]
    x_test, y_test = dataset["test_input"], dataset["test_label"]
    stages = []
    start_all = time.perf_counter()
    result = {"stopped": None, "formula": None, "formula_rounded": None, "exact": None,
              "report": None, "fixed": {}, "stages": stages, "plot": None}

    def record(stage, model, t0):
        with warnings.catch_warnings():
            # after the regularised fit about a fifth of the hidden activations have moved past
            # the last grid update (the regulariser shrinks the first layer's edges); the table
            # reports that model as it is, and pruning re-places the knots before refining
            warnings.filterwarnings("ignore", message="layer .* outside its grid")
            train_rmse, test_rmse = rmse(model(x_train), y_train), rmse(model(x_test), y_test)
        stages.append({"stage": stage, "width": list(model.width), "grid": model.grid,
                       "train_rmse": train_rmse, "test_rmse": test_rmse,
                       "seconds": time.perf_counter() - t0})

    say(f"target: f(x_1, x_2) = {DEMO_TARGET}, {train_num} train / {train_num} test points "
        f"on [-1, 1]^2, seed {seed}")
    model = _pipeline(seed, dataset, record, result, say)
    result["model"] = model

    if plot:
        title = f"kanarray demo: {result['formula_rounded'] or 'stopped early'}"
        try:
            result["plot"] = model.plot(out, x=x_train, title=title)
        except ImportError as exc:  # the base install has no matplotlib: the rest still stands
            result["plot_skipped"] = str(exc)
    result["seconds"] = total = time.perf_counter() - start_all

    say("")
    say(f"{'stage':<27s} {'width':<11s} {'grid':>4s} {'train RMSE':>11s} {'test RMSE':>11s} "
        f"{'seconds':>8s}")
    for row in stages:
        say(f"{row['stage']:<27s} {str(row['width']):<11s} {row['grid']:>4d} "
            f"{row['train_rmse']:11.3e} {row['test_rmse']:11.3e} {row['seconds']:8.2f}")
    say(f"{'total':<27s} {'':<11s} {'':>4s} {'':>11s} {'':>11s} {total:8.2f}")
    say("")
    if result["stopped"]:
        say(f"no formula: {result['stopped']}")
    else:
        say(f"recovered formula: {result['formula_rounded']}")
        if result["exact"] is not None:
            say(f"exactly the target {DEMO_TARGET}: "
                f"{'yes' if result['exact'] else 'no'}")
        say("formula report (edge R^2: auto-symbolic's fits on the train data; gap and RMSE: "
            "the test data):")
        for line in report_lines(result["report"]):
            say(line)
    if result["plot"] is not None:
        say(f"network plot: {result['plot']}")
    elif "plot_skipped" in result:
        say(f"network plot: skipped ({result['plot_skipped']})")
    return result


def _pipeline(seed, dataset, record, result, say):
    """The stages of the demo (kanarray.pipelines.discover); fills `result` and returns the last model."""
    # one route: the table follows one network from data to formula, and the sum route finds
    # this function (a sum inside exp; the product route, on log y, finds it too)
    found = discover(dataset, [2, 5, 1], lib=DEMO_LIB, seed=seed, grid=5, refine_grid=20,
                     steps=20, lamb=0.01, lamb_entropy=10.0, prune_tolerance=PRUNE_TOLERANCE,
                     inits=INITS, products=False, say=say, on_stage=record)
    result["stopped"], result["fixed"] = found["stopped"], found["fixed"]
    if found["stopped"] is None:
        result["formula"] = found["formula"]
        result["formula_rounded"] = rounded = round_formula(found["formula"], 4)
        result["exact"] = matches_target(rounded, formula_trees(found["model"])[0])
        result["report"] = found["report"]
    return found["model"]
