"""What each `kanarray` command does, once kanarray.cli has parsed its arguments."""
import keyword
import re

import numpy as np

from . import fit as cli_fit, info as cli_info
from ..pipelines import demo
from ..training import distributed
from ..io import tabular
from ..core.checks import UserError
from ..core.metrics import softmax
from .fit import check_output_path
from ..symbolic import expr
from ..symbolic.formula import formula_trees, round_formula
from ..model import load


def _model_and_names(path):
    """A saved model, its metadata, and the names of its inputs and of its outputs (from the
    metadata kanarray fit saves; a classifier's outputs are the logits of its classes)."""
    model = load(path)
    meta = model.metadata_
    _check_metadata(path, meta, model)
    inputs = meta.get("inputs") or [f"x_{i + 1}" for i in model.input_ids]
    targets = meta.get("targets") or [f"y_{j + 1}" for j in range(model.width[-1])]
    if meta.get("task") == "classification":
        targets = [f"logit_{targets[0]}={c}" for c in range(model.width[-1])]
    return model, meta, [str(v) for v in inputs], [str(v) for v in targets]


def _check_metadata(path, meta, model):
    """The metadata kanarray fit saves, checked before it is trusted: "inputs" (one name per
    input) and "targets" (names) lists of strings, "task" "regression" or "classification"."""
    if not isinstance(meta, dict):
        raise UserError(f"{path}: its metadata is not a JSON object")
    for key, count in (("inputs", model.width[0]), ("targets", None)):
        names = meta.get(key)
        if names is None:
            continue
        if (not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
                or (count is not None and len(names) != count)):
            want = f"{count} " if count is not None else ""
            raise UserError(f"{path}: metadata[{key!r}] must be a list of {want}column names, "
                            f"got {names!r}")
    if meta.get("task", "regression") not in ("regression", "classification"):
        raise UserError(f"{path}: metadata['task'] must be 'regression' or 'classification', "
                        f"got {meta['task']!r}")
    if meta.get("task") == "classification" and "targets" not in meta:
        raise UserError(f"{path}: a classifier's metadata must name its target column")


def predict(args):
    model, meta, inputs, targets = _model_and_names(args.model)
    if args.out is not None:
        check_output_path(args.out)
    names, table = tabular.read_table(args.data)
    missing = [n for n in inputs if n not in names]
    if missing and len(names) >= len(inputs) and "inputs" not in meta:
        missing = []  # a model without column names takes the first columns
    if missing:
        raise UserError(f"{args.data} lacks the model's input column(s) {', '.join(missing)}")
    columns = [names.index(n) for n in inputs] if "inputs" in meta else list(range(len(inputs)))
    outputs = np.asarray(model(table[:, columns]), dtype=np.float64)
    if meta.get("task") == "classification":
        header = [meta["targets"][0]] + [f"p_{c}" for c in range(outputs.shape[1])]
        outputs = np.column_stack([outputs.argmax(axis=1), softmax(outputs)])
    else:
        header = targets
    if args.out is None:
        print(",".join(header))
        for row in outputs:
            print(",".join(f"{v:.17g}" for v in row))
    else:
        np.savetxt(args.out, outputs, delimiter=",", header=",".join(header), comments="", fmt="%.17g")
        print(f"wrote {len(outputs)} predictions to {args.out}")


def formula(args):
    if args.digits is not None and args.digits < 0:
        raise UserError(f"--digits must be >= 0 (decimals kept), got {args.digits}")
    model, _, inputs, targets = _model_and_names(args.model)
    names = [_identifier(n) for n in inputs]
    try:
        trees = formula_trees(model, var_names=names)
        formulas = model.symbolic_formula(var_names=inputs) if not (args.latex or args.python) else None
    except ValueError as exc:
        raise UserError(f"{args.model} has no formula yet: {exc} (train with --symbolic)") from None
    if args.python:
        print(python_function(trees, names, [_identifier(t) for t in targets], args.model))
        return
    for target, formula, tree in zip(targets, formulas or trees, trees):
        if args.latex:
            print(f"{target} = {expr.latex(tree, args.digits)}")
        else:
            print(f"{target} = {formula if args.digits is None else round_formula(formula, args.digits)}")


def _identifier(name):
    """A column name as a Python identifier (other characters become _)."""
    name = re.sub(r"\W", "_", name)
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"_{name}"


def python_function(trees, inputs, outputs, source):
    """A standalone Python module: one NumPy function computing every output of the formula."""
    lines, used = [], set()
    for output, tree in zip(outputs, trees):
        code, names = expr.code(tree, inputs)
        used.update(names)
        lines.append(f"    {output} = {code}")
    imports = ", ".join(sorted(used))
    return "\n".join([f'"""The formula of {source}, written by kanarray formula --python."""',
                      f"from numpy import {imports}" if imports else "import numpy",
                      "", "", f"def formula({', '.join(inputs)}):",
                      f'    """{", ".join(outputs)} from arrays (or numbers) of the inputs."""',
                      *lines, f"    return {', '.join(outputs)}", ""])


def plot(args):
    model, _, inputs, targets = _model_and_names(args.model)
    check_output_path(args.out)
    print(f"wrote {model.plot(args.out, var_names=inputs, out_names=targets)}")


def run(args):
    """Run the parsed command (kanarray.cli.build_parser)."""
    if getattr(args, "threads", None):
        cli_info.set_threads(args.threads)
    if args.command == "demo":
        if not args.no_plot:
            check_output_path(args.out)
        demo.run_demo(seed=args.seed, out=args.out, plot=not args.no_plot)
    elif args.command == "fit":
        comm = distributed.launched_world()
        say = print if comm is None or comm.Get_rank() == 0 else (lambda *a, **k: None)
        cli_fit.run(args, comm, lambda text: say(text, flush=True))
    elif args.command == "predict":
        predict(args)
    elif args.command == "formula":
        formula(args)
    elif args.command == "plot":
        plot(args)
    elif args.command == "info":
        print("\n".join(cli_info.info()))
    elif args.command == "bench":
        if args.repeats < 1:
            raise UserError(f"--repeats must be >= 1, got {args.repeats}")
        for what, ms, gflops in cli_info.bench(args.repeats):
            print(f"{what:<58s} {ms:10.3f} ms {gflops:8.2f} GFLOP/s")
