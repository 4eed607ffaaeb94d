"""From data to a checked formula in one call: the pipeline behind `kanarray demo`.

    result = discover(dataset, width=[2, 5, 1], lib=["x", "x^2", "sin", "exp"])
    result["formula"], result["report"]

The stages, for a network with one hidden layer:
1. fit with sparsity regularisation (lamb, lamb_entropy), so that few hidden nodes carry the
   function;
2. prune to the fewest hidden nodes that still fit: nodes ranked by how much their output edge
   varies on the data (node_variation), the top 1, 2, ... kept and retrained until the train
   RMSE is at most prune_tolerance x the labels' standard deviation;
3. refine the grid on the training inputs and train again;
4. auto_symbolic layer by layer: every edge of the first layer to its best library function
   (kanarray.symbolic.fit's score), then a fit so that the later layers' splines adapt to those
   exact functions, then the next layer. Fixing everything at once would ask the output edges
   to match splines shaped around the first layer's approximate curves: for x*y through
   [2, 2, 1] the hidden edges come out near-linear and the output splines only near-quadratic,
   close enough to a sine arch that the sine fits better than x^2;
5. the constants of the closed formula by Levenberg–Marquardt (KAN.fit_constants), and the
   formula's report (kanarray.symbolic.report) on the test split.
Stages 1-4 can fail for a given initialisation: the regularised fit collapses towards a
constant (train R^2 < COLLAPSE_R2), no pruned network fits, or an edge fits no library function
with R^2 >= 0.99. The pipeline then starts again from another initialisation, up to `inits` of
them, and says why it stopped when none gets through, instead of returning a wrong formula.
A collapse is retried from the same initialisation with lamb weakened by COLLAPSE_LAMB_FACTOR:
the regulariser outweighs the data term of labels with a small spread, which a new start would
not change; the other failures move on to a new initialisation.
Every decision is taken on the training rows; the test rows only score the result.
"""
import time
from typing import NamedTuple

import numpy as np

from ..core.checks import check_int, check_real
from ..core.network import Network
from ..symbolic.fit import resolve_lib
from ..training.objective import check_dataset
from ..model import KAN, from_state
from ..core.metrics import rmse
from ..symbolic.report import formula_report
from .stages import fix_layer_by_layer, run_stage

COLLAPSE_R2 = 0.5  # below this train R^2 the regularised fit explains (almost) nothing
COLLAPSED = "the regularised fit collapsed towards a constant"
COLLAPSE_LAMB_FACTOR = 0.1  # after a collapse the next initialisation gets lamb times this
REFIT = {"opt": "lbfgs", "steps": 30, "update_grid": False, "log": 0}  # after refine, between layers
DEAD_NODE = 1e-3  # a hidden node whose output varies less than this share of the largest is idle


