"""From data to a checked formula in one call: the pipeline behind `kanarray demo`.

Why one module: the routes share the stages below, the settings and the outcome they return;
the split route's glue (_split) calls discover itself on each smaller problem.

    result = discover(dataset, width=[2, 5, 1], lib=["x", "x^2", "sin", "exp"])
    result["formula"], result["report"], result["check"]

The stages, for a network with one hidden layer:
0. the label noise: the starting network fitted without regularisation at the starting and at
   the refined grid, and the part of its held-out error that does not vary smoothly with the
   inputs, the smaller of the two (kanarray.pipelines.check.noise_level: about the noise on
   noisy labels, below the network's error on noise-free data);
1. fit with sparsity regularisation (lamb, lamb_entropy), so that few hidden nodes carry the
   function;
2. prune to the fewest hidden nodes that still fit: nodes ranked by how much their output edge
   varies on the data (node_variation), the top 1, 2, ... kept and retrained until the train
   RMSE is at most the pruning tolerance, prune_tolerance x the labels' standard deviation or
   PRUNE_NOISE x the noise of stage 0, whichever is larger (no network fits below the noise);
3. refine the grid on the training inputs and train again;
4. auto_symbolic layer by layer: every edge of the first layer to its best library function
   (kanarray.symbolic.fit's score), then a fit so that the later layers' splines adapt to those
   exact functions, then the next layer. Fixing everything at once would ask the output edges
   to match splines shaped around the first layer's approximate curves: for x*y through
   [2, 2, 1] the hidden edges come out near-linear and the output splines only near-quadratic,
   close enough to a sine arch that the sine fits better than x^2;
5. the constants of the closed formula by Levenberg–Marquardt on the training rows: with sympy
   those of the formula itself (kanarray.symbolic.snap.refit_constants, sympy's derivatives
   for the Jacobian), in the labels' units whatever the route; the network's own
   (KAN.fit_constants) once the formula has passed stage 6, so that the two agree. Without
   sympy the network's alone, and stage 6 reads the formula's values from the network;
6. the held-out check (kanarray.pipelines.check.check_formula), on the test split. With e_f the
   formula's RMSE against the labels there and e_n that of the network it was read from (stage
   3's): the formula passes when e_f <= 1e-7 x the labels' RMS (it fits to round-off, as a
   true formula of noise-free data does), or when e_f <= 1.1 x e_n and the formula's residuals
   look like label noise (they do not vary smoothly with the inputs, as a misfit's do: nearest
   held-out neighbours miss by unrelated amounts, and an F test finds no smooth function of
   each input or of the formula's values in them). A
   formula that fails is never returned: discover stops and says why, with these numbers;
7. with sympy, the formula's numbers snapped to 0, small rationals and rational multiples of pi
   and sqrt(2) (kanarray.symbolic.snap), each snap kept only when the formula still passes the
   check and its held-out RMSE stays within the round-off limit or grows by at most SNAP_SLACK
   (when the formula passed as label noise, by at most the RMSE's own sampling spread,
   1/sqrt(2 n) on n held-out rows, if that is larger: a snap that moves the error less than
   that cannot be told from the noise, and refusing it left 0.4996*x_1**(22/(7*pi))*x_2**2
   where the data said 0.5*x_1*x_2**2 with 1% label noise);
   the formula is also tried with its products expanded (x*y then reads x_1*x_2, not a
   difference of squares) and in its straight form: the parts in one variable and the
   functions that the training rows see only along a nearly straight piece written as lines
   (kanarray.symbolic.snap.linearize; on noisy labels m*r*v*sin(theta) was first read as
   709*m*r*v*(1 - exp(-0.0014*sin(theta))), and 2 pi g B J mom / h as
   343*B*J*mom*exp(-6/sqrt(g + 14/11))/h)
   and the guards that take one branch on every training row as that branch; the shortest
   that passes kept.

Three routes run these stages. The sum route takes the data as given. When the labels keep one
sign and none is 0, there is one output and sympy is installed, the product route
(kanarray.pipelines.products) fits log|y| as a sum of one-variable functions, positive inputs
as their logarithms, through [inputs, 1] (one edge per input: no hidden node to regularise or
prune, so stages 1-2 are one unregularised fit that must reach the pruning tolerance, else the
data are not a product of one-variable factors and the route stops at once, and the edges of
inputs that barely move the output are masked), and reads the
formula back as sign * exp(...): products and ratios of powers come out as x_1*x_2 and
x_1/x_2**2. When both stopped (the product route not for want of a sum of one-variable
functions on log|y|, which would say there is no product of them either), or when the labels
change sign, the factors route fits y as C + g_1(x_1) g_2(x_2) ... g_n(x_n), a product of
one-variable functions, through [inputs, [0, 1], 1]: one multiplication node of n factors,
each fed by its own input only (the other edges masked), and a straight output edge, on
scaled inputs and labels, with the sum route's estimate of the label noise (its own network
would count what it misses of a law that is no product as noise). Its fit, unlike the product route's, depends on the start (a sign
change must go through one factor), so a fit that misses the pruning tolerance at the
starting grid and at the refined one moves to a new start, up to `inits`; its edges and
formula go through the same stages. It reads the products whose labels change sign,
r F sin(theta) and -p E cos(theta), which log|y| cannot take. discover returns the route whose
formula passes the check with the fewest operations (sympy's count_ops), the sum route at a
tie; when none passes it says why each stopped.

With discover(..., split=2) (off by default: it recovers some laws the other routes cannot
and costs up to its time budget on every law they cannot solve; the Feynman results of
bench/feynman_recovery.py are measured without it), when every route stopped (one output,
2+ inputs, sympy), the split route
(kanarray.pipelines.split) fits one surrogate network, reads its structure
(kanarray.analysis.structure) and splits the law into smaller ones: unused inputs dropped,
additive or multiplicative groups read from the surrogate, pairs that enter only as a sum,
difference, product or ratio replaced by one input. Each smaller problem runs discover again
(at most SPLIT_INITS attempts per route, `split` levels deep in all: each level multiplies
the time), and the formulas put back together are refitted on the training rows,
checked (stage 6, against the surrogate's held-out error) and snapped (stage 7) like any
other route's. The split route has a time budget, `split_time` seconds for it and all its
smaller problems (default SPLIT_TIME_FACTOR x the seconds the sum and product routes took,
at least SPLIT_MIN_TIME): past it, it gives up and says why, so that a law it cannot split costs
about as much as a few more attempts of the other routes, not minutes. Measured (one thread,
a shared 2-core VM): (x_1 - x_2)/x_3 on [1, 3] comes out as that through two pair steps for
2 of 3 seeds (25-53 s; tests/test_split.py), x_1 x_2 + x_3 on [-1, 1] as that in 63 s, and
Feynman I.13.4 (m (v^2 + u^2 + w^2) / 2) exact in 77 s; a (b + c sin d) needs 3 levels and
was not recovered at 3 (held-out RMSE 3e-4, refused by the check).

Stages 1-4 can fail for a given initialisation: the regularised fit collapses towards a
constant (train R^2 < COLLAPSE_R2), no pruned network fits, or an edge fits no library function
with R^2 >= 0.99. The route then starts again from another initialisation, up to `inits` of
them, and says why it stopped when none gets through, instead of returning a wrong formula.
A collapse is retried from the same initialisation with lamb weakened by COLLAPSE_LAMB_FACTOR:
the regulariser outweighs the data term of labels with a small spread, which a new start would
not change; the other failures move on to a new initialisation. A formula that fails the
check ends its route.
The training rows decide every fit, pruning and edge; the test rows are held out from all of
them and serve for the noise estimate, the check and the snapping: they validate the formula,
so score it on other data.
"""
import time
from typing import NamedTuple

