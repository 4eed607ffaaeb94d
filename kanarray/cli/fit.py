"""`kanarray fit DATA --target COL`: from a data file to a trained, saved (and explained) KAN.

Stages, each a fit of `--steps` steps and a row of the closing table:
    fit        at --grid, with --lamb sparsity regularisation (and --restarts more initialisations,
               the best on the test rows kept)
    prune      (--prune) weak nodes and edges removed on the training rows, then a fit
    refine     one per grid of --refine (grid extension), each followed by a fit
    symbolic   (--symbolic) every edge fixed to its best library function, layer by layer with a
               fit after each layer (kanarray.pipelines.stages.fix_layer_by_layer), the
               constants of the formula fitted by Levenberg–Marquardt, then a fine-tune

With --symbolic, one regression target, one hidden layer, float64 on the CPU and one process,
the stages are instead kanarray.pipelines.discover's (the one pipeline behind `kanarray demo`):
its own sparsity fit, pruning to the fewest hidden nodes, grid refinement and layer-by-layer
fixing, with --grid, --steps, --seed, --lamb (when > 0) and the last --refine grid (default 20)
carried over. It prints the formula only when the formula passes the held-out check, with
its numbers snapped to simple values; otherwise it says why and trains and saves the network
through the stages above, without the symbolic one.

Inputs are scaled into the grid range (and regression targets standardised) by the model's own
affine maps (KAN.set_scaling), so data in any units train alike and predictions and formulas
come back in those units. Launched by `mpiexec -n N kanarray fit ...`, every rank reads only its
block of rows and training is data-parallel (kanarray.training.distributed); the structural
decisions of pruning and symbolic fitting are made on a sample of every rank's rows that does not
depend on the number of ranks (distributed.decision_rows) and sent from rank 0 to the others.
"""
import os
import time
import warnings

import numpy as np

from ..training import distributed
from ..io import tabular
from ..io.data import held_out_mask
from ..core.checks import UserError
from ..core.metrics import rmse
from ..funcs.library import optional_sympy
from ..symbolic.formula import round_formula
from ..model import KAN, from_state
from ..core.network import range_to_grid
from ..symbolic.report import formula_report, report_lines
from ..pipelines.discover import discover
from ..pipelines.stages import fix_layer_by_layer, run_stage

def parse_ints(text, option, minimum=1):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} must be comma-separated integers such as 5 or 10,20, got {text!r}") from None
    if not values or min(values) < minimum:
        raise UserError(f"{option} must be integers >= {minimum}, got {text!r}")
    return values


def check_output_path(path, option="--out"):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{option} {path}: the folder {folder} is not writable")


