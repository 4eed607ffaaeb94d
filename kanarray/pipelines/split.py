"""The split route of kanarray.discover: a law of many inputs as laws of fewer, recursively.

    outcome = split_route(dataset, solve, finish, depth=2, scale=False, seed=0, deadline=None)

A law such as q (E + B v sin theta) is neither a sum of one-variable functions (the sum route's
pruned network) nor a product of them (the product route's log|y|), but it is built from
smaller laws that are. As in AI Feynman (Udrescu and Tegmark 2020), one surrogate network that
fits the data tells how (kanarray.analysis.structure, on the held-out rows), and the route takes
the first of these steps that applies:

1. inputs the output does not depend on are dropped: the real rows, fewer columns;
2. additive groups, f = g_1(x_A1) + g_2(x_A2) + ...: each g_k is read on its own, from the
   surrogate with every other input held at x0 (the training rows' medians),
   g_k(x_Ak) = f_s(x_Ak, x0_rest), and f = sum_k g_k - (K - 1) f_s(x0);
3. multiplicative groups, f = C + g_1(x_A1) g_2(x_A2) ...: the same with g_k = f_s(x_Ak,
   x0_rest) - C and f = C + prod_k g_k / (f_s(x0) - C)^(K - 1). structure() reads these on
   log|f|, with C = 0, and so only where f keeps one sign; elsewhere each input i is tested
   alone by the identity of a product, (f(x) - C)(f(x0) - C) = (f(x_i, x0_rest) - C)(f(x0_i,
   x_rest) - C), linear in C (least squares over the rows gives it), scored as rms(left -
   right) / rms(left) on the held-out rows and accepted below PRODUCT_TOL. q (E + B v sin theta)
   splits off q so, where E + B v sin theta changes sign; and the part b0 + c sin(d) that a sum
   split leaves of b + c sin(d) (each part of a sum carries a constant) splits into c and d;
4. pair symmetries, f depends on x_i and x_j only through x_i + x_j, x_i - x_j, x_i x_j or
   x_i / x_j: each such pair (disjoint pairs, best score first) becomes one new input, on the
   real rows, and the law has one input fewer per pair (a ratio is taken with the input
   farther from 0 below: u / z, not z / u, where u crosses 0).

Each smaller problem goes to `solve` (discover itself, with the split route one level shallower)
and its formulas (the Pareto front, passed or not: a sub-problem read from the surrogate carries
the surrogate's smooth error, so its own held-out check may refuse the right formula) are put
back together with sympy: new inputs replaced by the pair they stand for, groups summed or
multiplied, and every guard of the parts' library functions that takes one branch on the
training rows replaced by that branch (kanarray.symbolic.snap.drop_guards: each part writes 1/z
as sign(z)/Max(|z|, 1e-4), and once the parts are put together sympy cannot see that the guards
cancel; without this (x_1 - x_2)/x_3 came out as 12/5 - Max(1e-4, |12/5 - (x_1 - x_2)/x_3|)).
Every combination (at most MAX_PER_PART formulas per part, MAX_COMBINATIONS in all)
then gets its constants refitted on the real training rows and the held-out check of every
route (`finish`: kanarray.pipelines.check.check_formula against the surrogate's held-out
error); of those that pass, the one of fewest operations is snapped (stage 7) and returned. A
formula that fails is never returned.

Bounds: `depth` levels of splitting (discover's `split`, default 2: a sub-problem of a
sub-problem may still split, not further); only problems of 2 or more inputs split; the
surrogate must fit, held-out RMSE at most SURROGATE_SHARE x the labels' standard deviation or
SURROGATE_NOISE x the label noise it shows (kanarray.pipelines.check.noise_level), else the
route stops, since structure() reads a poor surrogate's derivatives, not the law's. Time:
`deadline` (a time.perf_counter() value, or None for none) is looked at before each part is
solved and before each combination is checked; past it the route gives up and says why (`solve`
is given the same deadline by its caller, kanarray.discover, which says how it is set).
"""
import itertools
import time

import numpy as np

from ..analysis.structure import structure
from ..core.metrics import rmse
from ..funcs.library import optional_sympy
from ..model import KAN
from ..symbolic.snap import drop_guards
from .check import noise_level
from .stages import run_stage

