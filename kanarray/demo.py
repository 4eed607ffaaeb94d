"""The demo: the whole interpretability story on f(x1, x2) = exp(sin(pi x1) + x2^2).

Fit a [2, 5, 1] KAN with sparsity regularisation, prune it to the fewest hidden nodes that
still fit the data, refine the grid, replace every edge by a library function (auto-symbolic),
fit the formula's constants by Levenberg–Marquardt, then print the recovered formula with its
report (kanarray.report), the RMSE and time of every stage, and save a plot of the network.
Where the story cannot go on (the regularised fit collapsed to a constant, an edge fits no
library function), the demo says so and stops there.
"""
import time

import numpy as np

from .data import create_dataset
from .formula import round_formula
from .model import KAN, from_state
from .objective import rmse
from .report import formula_report, report_lines
from .symbolic_lib import optional_sympy

DEMO_LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]
DEMO_TARGET = "exp(sin(pi*x_1) + x_2**2)"
COLLAPSE_R2 = 0.5  # below this train R^2 the regularised fit explains (almost) nothing
PRUNE_TOLERANCE = 1e-2  # a pruned network fits if its train RMSE <= this * std of the labels
INITS = 4  # initialisations tried before the demo gives up
DEAD_NODE = 1e-3  # a hidden node whose output varies less than this share of the largest is idle