import numpy as np

from ..core.checks import check_bool, check_int, check_real
from ..core.network import Network
from ..funcs.library import optional_sympy
from ..symbolic.fit import resolve_lib
from ..symbolic.formula import check_var_names, formula_function
from ..symbolic.snap import drop_guards, linearize, refit_constants, snap_constants
from ..training.objective import check_dataset
from ..model import KAN, from_state
from ..core.metrics import rmse
from .check import check_formula, noise_level
from .products import log_dataset
from .split import OUT_OF_TIME, split_route
from .stages import fix_layer_by_layer, run_stage

COLLAPSE_R2 = 0.5  # below this train R^2 the regularised fit explains (almost) nothing
COLLAPSED = "the regularised fit collapsed towards a constant"
COLLAPSE_LAMB_FACTOR = 0.1  # after a collapse the next initialisation gets lamb times this
REFIT = {"opt": "lbfgs", "steps": 30, "update_grid": False, "log": 0}  # after refine, between layers
DEAD_NODE = 1e-3  # a hidden node whose output varies less than this share of the largest is idle
PRUNE_NOISE = 1.5  # a pruned network fits when its train RMSE is at most this x the noise
SNAP_SLACK = 1e-3  # a snapped number may raise the formula's held-out RMSE by this share
STRAIGHT_ROUNDS = 2  # stage 7: snap, then snap the straight form of the best once more
SPLIT_INITS = 2  # attempts per route of a split's smaller problems (each level multiplies time)
SPLIT_TIME_FACTOR = 4.0  # the split route's default time: this x the other routes' time ...
SPLIT_MIN_TIME = 30.0    # ... and at least these seconds
FAILED_CHECK = "the formula fails the held-out check"
NOT_SEPARABLE = "no sum of one-variable functions fits the data"
NOT_A_PRODUCT = "no product of one-variable functions fits the data"
FACTORS_STEPS = 50  # the factors route's fit: a product is slower to fit than a sum
NO_PRUNED_FIT = "no pruned network fits the data"


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
             lamb_entropy=10.0, prune_tolerance=1e-2, inits=4, products=True, scale=False,
             split=0, say=None, on_stage=None, split_time=None):
    """Run the pipeline of the module docstring on `dataset` (kanarray.create_dataset's dict).

    width           [inputs, hidden, outputs] of the starting network
    lib             library names for auto_symbolic (None: the whole default library)
    seed            seed of the first initialisation; the others are drawn from it
    grid, refine_grid, steps, lamb, lamb_entropy
                    starting grid, refined grid, steps of the regularised fit and its weights
    prune_tolerance a pruned network fits when its train RMSE <= this x std of the labels (or
                    PRUNE_NOISE x the label noise, when larger)
    inits           attempts per route before giving up (a new initialisation each, or the
                    same one with a weaker lamb after a collapse)
    products        also try the product route on log|y| when the labels keep one sign, and
                    the factors route when the others stop (one output, sympy installed; the
                    factors route 2+ inputs)
    split           levels of the split route (kanarray.pipelines.split) when every other
                    route stopped (one output, 2+ inputs, sympy installed): 0 (default) never,
                    2 the tested depth; each smaller problem runs discover with split one lower
    split_time      seconds the split route may take in all, its smaller problems included
                    (None: SPLIT_TIME_FACTOR x the seconds the other routes took on this data,
                    at least SPLIT_MIN_TIME); past them it gives up and says why
    scale           every network maps its route's training inputs onto its grid and
                    standardises the labels (KAN.set_scaling), for data in raw units (inputs far
                    outside [-1, 1], labels of any size); the formula still reads in the raw
                    variables and units
    say             say(text) for what happens to each route and initialisation (default:
                    silent)
    on_stage        on_stage(name, model, start_time) after every stage (the demo's table); the
                    product route's stages are named "log|y| ...", and their models take the
                    logged inputs and give log|y|
    -> {"model": the last model of the route returned (the sum route's when both stopped),
        "stopped": None or why no formula came out, "formula": the first output's formula
        (sympy expression, or a string without sympy) or None, "report": {"formulas",
        "edges", "max_gap", "rmse"} as kanarray.symbolic.report.formula_report writes them,
        on the test split (max_gap: to the symbolic network, before any snap), or None,
        "check": the held-out check of the first output (kanarray.pipelines.check.
        check_formula) or None, "route": "sum", "product", "factors" or "split", "noise":
        the route's noise_level, "fixed": auto_symbolic's result, "init": the attempt that got
        through (0-based) or None, "lamb": the regularisation it was trained with, "routes": per
        route tried, {"route", "stopped", "formula", "operations", "check", "noise"},
        "front": the Pareto front of the first output's formulas over every route (with
        sympy; [] without): [{"route", "formula", "operations", "rmse" (held-out, against the
        labels), "passed" (the held-out check), "pick" (the formula returned)}], fewest
        operations first}
    """
    width = _check_width(width)
    seed = check_int(seed, "seed", 0)
    check_dataset(Network(width), dataset)  # before minutes of training, not after
    if lib is not None:
        resolve_lib(lib)
    for name, value in (("say", say), ("on_stage", on_stage)):
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    settings = _Settings(width, lib, check_int(grid, "grid", 1),
                         check_int(refine_grid, "refine_grid", 1), check_int(steps, "steps", 1),
                         check_real(lamb_entropy, "lamb_entropy", minimum=0),
                         check_real(prune_tolerance, "prune_tolerance", minimum=0),
                         check_int(inits, "inits", 1), check_bool(scale, "scale"),
                         say or (lambda text: None),
                         on_stage or (lambda name, model, t0: None), None, False)
    lamb = check_real(lamb, "lamb", minimum=0)
    split = check_int(split, "split", 0)
    if split_time is not None:
        split_time = check_real(split_time, "split_time", minimum=0)
    return _discover(dataset, settings, seed, lamb, check_bool(products, "products"), split,
                     split_time)


