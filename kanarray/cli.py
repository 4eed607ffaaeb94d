"""Command line: `kanarray demo` and `kanarray fit` (also `python -m kanarray ...`).

The demo tells the whole interpretability story on f(x1, x2) = exp(sin(pi x1) + x2^2):
fit a [2, 5, 1] KAN with sparsity regularisation, prune it to [2, 1, 1], refine the grid,
replace every edge by a library function (auto-symbolic), fine-tune the symbolic parameters
with L-BFGS, then print the recovered formula, the RMSE and time of every stage, and save a
plot of the network.
"""
import argparse
import sys
import time

import numpy as np

from . import distributed
from .data import create_dataset
from .formula import round_formula
from .model import KAN

DEMO_LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]
DEMO_TARGET = "exp(sin(pi*x_1) + x_2**2)"


def demo_function(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def _rmse(model, x, y):
    return float(np.sqrt(np.mean((np.asarray(model(x)) - y) ** 2)))


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
                       "train_rmse": _rmse(model, x_train, y_train),
                       "test_rmse": _rmse(model, x_test, y_test),
                       "seconds": time.perf_counter() - t0})

    say(f"target: f(x_1, x_2) = {DEMO_TARGET}, {train_num} train / {train_num} test points "
        f"on [-1, 1]^2, seed {seed}")

    t0 = time.perf_counter()
    model = KAN([2, 5, 1], grid=5, k=3, seed=seed)
    model.fit(dataset, opt="lbfgs", steps=20, lamb=0.01, lamb_entropy=10.0)
    record("fit [2,5,1] + reg", model, t0)

    t0 = time.perf_counter()
    model = model.prune(x=x_train)
    # a node whose edges prune_edge masked carries nothing: remove it too
    model = model.prune_node(x=x_train)
    model.fit(dataset, opt="lbfgs", steps=30)
    record("prune + fit", model, t0)

    t0 = time.perf_counter()
    model = model.refine(20, x=x_train)
    model.fit(dataset, opt="lbfgs", steps=30, update_grid=False)
    record("refine grid 20 + fit", model, t0)

    t0 = time.perf_counter()
    fixed = model.auto_symbolic(lib=DEMO_LIB, x=x_train, verbose=0)
    record("auto-symbolic", model, t0)
    for (l, i, j), (name, r2) in sorted(fixed.items()):
        say(f"  edge ({l},{i},{j}) -> {name:<5s} R^2 = {r2:.10f}")

    t0 = time.perf_counter()
    model.fit(dataset, opt="lbfgs", steps=20, update_grid=False)
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


def _parse_width(text):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--width must be comma-separated integers such as 2,5,1, got {text!r}") from None


def read_csv(path, n_out, test_frac, seed):
    """Full dataset from a CSV (header line optional): last n_out columns are labels; a random
    test_frac of the rows (seeded, the same on every rank) is the test set."""
    with open(path) as f:
        first = f.readline()
    try:
        [float(v) for v in first.replace(",", " ").split()]
        skip = 0
    except ValueError:
        skip = 1
    table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    if table.shape[1] <= n_out:
        raise ValueError(f"{path}: {table.shape[1]} columns, need more than --n-out={n_out}")
    order = np.random.default_rng(seed).permutation(table.shape[0])
    n_test = max(1, int(round(test_frac * table.shape[0])))
    test, train = table[order[:n_test]], table[order[n_test:]]
    return {"train_input": train[:, :-n_out], "train_label": train[:, -n_out:],
            "test_input": test[:, :-n_out], "test_label": test[:, -n_out:]}


def add_fit_arguments(parser):
    parser.add_argument("csv", help="CSV file; the last --n-out columns are labels")
    parser.add_argument("--width", default=None, help="layer widths, e.g. 2,5,1 (default: inputs,5,n_out)")
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--opt", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch", type=int, default=-1, help="global rows per step (-1: all)")
    parser.add_argument("--n-out", type=int, default=1)
    parser.add_argument("--test-frac", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--log", type=int, default=10)
    parser.add_argument("--out", default="model.npz", help="checkpoint, rewritten after every step")


def run_fit(args):
    """`kanarray fit`: train on a CSV, data-parallel over the MPI ranks when launched by mpiexec
    (one rank without it); returns the exit code."""
    comm = distributed.mpi().COMM_WORLD

    def prepare():
        full = read_csv(args.csv, args.n_out, args.test_frac, args.seed)
        width = (_parse_width(args.width) if args.width
                 else [full["train_input"].shape[1], 5, args.n_out])
        if args.device == "cuda":
            distributed.select_gpu(comm)
        model = KAN(width=width, grid=args.grid, k=args.k, seed=args.seed, dtype=args.dtype,
                    device=args.device)
        return full, distributed.shard(full, comm), model

    try:
        # a missing file or bad argument on any rank stops every rank (no rank left waiting)
        full, data, model = distributed.Context(comm).run(prepare)
        if comm.Get_rank() == 0:
            print(f"kanarray: {comm.Get_size()} rank(s), {full['train_input'].shape[0]} training "
                  f"rows, {model!r}", flush=True)
        results = model.fit(data, opt=args.opt, steps=args.steps, lr=args.lr, batch=args.batch,
                            seed=args.seed, log=args.log, comm=comm, checkpoint=args.out)
    except Exception as exc:
        if getattr(exc, "collective", False):  # every rank has this error: all exit cleanly
            if comm.Get_rank() == 0:
                print(f"kanarray: error: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"kanarray: rank {comm.Get_rank()}: error: {exc}", file=sys.stderr, flush=True)
        comm.Abort(1)  # an error on this rank alone: the others cannot be told, end the job
    if comm.Get_rank() == 0:
        final = results["test_loss"][-1] if results["test_loss"] else float("nan")
        print(f"kanarray: {len(results['train_loss'])} steps in {results['seconds']:.2f} s, "
              f"test rmse {final:.3e}, saved {args.out}"
              + (f" (stopped: {results['stopped']})" if results["stopped"] else ""), flush=True)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kanarray", description="kanarray command line")
    commands = parser.add_subparsers(dest="command", metavar="command")
    demo = commands.add_parser("demo", help="fit, prune, symbolify exp(sin(pi x1) + x2^2)",
                               description=__doc__.split("\n\n")[1])
    demo.add_argument("--out", default="kan_demo.png", help="network plot file (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and model (default: 0)")
    demo.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib needed)")
    fit = commands.add_parser("fit", help="train on a CSV (under mpiexec: across the ranks)")
    add_fit_arguments(fit)
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(seed=args.seed, out=args.out, plot=not args.no_plot)
        return 0
    if args.command == "fit":
        return run_fit(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