SURROGATE_STEPS = 50        # L-BFGS steps at grid 5 and again at the refined grid
SURROGATE_GRID = (5, 20)
SURROGATE_SHARE = 0.02      # a surrogate fits when its held-out RMSE is at most this x std(y)
SURROGATE_NOISE = 1.5       # ... or this x the label noise its residuals show
PRODUCT_TOL = 0.02          # the identity of a product holds below this relative score
MAX_PER_PART = 3            # formulas of each part's front put together
MAX_COMBINATIONS = 12       # combinations refitted and checked
NO_STRUCTURE = "the surrogate shows no group, symmetry or unused input to split on"
OUT_OF_TIME = "the split route's time ran out"


def split_route(dataset, solve, finish, depth=2, scale=False, seed=0, say=None, on_stage=None,
                deadline=None):
    """The module docstring's route on a dataset of one output (kanarray.create_dataset's dict).

    solve(sub_dataset, depth) -> a list of sympy formulas in x_1..x_k (k: the sub-problem's
        inputs), best first: what discover finds for a smaller problem; depth: the split levels
        it may still use
    finish(formula, network, snap) -> (formula, check) with snap False: constants refitted on
        the training rows, the held-out check against the labels with `network` the
        surrogate's held-out values (N_test,); with snap True, for a formula that passed: (the
        snapped formula, its check, [(formula, check) tried]). Only a formula whose check
        passed is returned
    depth   split levels left (>= 1)
    deadline  time.perf_counter() value past which the route gives up (None: no limit)
    -> {"stopped": None or why, "formula", "check", "candidates": [(formula, check)],
        "model": the surrogate or None, "steps": ["what was split", ...]}"""
    if not callable(solve) or not callable(finish):
        raise TypeError("solve and finish must be callable")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    say = say or (lambda text: None)
    on_stage = on_stage or (lambda name, model, t0: None)
    out = {"stopped": None, "formula": None, "check": None, "candidates": [], "model": None,
           "steps": []}
    x_train = np.asarray(dataset["train_input"], dtype=np.float64)
    x_test = np.asarray(dataset["test_input"], dtype=np.float64)
    y_test = np.asarray(dataset["test_label"], dtype=np.float64).reshape(-1)
    d = x_train.shape[1]
    if d < 2:
        out["stopped"] = "one input: nothing to split"
        return out

    t0 = time.perf_counter()
    model = surrogate(dataset, scale, seed)
    out["model"] = model
    on_stage(f"split surrogate [{d},{2 * d + 1},1]", model, t0)
    network = _predict(model, x_test)
    error = rmse(network, y_test)
    noise = noise_level(x_test, y_test - network)["sigma"]
    limit = max(SURROGATE_SHARE * float(np.std(y_test)), SURROGATE_NOISE * noise)
    if error > limit:
        out["stopped"] = (f"the surrogate does not fit: held-out RMSE {error:.3e} > {limit:.3e}")
        return out

    plan = split_plan(model, x_train, x_test)
    if plan is None:
        out["stopped"] = NO_STRUCTURE
        return out
    kind, detail = plan
    out["steps"].append(f"{kind}: {detail}")
    say(f"split route: {kind} {detail}")
    parts = sub_problems(kind, detail, dataset, model)
    sp = optional_sympy()
    names = [f"x_{i + 1}" for i in range(d)]
    late = (lambda: False) if deadline is None else (lambda: time.perf_counter() > deadline)
    found = []
    for part in parts:
        if late():
            out["stopped"] = (f"{OUT_OF_TIME} before the part of inputs {part['label']} "
                              f"({kind} split)")
            return out
        formulas = solve(part["data"], depth - 1)[:MAX_PER_PART]
        if not formulas:
            out["stopped"] = f"{kind} split: no formula for the part of inputs {part['label']}"
            return out
        found.append([_rename(sp, f, part["inputs"]) for f in formulas])
    tried, passed = [], []
    for combination in itertools.islice(itertools.product(*found), MAX_COMBINATIONS):
        formula = _combine(sp, kind, combination, parts, names)
        if formula is None:
            continue
        if late():
            out["stopped"] = f"{OUT_OF_TIME} while checking the {kind} split's formulas"
            break
        formula, check = finish(drop_guards(formula, names, x_train), network, False)
        tried.append((formula, check))
        out["check"] = out["check"] or check
        if check["passed"]:
            passed.append(formula)
    if passed:  # the shortest that passes, snapped (stage 7), even when time ran out
        out["stopped"] = None
        formula, out["check"], snapped = finish(min(passed, key=sp.count_ops), network, True)
        out["formula"] = formula
        tried += snapped
    out["candidates"] = tried
    if out["formula"] is None and out["stopped"] is None:
        reason = out["check"]["reason"] if out["check"] else "no combination evaluates"
        out["stopped"] = (f"the formula fails the held-out check: {reason} (after a {kind} "
                          f"split)")
    return out