def _discover(dataset, settings, seed, lamb, products, split, split_time):
    """discover once its arguments are checked; the split route's smaller problems run it too,
    with their settings (settings.deadline: their caller's, which bounds their own)."""
    width = settings.width
    t0 = time.perf_counter()
    routes = [("sum", None)]
    if products and width[2] == 1 and optional_sympy() is not None:
        logged = log_dataset(dataset)
        if logged is not None:
            routes.append(("product", logged))
    outcomes = [_route(name, dataset, logged, settings, seed, lamb) for name, logged in routes]
    if (products and width[2] == 1 and width[0] >= 2 and optional_sympy() is not None
            and all(o["stopped"] for o in outcomes)
            and not any(o["route"] == "product" and o["stopped"].startswith(NOT_SEPARABLE)
                        for o in outcomes)):
        # the sum route's noise: a product network that misses reads its misfit as noise
        outcomes.append(_route("factors", dataset, None, settings, seed, lamb,
                               outcomes[0]["noise"]))
    if (split and width[2] == 1 and width[0] >= 2 and optional_sympy() is not None
            and all(o["stopped"] for o in outcomes)):
        spent = time.perf_counter() - t0
        budget = (split_time if split_time is not None
                  else max(SPLIT_MIN_TIME, SPLIT_TIME_FACTOR * spent))
        deadline = (time.perf_counter() + budget if settings.deadline is None
                    else settings.deadline)  # a smaller problem: what its caller has left
        settings.say(f"split route: {max(0.0, deadline - time.perf_counter()):.0f} s at most "
                     f"(the other routes took {spent:.0f} s)")
        outcomes.append(_split(dataset, settings._replace(deadline=deadline), seed, lamb, split))
    passed = [o for o in outcomes if o["stopped"] is None]
    if passed:
        best = min(passed, key=lambda o: o["operations"])  # the first, the sum route, at a tie
    else:
        best = dict(outcomes[0])
        if len(outcomes) > 1:
            best["stopped"] = "; ".join(f"{o['route']} route: {o['stopped']}" for o in outcomes)
    result = {key: best[key] for key in ("model", "stopped", "formula", "report", "check",
                                         "route", "noise", "fixed", "init", "lamb")}
    result["routes"] = [{key: o[key] for key in ("route", "stopped", "formula", "operations",
                                                 "check", "noise")} for o in outcomes]
    result["front"] = pareto_front([c for o in outcomes for c in o["candidates"]],
                                   None if best["stopped"] else best["formula"])
    if len(outcomes) > 1:
        said = [f"{o['route']} " + ("stopped" if o["stopped"] else f"{o['operations']} operations")
                for o in outcomes]
        settings.say(f"routes: {', '.join(said)}; returned: "
                     f"{'none' if best['stopped'] else best['route']}")
    return result