def demo_function(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def node_variation(model, x):
    """How much each hidden node of a one-hidden-layer model moves the output: the standard
    deviation over the rows of x of its output edge (summed over outputs), host (width[1],).

    Unlike the attribution scores (mean |phi|, kanarray.prune), a node whose edge is nearly
    constant scores near 0, so that an offset is not mistaken for a part of the function."""
    acts = model.forward_all(model.as_batch(x))
    phi = model.backend.to_numpy(model.layers[1].edge_activations(acts[1])).astype(np.float64)
    return phi.std(axis=0).sum(axis=1)


def keep_hidden_nodes(model, keep, x):
    """A copy of a one-hidden-layer model with only the hidden nodes `keep`: the others' edges
    are masked (their mean output folded into the output bias) and the nodes removed."""
    copy = from_state(model.config(), model.state_arrays())
    acts = copy.forward_all(copy.as_batch(x))
    inner, outer = copy.layers
    phi = copy.backend.to_numpy(outer.edge_activations(acts[1])).astype(np.float64).mean(axis=0)
    drop = np.setdiff1d(np.arange(inner.out_dim), keep)
    bias = copy.backend.to_numpy(outer.params["bias"]).astype(np.float64) + phi[drop].sum(axis=0)
    outer.params["bias"][...] = copy.backend.asarray(bias, outer.dtype)
    inner.mask[:, drop] = 0
    outer.mask[drop, :] = 0
    return copy.prune_node(x=x)


def prune_to_fewest_nodes(model, dataset, tolerance, steps=30):
    """The pruned and retrained copy of a one-hidden-layer model with the fewest hidden nodes
    (kept in order of node_variation, idle nodes never) whose train RMSE is at most
    `tolerance` (the test data stay held out); the widest one tried if none is.
    -> (model, train RMSE)."""
    x = dataset["train_input"]
    variation = node_variation(model, x)
    order = np.argsort(-variation, kind="stable")
    order = order[variation[order] > DEAD_NODE * variation.max()]  # nodes that do something
    for k in range(1, len(order) + 1):
        candidate = keep_hidden_nodes(model, np.sort(order[:k]), x).prune_edge(x=x)
        candidate.fit(dataset, opt="lbfgs", steps=steps, log=0)
        error = rmse(candidate(x), dataset["train_label"])
        if error <= tolerance or k == len(order):
            return candidate, error
    raise AssertionError("unreachable: the last candidate is always returned")


def matches_target(formula):
    """Whether a (rounded) formula is exactly the target with pi rounded to 4 decimals; None
    without sympy."""
    sp = optional_sympy()
    if sp is None:
        return None
    x1, x2 = sp.symbols("x_1 x_2")
    target = sp.exp(sp.sin(sp.Float("3.1416") * x1) + x2 ** 2)
    return bool(sp.simplify(sp.sympify(formula) - target) == 0)


def run_demo(seed=0, out="kan_demo.png", plot=True, verbose=True, train_num=1000):
    """Run the demo pipeline; returns a dict with the model, formula, stage table and plot path.

    -> {"model", "stopped": None or why the pipeline stopped early, "formula" (full precision)
        and "formula_rounded" (None when stopped), "exact": whether the rounded formula is the
        target (None without sympy or a formula), "report" (kanarray.report.formula_report on
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
        stages.append({"stage": stage, "width": list(model.width), "grid": model.grid,
                       "train_rmse": rmse(model(x_train), y_train),
                       "test_rmse": rmse(model(x_test), y_test),
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
            say(f"exactly the target {DEMO_TARGET} (pi to 4 decimals): "
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
    """The stages of the demo; fills `result` and returns the last model."""
    x_train, y_train = dataset["train_input"], dataset["train_label"]
    tolerance = PRUNE_TOLERANCE * float(np.std(y_train))
    for attempt in range(INITS):
        label = "" if attempt == 0 else f", init {attempt + 1}"
        t0 = time.perf_counter()
        init = seed if attempt == 0 else int(np.random.default_rng([seed, attempt]).integers(2**31))
        model = KAN([2, 5, 1], grid=5, k=3, seed=init)
        model.fit(dataset, opt="lbfgs", steps=20, lamb=0.01, lamb_entropy=10.0, log=0)
        record("fit [2,5,1] + reg" + label, model, t0)
        r2 = model.score(x_train, y_train)
        if r2 < COLLAPSE_R2:
            result["stopped"] = (f"the regularised fit collapsed towards a constant (train "
                                 f"R^2 = {r2:.3f} < {COLLAPSE_R2})")
            say(f"  init {attempt + 1}: {result['stopped']}")
            continue
        t0 = time.perf_counter()
        model, error = prune_to_fewest_nodes(model, dataset, tolerance)
        record("prune + fit" + label, model, t0)
        if error <= tolerance:
            result["stopped"] = None
            break
        result["stopped"] = (f"no pruned network fits the data: train RMSE {error:.3e} > "
                             f"{tolerance:.3e} ({PRUNE_TOLERANCE} x the labels' std)")
        say(f"  init {attempt + 1}: {result['stopped']}")
    if result["stopped"]:
        result["stopped"] += f" (the last of {INITS} initialisations tried)"
        return model

    t0 = time.perf_counter()
    model = model.refine(20, x=x_train)
    model.fit(dataset, opt="lbfgs", steps=30, update_grid=False, log=0)
    record("refine grid 20 + fit", model, t0)

    t0 = time.perf_counter()
    fixed = model.auto_symbolic(lib=DEMO_LIB, x=x_train, verbose=0)
    result["fixed"] = fixed
    record("auto-symbolic", model, t0)
    left = [edge for edge, (name, _) in fixed.items() if not name]
    if left:
        for (l, i, j), (name, r2) in sorted(fixed.items()):
            say(f"  edge ({l},{i},{j}) -> {name or 'spline':<6s} best R^2 = {r2:.10f}")
        result["stopped"] = (f"{len(left)} edge(s) fit no library function with R^2 >= 0.99 "
                             f"and stay splines: {sorted(left)}")
        return model

    t0 = time.perf_counter()
    model.fit_constants(x_train, y_train)
    record("symbolic fine-tune", model, t0)

    formula = model.symbolic_formula()[0]
    result["formula"] = formula
    result["formula_rounded"] = rounded = round_formula(formula, 4)
    result["exact"] = matches_target(rounded)
    result["report"] = formula_report(model, dataset["test_input"], dataset["test_label"],
                                      edge_fits=fixed)
    return model