def check_fit_options(args):
    """Every option checked before any work is done; -> (hidden widths, refine grids)."""
    hidden = [] if str(args.width).strip() == "0" else parse_ints(args.width, "--width")
    refine = parse_ints(args.refine, "--refine") if args.refine else []
    if refine and (refine[0] <= args.grid or any(b <= a for a, b in zip(refine, refine[1:]))):
        raise UserError(f"--refine grids must increase and exceed --grid {args.grid}, got {args.refine}")
    for option, value, minimum in (("--grid", args.grid, 1), ("--steps", args.steps, 1),
                                   ("--threads", 1 if args.threads is None else args.threads, 1),
                                   ("--restarts", args.restarts, 0), ("--block-rows", args.block_rows, 1)):
        if value < minimum:
            raise UserError(f"{option} must be >= {minimum}, got {value}")
    if not 0 < args.test_frac < 1:
        raise UserError(f"--test-frac must be strictly between 0 and 1, got {args.test_frac}")
    if not (np.isfinite(args.lamb) and args.lamb >= 0):
        raise UserError(f"--lamb must be a finite number >= 0, got {args.lamb}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    check_output_path(args.out)
    return hidden, refine


def read_rows(args, comm):
    """This process's rows: (X, y, is_test, input names, target names), all rows without MPI.
    Under MPI each rank reads whole blocks of --block-rows training rows (numbered in file
    order), so that sums over rows have the same bits on any number of ranks, and an even run
    of the held-out rows."""
    if comm is None:
        names, table = tabular.read_table(args.data)
        is_test = held_out_mask(table.shape[0], args.test_frac, args.seed)
    else:
        n_rows = tabular.count_rows(args.data)
        held_out = held_out_mask(n_rows, args.test_frac, args.seed)
        mine = []
        for part, label, block in ((~held_out, "training", args.block_rows), (held_out, "held-out", 1)):
            where = np.flatnonzero(part)
            try:
                lo, hi = distributed.shard_bounds(len(where), comm.Get_size(), comm.Get_rank(), block)
            except ValueError as exc:
                raise ValueError(f"{args.data}: {label} rows: {exc} (--block-rows)") from None
            mine.append(where[lo:hi])
        mine = np.sort(np.concatenate(mine))
        names, table = tabular.read_rows(args.data, int(mine[0]), int(mine[-1]) + 1)
        table, is_test = table[mine - mine[0]], held_out[mine]
    X, y, inputs, targets = tabular.split_columns(names, table, args.target)
    if args.task == "classification":
        if y.shape[1] != 1 or np.any(y < 0) or np.any(y != np.round(y)):
            raise ValueError(f"--task classification needs one target column of class ids "
                             f"0, 1, 2, ... ({', '.join(targets)} is not)")
        y = y[:, 0].astype(np.int64)
    return X, y, is_test, inputs, targets


def global_stats(comm, x, y, y_all, classification):
    """Over the rows of every rank: the per-column min and max of the training inputs x, and of
    the training targets y the (mean, std) of every column (regression: their sums over rows are
    exact sums, kanarray.training.exact, the same bits for any number of ranks), or the number
    of classes among all targets y_all, held-out rows included (classification)."""
    if classification:
        low, high, _ = distributed.column_stats(comm, x)
        top = np.array([y_all.max(initial=-1)], dtype=np.float64)
        if comm is not None:
            comm.Allreduce(distributed.mpi().IN_PLACE, top, op=distributed.mpi().MAX)
        return low, high, None, int(top[0]) + 1
    low, high, (mean, std) = distributed.column_stats(comm, x, y)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        raise ValueError("the target columns spread more than the largest float; rescale them")
    return low, high, (mean, np.where(std > 0, std, 1.0)), None


def run(args, comm, say):
    """The fit command; say(text) prints on rank 0. -> the trained model."""
    hidden, refine = check_fit_options(args)
    context = distributed.Context(comm) if comm is not None else None
    rows = context.run(read_rows, args, comm) if context else read_rows(args, comm)
    X, y, is_test, inputs, targets = rows
    classification = args.task == "classification"
    low, high, out_scaling, n_classes = global_stats(comm, X[~is_test], y[~is_test], y, classification)
    n_out = n_classes if classification else y.shape[1]
    model = KAN([X.shape[1], *hidden, n_out], grid=args.grid, k=3, seed=args.seed,
                dtype=args.dtype, device=args.device,
                input_scaling=range_to_grid(low, high, (-1.0, 1.0)), output_scaling=out_scaling)
    data = {"train_input": X[~is_test], "train_label": y[~is_test],
            "test_input": X[is_test], "test_label": y[is_test]}
    metric = "accuracy" if classification else "RMSE"
    say(f"kanarray fit: {args.data}, {len(inputs)} inputs -> {', '.join(targets)} ({args.task}), "
        f"model {model.width}, grid {args.grid}" + (f", {comm.Get_size()} ranks" if comm else ""))
    symbolic = args.symbolic
    if symbolic and by_discovery(args, comm, classification, hidden, y):
        symbolic_model = run_discover(args, data, [X.shape[1], hidden[0], 1], refine, inputs,
                                      targets[0], say)
        if symbolic_model is not None:
            return symbolic_model
        say("\nthe network is trained as without --symbolic:")
        symbolic = False
    fit_kwargs = dict(opt=args.opt, steps=args.steps, comm=comm, log=args.log, seed=args.seed,
                      loss="ce" if classification else "mse", threads=args.threads,
                      block_rows=args.block_rows)
    table = []

    def stage(name, model, change=None, **kwargs):
        model, row = run_stage(name, model, data, change, **{**fit_kwargs, **kwargs})
        table.append(row)
        if row["stopped"]:
            say(f"  stopped early: {row['stopped']}")
        if kwargs.get("restarts"):
            scores = ", ".join(f"{v:.4e}" for v in row["history"]["restart_test_loss"])
            say(f"  restarts: kept start {row['history']['restart']} of {kwargs['restarts'] + 1} "
                f"(test loss {scores})")
        return model

    def share(model, fits=None):
        """Rank 0's model (and edge fits) on every rank, after a decision on rank 0's rows."""
        if comm is None:
            return model, fits
        state = comm.bcast((model.config(), model.state_arrays(), fits) if comm.Get_rank() == 0 else None)
        return from_state(*state[:2]), state[2]

    model = stage("fit", model, lamb=args.lamb, restarts=args.restarts)
    # the structural decisions use every rank's rows (a bounded sample of them, the same for any
    # number of ranks) and rank 0's decision is sent to all
    x_all, y_all = distributed.decision_rows(comm, [data["train_input"], data["train_label"]])
    if args.prune:
        model = stage("prune", model, lambda m: share(m.prune(x=x_all))[0])
    for grid in refine:
        model = stage(f"refine {grid}", model, lambda m, g=grid: m.refine(g))
    if symbolic:
        model, fits = fix_layer_by_layer(model, x_all, None,
                                         lambda m: stage("refit", m, update_grid=False), share)
        left = [edge for edge, (name, _) in fits.items() if not name]
        if not left and not classification and (comm is None or comm.Get_rank() == 0):
            model.fit_constants(x_all, y_all)  # a formula: exact constants
        model = stage("symbolic", share(model)[0], update_grid=False)
    say_table(table, metric, "accuracy" if classification else "loss", say)
    if comm is None or comm.Get_rank() == 0:
        model.save(args.out, metadata={"task": args.task, "inputs": inputs, "targets": targets,
                                       "data": os.path.basename(args.data)})
        say(f"saved {args.out}")
        if symbolic:
            if left:
                say(f"no formula: {len(left)} edge(s) fit no library function well "
                    f"(R^2 < 0.99) and stay splines: {left[:5]}")
            else:
                for target, formula in zip(targets if not classification else
                                           [f"logit_{c}" for c in range(n_out)],
                                           model.symbolic_formula(var_names=inputs)):
                    say(f"{target} = {round_formula(formula, 6)}")
                if not classification:  # how far to trust it, on the held-out rows
                    report = formula_report(model, data["test_input"], data["test_label"],
                                            var_names=inputs, edge_fits=fits)
                    say("\n".join(["formula check (test rows):"] + report_lines(report)))
    return model


def say_table(table, metric, key, say):
    """The closing table: one row per stage, its train and test `metric` (row[f"train_{key}"])."""
    say(f"\n{'stage':<27s} {'width':<14s} {'grid':>4s} {'train ' + metric:>14s} "
        f"{'test ' + metric:>14s} {'seconds':>8s}")
    for row in table:
        say(f"{row['stage']:<27s} {str(row['width']):<14s} {row['grid']:>4d} "
            f"{row['train_' + key]:14.4e} {row['test_' + key]:14.4e} {row['seconds']:8.2f}")


def by_discovery(args, comm, classification, hidden, y):
    """Whether --symbolic runs kanarray.pipelines.discover (the module docstring says when)."""
    return (comm is None and not classification and y.shape[1] == 1 and len(hidden) == 1
            and args.dtype == "float64" and args.device == "cpu")


def run_discover(args, data, width, refine, inputs, target, say):
    """`kanarray fit --symbolic` by discover on the file's train/test split -> the saved model,
    the symbolic network of the formula; None (nothing saved) when no formula passed its check.
    The product route (log|y|) is not taken: its networks give log|y|, not the target."""
    if args.restarts:
        raise UserError("--restarts does not apply to --symbolic with one hidden layer: discover "
                        "draws new initialisations itself when one fails")
    table = []

    def record(stage, model, t0):
        with warnings.catch_warnings():  # the table reports each stage's model as it is
            warnings.filterwarnings("ignore", message="layer .* outside its grid")
            rows = [model(data[f"{part}_input"]) for part in ("train", "test")]
        table.append({"stage": stage, "width": list(model.width), "grid": model.grid,
                      "train_loss": rmse(rows[0], data["train_label"]),
                      "test_loss": rmse(rows[1], data["test_label"]),
                      "seconds": time.perf_counter() - t0})

    options = dict(seed=args.seed, grid=args.grid, steps=args.steps,
                   refine_grid=refine[-1] if refine else max(20, args.grid + 1))
    if args.lamb > 0:
        options["lamb"] = args.lamb
    found = discover(data, width, products=False, scale=True, say=say, on_stage=record,
                     **options)
    say_table(table, "RMSE", "loss", say)
    sp = optional_sympy()

    def named(formula):  # x_1, x_2, ... -> the file's column names
        return round_formula(formula.subs({s: sp.Symbol(inputs[int(s.name[2:]) - 1])
                                           for s in formula.free_symbols}), 6)

    if found["front"]:
        say("\nformulas found (the Pareto front: each has fewer operations or a lower test RMSE "
            "than every other; * the one kept: it passes the held-out check with the fewest "
            "operations, its numbers snapped):")
        say(f"  {'operations':>10s} {'test RMSE':>11s} {'check':<6s} formula")
        for c in found["front"]:
            say(f"{'*' if c['pick'] else ' '} {c['operations']:>10d} {c['rmse']:11.4e} "
                f"{'passed' if c['passed'] else 'failed':<6s} {named(c['formula'])}")
    if found["stopped"]:
        say(f"no formula: {found['stopped']}")
        return None
    model = found["model"]
    model.save(args.out, metadata={"task": args.task, "inputs": inputs, "targets": [target],
                                   "data": os.path.basename(args.data)})
    say(f"saved {args.out}")
    # without sympy discover's formula is the symbolic network's own
    formula = (named(found["formula"]) if sp is not None
               else round_formula(model.symbolic_formula(var_names=inputs)[0], 6))
    say(f"{target} = {formula}")
    check = found["check"]
    say(f"formula check (test rows): RMSE {check['rmse']:.4e} against the labels, the network's "
        f"{check['network_rmse']:.4e}")
    return model
