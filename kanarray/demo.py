"""The demo: the whole interpretability story on f(x1, x2) = exp(sin(pi x1) + x2^2).

Fit a [2, 5, 1] KAN with sparsity regularisation, prune it to [2, 1, 1], refine the grid,
replace every edge by a library function (auto-symbolic), fine-tune the symbolic parameters
with L-BFGS, then print the recovered formula, the RMSE and time of every stage, and save a
plot of the network.
"""
import time

import numpy as np

from .data import create_dataset
from .formula import round_formula
from .model import KAN
from .objective import rmse

DEMO_LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]
DEMO_TARGET = "exp(sin(pi*x_1) + x_2**2)"


def demo_function(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def run_demo(seed=0, out="kan_demo.png", plot=True, verbose=True, train_num=1000):
    """Run the demo pipeline; returns a dict with the model, formula, stage table and plot path.

    -> {"model", "formula" (full precision), "formula_rounded", "stages": [{"stage", "width",
        "grid", "train_rmse", "test_rmse", "seconds"}], "plot", "seconds"}
    """
    say = print if verbose else (lambda *a, **k: None)
    dataset = create_dataset(demo_function, n_var=2, train_num=train_num, test_num=train_num,
                             seed=seed)
    x_train, y_train = dataset["train_input"], dataset["train_label"]
    x_test, y_test = dataset["test_input"], dataset["test_label"]
    stages = []
    start_all = time.perf_counter()

    def record(stage, model, t0):
        stages.append({"stage": stage, "width": list(model.width), "grid": model.grid,
                       "train_rmse": rmse(model(x_train), y_train),
                       "test_rmse": rmse(model(x_test), y_test),
                       "seconds": time.perf_counter() - t0})

    say(f"target: f(x_1, x_2) = {DEMO_TARGET}, {train_num} train / {train_num} test points "
        f"on [-1, 1]^2, seed {seed}")

    t0 = time.perf_counter()
    model = KAN([2, 5, 1], grid=5, k=3, seed=seed)
    model.fit(dataset, opt="lbfgs", steps=20, lamb=0.01, lamb_entropy=10.0, log=0)
    record("fit [2,5,1] + reg", model, t0)

    t0 = time.perf_counter()
    model = model.prune(x=x_train)
    # a node whose edges prune_edge masked carries nothing: remove it too
    model = model.prune_node(x=x_train)
    model.fit(dataset, opt="lbfgs", steps=30, log=0)
    record("prune + fit", model, t0)

    t0 = time.perf_counter()
    model = model.refine(20, x=x_train)
    model.fit(dataset, opt="lbfgs", steps=30, update_grid=False, log=0)
    record("refine grid 20 + fit", model, t0)

    t0 = time.perf_counter()
    fixed = model.auto_symbolic(lib=DEMO_LIB, x=x_train, verbose=0)
    record("auto-symbolic", model, t0)
    for (l, i, j), (name, r2) in sorted(fixed.items()):
        say(f"  edge ({l},{i},{j}) -> {name:<5s} R^2 = {r2:.10f}")

    t0 = time.perf_counter()
    model.fit(dataset, opt="lbfgs", steps=20, update_grid=False, log=0)
    record("symbolic fine-tune", model, t0)

    formula = model.symbolic_formula()[0]
    rounded = round_formula(formula, 4)
    path, plot_skipped = None, None
    if plot:
        try:
            path = model.plot(out, x=x_train, title=f"kanarray demo: {rounded}")
        except ImportError as exc:  # the base install has no matplotlib: the rest still stands
            plot_skipped = str(exc)
    total = time.perf_counter() - start_all

    say("")
    say(f"{'stage':<22s} {'width':<11s} {'grid':>4s} {'train RMSE':>11s} {'test RMSE':>11s} "
        f"{'seconds':>8s}")
    for row in stages:
        say(f"{row['stage']:<22s} {str(row['width']):<11s} {row['grid']:>4d} "
            f"{row['train_rmse']:11.3e} {row['test_rmse']:11.3e} {row['seconds']:8.2f}")
    say(f"{'total':<22s} {'':<11s} {'':>4s} {'':>11s} {'':>11s} {total:8.2f}")
    say("")
    say(f"recovered formula: {rounded}")
    if path is not None:
        say(f"network plot: {path}")
    elif plot_skipped:
        say(f"network plot: skipped ({plot_skipped})")
    return {"model": model, "formula": formula, "formula_rounded": rounded, "stages": stages,
            "plot": path, "seconds": total, "fixed": fixed}