def surrogate(dataset, scale=False, seed=0):
    """A [d, 2d+1, 1] KAN fitted to the training rows: SURROGATE_STEPS of L-BFGS at grid 5,
    refined to grid 20 and fitted again (with discover's input and label scaling when scale)."""
    x = dataset["train_input"]
    d = np.shape(x)[1]
    model = KAN([d, 2 * d + 1, 1], grid=SURROGATE_GRID[0], k=3, seed=seed)
    if scale:
        model = model.set_scaling(x, dataset["train_label"])
    model, _ = run_stage("split surrogate", model, dataset, opt="lbfgs",
                         steps=SURROGATE_STEPS, log=0)
    model, _ = run_stage("split surrogate refine", model, dataset,
                         lambda m: m.refine(SURROGATE_GRID[1], x=x), opt="lbfgs",
                         steps=SURROGATE_STEPS, log=0, update_grid=False)
    return model


def split_plan(model, x_train, x_test):
    """The first step of the module docstring that the surrogate shows -> (kind, detail) or
    None: ("drop", [kept inputs]), ("sum", groups), ("product", (groups, offset C)) or ("pairs",
    [(i, j, symmetry kind), ...])."""
    found = structure(model, x_test)
    d = x_test.shape[1]
    relevant = [i for i in range(d) if i not in found["irrelevant"]]
    if found["irrelevant"] and relevant:
        return "drop", relevant
    if len(found["additive"]) > 1:
        return "sum", found["additive"]
    groups = found["multiplicative"]
    if groups is not None and len(groups) > 1:
        return "product", (groups, 0.0)
    offset = _product_groups(model, x_train, x_test, relevant)
    if offset is not None:
        return "product", offset
    pairs, used = [], set()
    for s in sorted(found["symmetries"], key=lambda s: s["score"]):
        i, j = s["inputs"]
        if i not in used and j not in used:
            if s["kind"] == "x_i / x_j" and (np.min(np.abs(x_train[:, j]))
                                            < np.min(np.abs(x_train[:, i]))):
                i, j = j, i  # f of x_i / x_j is f of x_j / x_i: the denominator away from 0
            pairs.append((i, j, s["kind"]))
            used |= {i, j}
    return ("pairs", pairs) if pairs else None


def _product_groups(model, x_train, x_test, relevant):
    """Multiplicative groups of f - C with an offset C (0 where structure() found them on
    log|f|; a part of a sum split carries one): each input i for which (f(x) - C)(f(x0) - C) =
    (f(x_i, x0_rest) - C)(f(x0_i, x_rest) - C) holds (PRODUCT_TOL) is a factor of its own, the
    rest one group. The identity is linear in C, which least squares over the rows gives.
    -> (groups, C) or None."""
    x0 = np.median(x_train, axis=0)
    f = _predict(model, x_test)
    f0 = float(_predict(model, x0[None, :])[0])
    alone, offsets = [], []
    for i in relevant:
        only_i, but_i = np.tile(x0, (x_test.shape[0], 1)), x_test.copy()
        only_i[:, i] = x_test[:, i]
        but_i[:, i] = x0[i]
        fa, fb = _predict(model, only_i), _predict(model, but_i)
        slope = f + f0 - fa - fb       # f f0 - fa fb = C (f + f0 - fa - fb)
        if not np.any(slope):
            continue
        c = float(np.dot(slope, f * f0 - fa * fb) / np.dot(slope, slope))
        left, right = (f - c) * (f0 - c), (fa - c) * (fb - c)
        if (abs(f0 - c) >= 0.1 * np.sqrt(np.mean((f - c) ** 2))  # no ratio by a value near 0
                and np.sqrt(np.mean((left - right) ** 2))
                <= PRODUCT_TOL * np.sqrt(np.mean(left ** 2))):
            alone.append(i)
            offsets.append(c)
    rest = [i for i in relevant if i not in alone]
    groups = [[i] for i in alone] + ([rest] if rest else [])
    return (groups, float(np.median(offsets))) if len(groups) > 1 else None