def node_variation(model, x):
    """How much each hidden node of a one-hidden-layer model moves the output: the standard
    deviation over the rows of x of its output edge (summed over outputs), host (width[1],).

    Unlike the attribution scores (mean |phi|, kanarray.analysis.prune), a node whose edge is nearly
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
        candidate, _ = run_stage("prune", model, dataset,
                                 lambda m: keep_hidden_nodes(m, np.sort(order[:k]), x).prune_edge(x=x),
                                 opt="lbfgs", steps=steps, log=0)
        error = rmse(candidate(x), dataset["train_label"])
        if error <= tolerance or k == len(order):
            return candidate, error
    raise AssertionError("unreachable: the last candidate is always returned")


def _check_width(width):
    if (not isinstance(width, (list, tuple)) or len(width) != 3
            or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
                   for w in width)):
        raise ValueError(f"width must be [inputs, hidden, outputs] (one hidden layer of sum "
                         f"nodes, positive integers), got {width!r}")
    return [int(w) for w in width]


def discover(dataset, width, lib=None, seed=0, grid=5, refine_grid=20, steps=20, lamb=0.01,
             lamb_entropy=10.0, prune_tolerance=1e-2, inits=4, say=None, on_stage=None):
    """Run the pipeline of the module docstring on `dataset` (kanarray.create_dataset's dict).

    width           [inputs, hidden, outputs] of the starting network
    lib             library names for auto_symbolic (None: the whole default library)
    seed            seed of the first initialisation; the others are drawn from it
    grid, refine_grid, steps, lamb, lamb_entropy
                    starting grid, refined grid, steps of the regularised fit and its weights
    prune_tolerance a pruned network fits when its train RMSE <= this x std of the labels
    inits           attempts before giving up (a new initialisation each, or the same one
                    with a weaker lamb after a collapse)
    say             say(text) for what happens to each initialisation (default: silent)
    on_stage        on_stage(name, model, start_time) after every stage (the demo's table)
    -> {"model": the last model, "stopped": None or why no formula came out, "formula":
        the first output's formula (sympy expression or string) or None, "report":
        kanarray.symbolic.report.formula_report on the test split or None, "fixed": auto_symbolic's
        result, "init": the attempt that got through (0-based) or None, "lamb": the
        regularisation it was trained with}
    """
    width = _check_width(width)
    seed = check_int(seed, "seed", 0)
    check_dataset(Network(width), dataset)  # before minutes of training, not after
    if lib is not None:
        resolve_lib(lib)
    for name, value in (("say", say), ("on_stage", on_stage)):
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    grid = check_int(grid, "grid", 1)
    refine_grid = check_int(refine_grid, "refine_grid", 1)
    steps = check_int(steps, "steps", 1)
    inits = check_int(inits, "inits", 1)
    prune_tolerance = check_real(prune_tolerance, "prune_tolerance", minimum=0)
    lamb = check_real(lamb, "lamb", minimum=0)
    lamb_entropy = check_real(lamb_entropy, "lamb_entropy", minimum=0)
    say = say or (lambda text: None)
    on_stage = on_stage or (lambda name, model, t0: None)
    x_train, y_train = dataset["train_input"], dataset["train_label"]
    settings = _Settings(width, lib, grid, refine_grid, steps, lamb_entropy,
                         prune_tolerance * float(np.std(y_train)))
    result = {"model": None, "stopped": None, "formula": None, "report": None, "fixed": {},
              "init": None, "lamb": None}
    init, fresh = seed, 0  # fresh: initialisations drawn so far after the first
    for attempt in range(inits):
        label = "" if attempt == 0 else f", init {attempt + 1}"
        model, stopped, result["fixed"] = _symbolic_model(dataset, settings, init, lamb, label,
                                                          say, on_stage)
        result["model"], result["stopped"] = model, stopped
        if stopped is None:
            result["init"], result["lamb"] = attempt, lamb
            break
        say(f"  init {attempt + 1}: {stopped}")
        if stopped.startswith(COLLAPSED):  # lamb too strong for this data's scale, not a bad
            lamb *= COLLAPSE_LAMB_FACTOR   # start: the same start again, weaker
        else:
            fresh += 1
            init = int(np.random.default_rng([seed, fresh]).integers(2**31))
    if result["stopped"]:
        result["stopped"] += f" (the last of {inits} attempts)"
        return result

    t0 = time.perf_counter()
    model.fit_constants(x_train, y_train)
    on_stage("symbolic fine-tune", model, t0)
    result["formula"] = model.symbolic_formula()[0]
    result["report"] = formula_report(model, dataset["test_input"], dataset["test_label"],
                                      edge_fits=result["fixed"])
    return result


class _Settings(NamedTuple):
    """discover's options that every attempt uses."""

    width: list
    lib: object
    grid: int
    refine_grid: int
    steps: int
    lamb_entropy: float
    tolerance: float


def _symbolic_model(dataset, settings, init, lamb, label, say, on_stage):
    """Stages 1-4 from one initialisation -> (model, None, fixed) or (model so far, why it
    stopped, fixed): fixed is auto_symbolic's result so far."""
    x_train, y_train = dataset["train_input"], dataset["train_label"]
    t0 = time.perf_counter()
    model, _ = run_stage("fit", KAN(settings.width, grid=settings.grid, k=3, seed=init), dataset,
                         opt="lbfgs", steps=settings.steps, lamb=lamb,
                         lamb_entropy=settings.lamb_entropy, log=0)
    on_stage(f"fit [{','.join(map(str, settings.width))}] + reg{label}", model, t0)
    r2 = model.score(x_train, y_train)
    if r2 < COLLAPSE_R2:
        return model, f"{COLLAPSED} (train R^2 = {r2:.3f} < {COLLAPSE_R2}, lamb = {lamb:g})", {}
    t0 = time.perf_counter()
    model, error = prune_to_fewest_nodes(model, dataset, settings.tolerance)
    on_stage("prune + fit" + label, model, t0)
    if error > settings.tolerance:
        return model, (f"no pruned network fits the data: train RMSE {error:.3e} > "
                       f"{settings.tolerance:.3e} (the pruning tolerance x the labels' std)"), {}
    t0 = time.perf_counter()
    model, _ = run_stage("refine", model, dataset, lambda m: m.refine(settings.refine_grid, x=x_train),
                         **REFIT)
    on_stage(f"refine grid {settings.refine_grid} + fit" + label, model, t0)
    t0 = time.perf_counter()
    model, fixed = fix_layer_by_layer(model, x_train, settings.lib,
                                      lambda m: run_stage("refit", m, dataset, **REFIT)[0])
    on_stage("auto-symbolic" + label, model, t0)
    left = sorted(edge for edge, (name, _) in fixed.items() if not name)
    if left:
        for (l, i, j), (name, r2) in sorted(fixed.items()):
            say(f"  edge ({l},{i},{j}) -> {name or 'spline':<6s} best R^2 = {r2:.10f}")
        return model, (f"{len(left)} edge(s) fit no library function with R^2 >= 0.99 and "
                       f"stay splines: {left}"), fixed
    return model, None, fixed
