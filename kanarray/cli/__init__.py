"""The `kanarray` command (also `python -m kanarray`).

    kanarray demo                              the whole story on exp(sin(pi x1) + x2^2)
    kanarray fit DATA --target y [...]         train on a CSV / .npy / .npz / Parquet file
    mpiexec -n 4 kanarray fit DATA ...         the same, data-parallel over MPI ranks
    kanarray predict MODEL DATA [--out p.csv]  predictions for the model's input columns
    kanarray formula MODEL                     the formula of a symbolic model, in column names
    kanarray plot MODEL --out net.png          the network with every edge's curve
    kanarray info                              version, devices, threads, kernel cache
    kanarray bench                             a short timing table on this machine

A user's mistake (a missing file or column, a bad value, a wrong model file) prints one line,
"kanarray: error: ...", and exits with status 2; there is no traceback for those
(KANARRAY_DEBUG=1 shows it). Starting the command compiles nothing and imports no scipy.
"""
import argparse
import os
import sys

from ..training import distributed
from ..training.exact import BLOCK_ROWS
from ..core.checks import UserError

EXIT_USER_ERROR = 2
TASKS = ("regression", "classification")
DEMO = ("fit a [2, 5, 1] KAN to exp(sin(pi x1) + x2^2) with sparsity regularisation, prune it, "
        "refine the grid, fix every edge to a library function and print the formula")


class Parser(argparse.ArgumentParser):
    """argparse, with usage mistakes raised as one-line UserErrors."""

    def error(self, message):
        raise UserError(message)


def build_parser():
    parser = Parser(prog="kanarray", description="Kolmogorov-Arnold Networks: train, explain, predict.")
    commands = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    d = commands.add_parser("demo", help="fit, prune, symbolify exp(sin(pi x1) + x2^2)",
                            description=DEMO)
    d.add_argument("--out", default="kan_demo.png", help="network plot file (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="seed of data and model (default: 0)")
    d.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib needed)")

    f = commands.add_parser("fit", help="train on a data file (kanarray.cli.fit says how)")
    f.add_argument("data", help="CSV with a header, .npy, .npz or .parquet")
    f.add_argument("--target", required=True, help="target column(s): y or y1,y2")
    f.add_argument("--task", choices=TASKS, default="regression")
    f.add_argument("--width", default="5", help="hidden layer widths, e.g. 5 or 8,4; 0 = no hidden layer (default: 5)")
    f.add_argument("--grid", type=int, default=5, help="grid intervals (default: 5)")
    f.add_argument("--refine", default="", help="grid extension, e.g. 10,20")
    f.add_argument("--steps", type=int, default=50, help="steps per stage (default: 50)")
    f.add_argument("--opt", choices=("lbfgs", "adam"), default="lbfgs")
    f.add_argument("--lamb", type=float, default=0.0, help="sparsity regularisation of the first fit")
    f.add_argument("--restarts", type=int, default=0,
                   help="first fit: also train this many fresh initialisations, keep the best on the test rows")
    f.add_argument("--prune", action="store_true", help="prune weak nodes and edges, then refit")
    f.add_argument("--symbolic", action="store_true", help="fix every edge to a formula, fine-tune")
    f.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    f.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    f.add_argument("--threads", type=int, default=None, help="CPU threads of the kernels")
    f.add_argument("--block-rows", type=int, default=BLOCK_ROWS,
                   help="rows per block of the exact sums over rows: under MPI each rank holds "
                        "whole blocks of training rows (default: %(default)s)")
    f.add_argument("--test-frac", type=float, default=0.2, help="held-out share (default: 0.2)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--log", type=int, default=None,
                   help="a progress line every N steps (default: one live line on a terminal)")
    f.add_argument("--out", default="model.npz", help="the trained model (default: %(default)s)")

    p = commands.add_parser("predict", help="predictions of a saved model on a data file")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--out", default=None, help="CSV of predictions (default: print them)")

    m = commands.add_parser("formula", help="the formula of a symbolic model")
    m.add_argument("model")
    m.add_argument("--digits", type=int, default=None, help="round numbers for display")
    style = m.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="as LaTeX math")
    style.add_argument("--python", action="store_true",
                       help="as a standalone NumPy function computing exactly what the model does")

    g = commands.add_parser("plot", help="draw a saved model")
    g.add_argument("model")
    g.add_argument("--out", default="kan.png")

    commands.add_parser("info", help="version, devices, threads, kernel cache")
    b = commands.add_parser("bench", help="a short timing table on this machine")
    b.add_argument("--repeats", type=int, default=20)
    return parser


def main(argv=None):
    """Entry point; returns the exit status (0, or 2 for a user's mistake)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        # the commands load numba and compile kernels: only once a command is asked for, so that
        # `kanarray --help` starts at once (the one function-level import of the package)
        from . import commands

        commands.run(args)
    except BrokenPipeError:  # the reader went away (kanarray predict ... | head): nothing to say
        sys.stderr.close()
        return 0
    except (UserError, OSError, ValueError, TypeError, ImportError, distributed.DistributedError) as exc:
        if os.environ.get("KANARRAY_DEBUG"):
            raise
        world = distributed.launched_world()
        rank = None if world is None else world.Get_rank()
        if getattr(exc, "collective", False) and rank not in (None, 0):
            return 1  # every rank has this error: rank 0 reports it
        prefix = "kanarray: error:" if rank is None or getattr(exc, "collective", False) \
            else f"kanarray: rank {rank}: error:"
        print(f"{prefix} {exc}", file=sys.stderr, flush=True)
        if rank is not None and not getattr(exc, "collective", False):
            world.Abort(EXIT_USER_ERROR)  # the other ranks cannot be told
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