class _Settings(NamedTuple):
    """discover's options that every route and attempt uses."""

    width: list
    lib: object
    grid: int
    refine_grid: int
    steps: int
    lamb_entropy: float
    prune_tolerance: float
    inits: int
    scale: bool
    say: object
    on_stage: object
    deadline: object  # time.perf_counter() past which a split route's smaller problem gives up
    part: bool        # a split route's smaller problem: its formulas are not polished (below)


def _route(name, dataset, logged, settings, seed, lamb, noise=None):
    """Stages 0-7 on the data (logged None) or on the log|y| problem -> an outcome: the result's
    keys for this route, and "operations" (count_ops of the first formula; None when stopped).
    noise: stage 0's estimate to use (None: this route's own)."""
    data = dataset if logged is None else logged.data
    prefix = "" if logged is None else "log|y| "
    outcome = {"route": name, "model": None, "stopped": None, "formula": None, "report": None,
               "check": None, "noise": None, "fixed": {}, "init": None, "lamb": None,
               "operations": None, "candidates": []}
    width = ([settings.width[0], 1] if name == "product"
             else [settings.width[0], [0, 1], 1] if name == "factors" else settings.width)
    y_train = np.asarray(data["train_label"], dtype=np.float64)
    if noise is None:
        noise = _noise(data, settings, width, seed, prefix)
    outcome["noise"] = noise
    tolerance = max(settings.prune_tolerance * float(np.std(y_train)),
                    PRUNE_NOISE * noise["sigma"])
    settings.say(f"{name} route{' (on log|y|)' if logged is not None else ''}: label noise "
                 f"~{noise['sigma']:.3e} (held-out RMSE {noise['rmse']:.3e}, whiteness "
                 f"{noise['whiteness']:.2f}), pruning tolerance {tolerance:.3e}")
    init, fresh = seed, 0  # fresh: initialisations drawn so far after the first
    for attempt in range(settings.inits):
        if settings.deadline is not None and time.perf_counter() > settings.deadline:
            outcome["stopped"] = f"{OUT_OF_TIME} (after {attempt} attempt(s) of this route)"
            return outcome
        label = "" if attempt == 0 else f", init {attempt + 1}"
        model, stopped, outcome["fixed"], network = _symbolic_model(
            data, settings, width, init, lamb, tolerance, prefix, label)
        outcome["model"], outcome["stopped"] = model, stopped
        if stopped is None:
            outcome["init"], outcome["lamb"] = attempt, lamb
            break
        settings.say(f"  init {attempt + 1}: {stopped}")
        if stopped.startswith(NOT_SEPARABLE):  # the data's structure: no start changes it
            return outcome  # (a product's fit, NOT_A_PRODUCT, depends on its start: next one)
        if stopped.startswith(COLLAPSED):  # lamb too strong for this data's scale, not a bad
            lamb *= COLLAPSE_LAMB_FACTOR   # start: the same start again, weaker
        else:
            fresh += 1
            init = int(np.random.default_rng([seed, fresh]).integers(2**31))
    if outcome["stopped"]:
        outcome["stopped"] += f" (the last of {settings.inits} attempts)"
        return outcome
    return _formula(outcome, model, network, dataset, logged, settings, prefix)