def sub_problems(kind, detail, dataset, model):
    """The smaller datasets of a plan -> [{"data", "inputs": for each sub-input the parent's
    sympy-ready description (an input index, or (i, j, symmetry kind)), "label"}]."""
    xs = {part: np.asarray(dataset[f"{part}_input"], dtype=np.float64) for part in ("train", "test")}
    ys = {part: np.asarray(dataset[f"{part}_label"], dtype=np.float64).reshape(-1, 1)
          for part in ("train", "test")}
    if kind == "drop":
        data = {}
        for part in ("train", "test"):
            data[f"{part}_input"], data[f"{part}_label"] = xs[part][:, detail], ys[part]
        return [{"data": data, "inputs": list(detail), "label": detail}]
    if kind == "pairs":
        paired = {i for i, j, _ in detail} | {j for i, j, _ in detail}
        keep = [i for i in range(xs["train"].shape[1]) if i not in paired]
        data = {}
        for part in ("train", "test"):
            x = xs[part]
            columns = [x[:, keep]] + [_pair_values(x[:, i], x[:, j], s)[:, None]
                                      for i, j, s in detail]
            data[f"{part}_input"], data[f"{part}_label"] = np.hstack(columns), ys[part]
        return [{"data": data, "inputs": keep + list(detail), "label": detail}]
    x0 = np.median(xs["train"], axis=0)
    groups, offset = detail if kind == "product" else (detail, 0.0)
    parts = []
    for group in groups:  # "sum" and "product": each group read from the surrogate, less C
        data = {}
        for part in ("train", "test"):
            rows = np.tile(x0, (xs[part].shape[0], 1))
            rows[:, group] = xs[part][:, group]
            data[f"{part}_input"] = xs[part][:, group]
            data[f"{part}_label"] = _predict(model, rows).reshape(-1, 1) - offset
        parts.append({"data": data, "inputs": list(group), "label": group, "offset": offset,
                      "f0": float(_predict(model, x0[None, :])[0]) - offset})
    return parts


def _pair_values(a, b, kind):
    return {"x_i + x_j": a + b, "x_i - x_j": a - b, "x_i * x_j": a * b, "x_i / x_j": a / b}[kind]


def _rename(sp, formula, inputs):
    """A sub-problem's formula (in x_1..x_k, any assumptions) in the parent's inputs: x_m ->
    x_{inputs[m-1] + 1}, or the pair expression a new input stands for."""
    swap = {}
    for symbol in formula.free_symbols:
        m = int(symbol.name.split("_")[1]) - 1
        source = inputs[m]
        if isinstance(source, tuple):
            i, j, kind = source
            a, b = sp.Symbol(f"x_{i + 1}"), sp.Symbol(f"x_{j + 1}")
            swap[symbol] = {"x_i + x_j": a + b, "x_i - x_j": a - b, "x_i * x_j": a * b,
                            "x_i / x_j": a / b}[kind]
        else:
            swap[symbol] = sp.Symbol(f"x_{source + 1}")
    return formula.xreplace(swap)


def _combine(sp, kind, formulas, parts, names):
    """One formula of the parent from one formula per part; None where a part's formula names
    an input the parent does not have."""
    if any(not {s.name for s in f.free_symbols} <= set(names) for f in formulas):
        return None
    if kind in ("drop", "pairs"):
        return formulas[0]
    f0 = sp.Float(parts[0]["f0"])
    if kind == "sum":
        return sp.Add(*formulas) - (len(formulas) - 1) * f0
    return sp.Float(parts[0]["offset"]) + sp.Mul(*formulas) / f0 ** (len(formulas) - 1)


def _predict(model, x):
    """The surrogate's output at rows x (N, d) -> host float64 (N,)."""
    acts = model.forward_all(model.as_batch(np.asarray(x, dtype=np.float64)))
    return model.backend.to_numpy(acts[-1]).astype(np.float64)[:, 0]