def _split(dataset, settings, seed, lamb, depth):
    """The split route (kanarray.pipelines.split) -> an outcome as _route's: each smaller
    problem runs discover (the sum and product routes, and the split route `depth` - 1 levels
    deep) and offers the formulas of its front: those that passed first, fewest operations
    first, then the others by held-out RMSE. A smaller problem's formulas pass its check
    (stage 6) unpolished: no network fine-tune and no snap (stage 7), which cost most of its
    time (a minute of 60 s for y = x with 1/x in the library) and which the formulas put
    together get anyway. Each formula put together is refitted on the
    training rows and checked as stages 5-6, and the one returned snapped as stage 7."""
    x_train = np.asarray(dataset["train_input"], dtype=np.float64)
    y_train = np.asarray(dataset["train_label"], dtype=np.float64).reshape(-1)
    x_test = np.asarray(dataset["test_input"], dtype=np.float64)
    y_test = np.asarray(dataset["test_label"], dtype=np.float64).reshape(-1)
    names = [f"x_{i + 1}" for i in range(x_train.shape[1])]
    s = settings

    def solve(sub, left):
        k = np.shape(sub["train_input"])[1]
        found = _discover(sub, s._replace(width=[k, 2 * k + 1, 1],
                                          inits=min(s.inits, SPLIT_INITS),
                                          say=lambda text: s.say("  | " + text),
                                          on_stage=lambda name, model, t0: None,
                                          part=True),
                          seed, lamb, True, left, None)
        ranked = sorted(found["front"], key=lambda c: (not c["passed"],
                                                       c["operations"] if c["passed"] else 0,
                                                       c["rmse"]))
        return [c["formula"] for c in ranked]

    def finish(formula, network, snap):
        if snap:
            check = check_formula(x_test, y_test, formula_function(formula, names)(x_test),
                                  network)
            if s.part:  # a smaller problem's formula: its caller snaps what it puts together
                return formula, check, []
            return _snapped(formula, names, x_train, y_train, x_test, y_test, network, check)
        try:
            formula = refit_constants(formula, names, x_train, y_train)
            values = formula_function(formula, names)(x_test)
        except (ArithmeticError, ValueError, TypeError):  # a formula numpy cannot evaluate
            values = np.full_like(y_test, np.nan)
        return formula, check_formula(x_test, y_test, values, network)

    found = split_route(dataset, solve, finish, depth, s.scale, seed, s.say, s.on_stage,
                        s.deadline)
    sp = optional_sympy()
    outcome = {"route": "split", "model": found["model"], "stopped": found["stopped"],
               "formula": found["formula"], "report": None, "check": found["check"],
               "noise": None, "fixed": {}, "init": None, "lamb": lamb, "operations": None,
               "candidates": [_candidate("split", f, c) for f, c in found["candidates"]]}
    outcome["noise"] = (_noise_level(found["model"], dataset) if found["model"] is not None
                        else {"rmse": float("nan"), "whiteness": float("nan"),
                              "sigma": float("nan")})
    if found["formula"] is not None:
        outcome.update(init=0, operations=int(sp.count_ops(found["formula"])),
                       report={"formulas": [found["formula"]], "edges": {}, "max_gap": None,
                               "rmse": found["check"]["rmse"]})
    else:
        s.say(f"split route: {found['stopped']}")
    return outcome


def _formula(outcome, model, network, dataset, logged, settings, prefix):
    """Stages 5-7 for a route's all-symbolic model (network: the held-out predictions of the
    network it was read from, in the route's units) -> the outcome, completed or stopped."""
    data = dataset if logged is None else logged.data
    x_train = np.asarray(dataset["train_input"], dtype=np.float64)
    y_fit = np.asarray(dataset["train_label"], dtype=np.float64).reshape(x_train.shape[0], -1)
    x_test = np.asarray(dataset["test_input"], dtype=np.float64)
    y_test = np.asarray(dataset["test_label"], dtype=np.float64).reshape(x_test.shape[0], -1)
    to_labels = (lambda v: v) if logged is None else logged.labels
    network = to_labels(network)
    sp = optional_sympy()
    t0 = time.perf_counter()
    if sp is None:  # the formula is the symbolic network's: polish that
        model.fit_constants(data["train_input"], data["train_label"])
        formulas = model.symbolic_formula()
        values = to_labels(_outputs(model, data["test_input"]))
    else:  # the formula itself, in the labels' units (the product route's too)
        names = check_var_names(None, model)
        formulas = model.symbolic_formula()
        if logged is not None:
            formulas = [logged.read_back(formulas[0], names)]
        formulas = [refit_constants(f, names, x_train, y_fit[:, o]) for o, f in enumerate(formulas)]
        values = np.stack([formula_function(f, names)(x_test) for f in formulas], axis=1)
    checks = [check_formula(x_test, y_test[:, o], values[:, o], network[:, o])
              for o in range(y_test.shape[1])]
    failed = [(o, c) for o, c in enumerate(checks) if not c["passed"]]
    outcome["check"] = checks[0]
    if sp is not None:
        outcome["candidates"].append(_candidate(outcome["route"], formulas[0], checks[0]))
    if failed:
        settings.on_stage(prefix + "formula constants", model, t0)
        o, c = failed[0]
        where = f" (output {o + 1})" if y_test.shape[1] > 1 else ""
        outcome["stopped"] = f"{FAILED_CHECK}{where}: {c['reason']}"
        settings.say(f"  {outcome['stopped']}")
        return outcome

    report = {"formulas": formulas, "edges": outcome["fixed"], "max_gap": None,
              "rmse": checks[0]["rmse"]}
    if sp is not None and settings.part:  # the caller refits and snaps what it puts together
        outcome["operations"] = int(sp.count_ops(formulas[0]))
    elif sp is not None:
        model.fit_constants(data["train_input"], data["train_label"])  # the formula's network
        settings.on_stage(prefix + "symbolic fine-tune", model, t0)
        symbolic = to_labels(_outputs(model, data["test_input"]))
        with np.errstate(invalid="ignore"):
            report["max_gap"] = float(np.max(np.abs(values - symbolic)))
        t0 = time.perf_counter()
        for o, f in enumerate(formulas):
            formulas[o], checks[o], tried = _snapped(f, names, x_train, y_fit[:, o], x_test,
                                                     y_test[:, o], network[:, o], checks[o])
            if o == 0:
                outcome["candidates"] += [_candidate(outcome["route"], *t) for t in tried]
        report["rmse"] = float(np.sqrt(np.mean([c["rmse"] ** 2 for c in checks])))
        settings.on_stage(prefix + "snap constants", model, t0)
        outcome["operations"] = int(sp.count_ops(formulas[0]))
    else:
        settings.on_stage(prefix + "symbolic fine-tune", model, t0)
    outcome.update(formula=formulas[0], report=report, check=checks[0])
    return outcome


def _noise(data, settings, width, seed, prefix):
    """Stage 0: noise_level on the test split of `data` of the starting network fitted without
    regularisation, at the starting grid and again refined to refine_grid; the smaller of the
    two (each is the noise plus what its network misses, or fits of the noise: the coarse grid
    misses more of a smooth function, the fine one fits more of the noise)."""
    t0 = time.perf_counter()
    model, _ = run_stage("noise fit", _start(width, settings, seed, data), data,
                         opt="lbfgs", steps=settings.steps, log=0)
    levels = [_noise_level(model, data)]
    model, _ = run_stage("noise refine", model, data,
                         lambda m: m.refine(settings.refine_grid, x=data["train_input"]), **REFIT)
    levels.append(_noise_level(model, data))
    settings.on_stage(f"{prefix}noise fit [{','.join(map(str, width))}]", model, t0)
    return min(levels, key=lambda level: level["sigma"])


def _start(width, settings, seed, data):
    """A route's starting network, with the scaling of its training rows when settings.scale.
    The factors route's [inputs, [0, 1], 1]: one multiplication node of one factor per input,
    each factor's node fed by its own input only (the other edges masked)."""
    if _factors(width):  # always scaled: unscaled, 0 of 3 starts fitted x_1 sin(x_2) on
        model = KAN(width, grid=settings.grid, k=3, seed=seed, mult_arity=width[0])  # [1, 3] x [0, 5]
        model.layers[0].mask[...] = model.backend.asarray(np.eye(width[0]), model.dtype)
        return model.set_scaling(data["train_input"], data["train_label"])
    model = KAN(width, grid=settings.grid, k=3, seed=seed)
    return model.set_scaling(data["train_input"], data["train_label"]) if settings.scale else model


def _factors(width):
    return isinstance(width[1], list)


def _outputs(model, x):
    """A model's outputs on rows x, host float64; no warning about inputs outside a grid (the
    models here are the pipeline's own, between stages)."""
    return model.backend.to_numpy(model.forward_all(model.as_batch(x))[-1]).astype(np.float64)


def _noise_level(model, data):
    """noise_level of a model's residuals on the test split, the noisiest output's."""
    residual = (np.asarray(data["test_label"], dtype=np.float64).reshape(-1, model.width[-1])
                - _outputs(model, data["test_input"]))
    levels = [noise_level(data["test_input"], residual[:, o]) for o in range(residual.shape[1])]
    return max(levels, key=lambda level: level["sigma"])


def _snapped(formula, names, x_train, y_train, x_test, y_test, network, check):
    """Stage 7 for one output -> (formula, its check, [(formula, check) of every form tried]):
    the formula; its straight form, when that differs: functions that the training rows see
    only along a nearly straight piece written as lines (kanarray.symbolic.snap.linearize) and
    guards that take one branch on every training row as that branch (drop_guards), constants
    refitted; and the expanded form of each where expanding its products changes it, each
    snapped; the one with the fewest operations that passes. When the best snapped formula
    has a straight form in turn, that form and its expansion are snapped too (STRAIGHT_ROUNDS
    rounds in all)."""
    sp = optional_sympy()
    slack = SNAP_SLACK
    if check["rmse"] > check["exact_limit"]:  # passed as noise: the RMSE's sampling spread
        slack = max(slack, 1 / np.sqrt(2 * len(y_test)))
    limit = max(check["exact_limit"], (1 + slack) * check["rmse"])

    def checked(candidate):
        return check_formula(x_test, y_test, formula_function(candidate, names)(x_test), network)

    def accept(candidate):
        c = checked(candidate)
        return c["passed"] and c["rmse"] <= limit

    def straightened(form):
        """form's straight form, constants refitted, or None where nothing is straight."""
        straight = drop_guards(linearize(form, names, x_train), names, x_train)
        return None if straight == form else refit_constants(straight, names, x_train, y_train)

    def with_expanded(forms):
        out = []
        for form in forms:
            expanded = sp.expand(form, power_exp=False, power_base=False, log=False)
            out += [form] + ([expanded] if expanded != form else [])
        return out

    best, tried = None, []
    forms = with_expanded([formula] + [f for f in [straightened(formula)] if f is not None])
    for _ in range(STRAIGHT_ROUNDS):
        for form in forms:
            snapped = snap_constants(form, names, x_train, y_train, accept)
            tried += [(form, checked(form))] if form is not formula else []
            tried.append((snapped, checked(snapped)))
            ops = int(sp.count_ops(snapped))
            if accept(snapped) and (best is None or ops < best[0]):
                best = (ops, snapped)
        # snapping can leave a function nearly straight that was not: K*(exp(2.5e-6*sin(x)) - 1)
        again = None if best is None else straightened(best[1])
        if again is None:
            break
        forms = with_expanded([again])
    if best is None:  # no form passes as it is (expand moved round-off): keep the formula
        return formula, check, tried
    return best[1], checked(best[1]), tried


def _candidate(route, formula, check):
    """One point of the front: a formula of the first output, its size and held-out check."""
    sp = optional_sympy()
    return {"route": route, "formula": formula, "operations": int(sp.count_ops(formula)),
            "rmse": check["rmse"], "passed": bool(check["passed"])}


def pareto_front(candidates, pick=None):
    """The candidates no other beats in both operations and held-out RMSE (one per formula),
    fewest operations first, each next one longer and closer to the labels; the formula `pick`
    is on it (marked "pick": True) even where a candidate beats it (an unsnapped twin of
    fewer operations: 3.2*exp(0.5*a) counts 3, 16*exp(a/2)/5 counts 4)."""
    front, seen = [], set()
    for c in sorted(candidates, key=lambda c: (c["operations"], c["rmse"], not c["passed"])):
        if str(c["formula"]) in seen:
            continue
        seen.add(str(c["formula"]))
        c = {**c, "pick": pick is not None and str(c["formula"]) == str(pick)}
        if not front or c["rmse"] < front[-1]["rmse"] or c["pick"]:
            front.append(c)
    return front


def _symbolic_model(data, settings, width, init, lamb, tolerance, prefix, label):
    """Stages 1-4 from one initialisation -> (model, None, fixed, network) or (model so far, why
    it stopped, fixed, None): fixed is auto_symbolic's result so far, network the refined
    network's predictions on the test split (host float64, before its edges were fixed).
    width [inputs, hidden, outputs] runs every stage; [inputs, 1] (the product route's sum of
    one-variable functions, one edge per input) and [inputs, [0, 1], 1] (the factors route's
    product of one-variable functions) have no hidden node to prune or regularise away, and fit
    or not: at the starting grid, or else at the refined one."""
    x_train, y_train = data["train_input"], data["train_label"]
    on_stage = settings.on_stage
    factors = _factors(width)
    hidden = len(width) == 3 and not factors
    t0 = time.perf_counter()
    # the factors' grids stay on the scaled inputs: with grid updates 1 of 3 starts fitted
    # x_1 sin(x_2) on [1, 3] x [0, 5], without them 2 of 3
    model, _ = run_stage("fit", _start(width, settings, init, data), data,
                         opt="lbfgs", steps=FACTORS_STEPS if factors else settings.steps,
                         lamb=lamb if hidden else 0.0, lamb_entropy=settings.lamb_entropy,
                         log=0, update_grid=not factors)
    on_stage(f"{prefix}fit [{','.join(map(str, width))}]{' + reg' if hidden else ''}{label}",
             model, t0)
    if not hidden:
        error = rmse(model(x_train), y_train)
        if error > tolerance:  # a product of smooth factors can need the finer grid
            model, _ = run_stage("refine", model, data,
                                 lambda m: m.refine(settings.refine_grid, x=x_train), **REFIT)
            error = rmse(model(x_train), y_train)
        if error > tolerance:
            return model, (f"{NOT_A_PRODUCT if factors else NOT_SEPARABLE}: train RMSE "
                           f"{error:.3e} > {tolerance:.3e} (the pruning tolerance)"), {}, None
        if not factors:  # a masked factor would be 0: the product too
            model = model.prune_edge(x=x_train)  # inputs that barely move the output: no term
    else:
        r2 = model.score(x_train, y_train)
        if r2 < COLLAPSE_R2:
            return model, (f"{COLLAPSED} (train R^2 = {r2:.3f} < {COLLAPSE_R2}, "
                           f"lamb = {lamb:g})"), {}, None
        t0 = time.perf_counter()
        model, error = prune_to_fewest_nodes(model, data, tolerance)
        on_stage(f"{prefix}prune + fit{label}", model, t0)
        if error > tolerance:
            return model, (f"{NO_PRUNED_FIT}: train RMSE {error:.3e} > "
                           f"{tolerance:.3e} (the pruning tolerance)"), {}, None
    t0 = time.perf_counter()
    model, _ = run_stage("refine", model, data, lambda m: m.refine(settings.refine_grid, x=x_train),
                         **REFIT)
    on_stage(f"{prefix}refine grid {settings.refine_grid} + fit{label}", model, t0)
    network = _outputs(model, data["test_input"])
    t0 = time.perf_counter()
    model, fixed = fix_layer_by_layer(model, x_train, settings.lib,
                                      lambda m: run_stage("refit", m, data, **REFIT)[0])
    on_stage(f"{prefix}auto-symbolic{label}", model, t0)
    left = sorted(edge for edge, (name, _) in fixed.items() if not name)
    if left:
        for (l, i, j), (name, r2) in sorted(fixed.items()):
            settings.say(f"  edge ({l},{i},{j}) -> {name or 'spline':<6s} best R^2 = {r2:.10f}")
        return model, (f"{len(left)} edge(s) fit no library function with R^2 >= 0.99 and "
                       f"stay splines: {left}"), fixed, None
    return model, None, fixed, network
