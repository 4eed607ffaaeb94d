"""Whether a formula found from data is the true one: the rule kanarray's benchmarks count by.

    verdict = judge("0.5*x_1*x_2**2", "k*x**2/2", ["k", "x"], [(1, 5), (1, 5)])
    verdict["exact"], verdict["reason"]

A found formula is *exact* when both criteria hold:

1. accuracy: on `n_points` fresh points drawn uniformly in the variables' ranges, its relative
   RMSE against the truth, RMS(found - truth) / RMS(truth), is below EXACT_RMSE = 1e-6, or
   below NOISY_RMSE = 1e-3 when judged for data with label noise (noise=True). The found
   formula is evaluated as given, guards included;
2. length: it has at most the truth's operations + EXTRA_OPS (2).

Operations of an expression e: min(count_ops(e), count_ops(simplify(e))), sympy's count_ops
and simplify, i.e. the shorter of the expression as written and its simplification. count_ops
counts every addition, subtraction, multiplication, division, negation, power and function
application once; numbers and variables count none (so a fitted 0.0796 costs what 1/(4*pi)
costs, or less). The truth is counted without a tidy-up. The found formula is counted after
one that removes what fitting writes and a person would not, decided numerically on the same
points, with share = TIDY_SHARE x the accuracy tolerance:
- a guard (Abs, sign, Max, Min) that takes the same branch at every point becomes that branch:
  kanarray writes log z as log(Max(|z|, 1e-4)) and sqrt z as sqrt(Max(z, 0)), which on data
  where z > 1e-4 are plain log z and sqrt z;
- a term of a sum whose RMS is at most share x the sum's RMS is dropped (in x*y + 1e-12*x**2,
  the second term is round-off of the fit);
- a number within share (relative) of a non-zero integer becomes that integer
  (1.0000000002*x reads x, x**1.999999999999 reads x**2).
A found formula that is not accurate is not simplified (it is not exact whatever its length,
and simplifying a long formula can take minutes): its operations are count_ops of the tidied
form.

Variables are named in `variables`; a formula may also write the i-th of them x_i (1-based, as
kanarray's formulas do) where no variable is named x_i. Strings are parsed by sympy, which
evaluates them: judge only text you trust. Symbols are declared real, and positive
(non-negative) where their range lies above (at or above) 0, so that simplify may use it
(sqrt(x**2) = x).

sympy is the `symbolic` extra; it is imported on the first call.
"""
import numbers

import numpy as np

from ..core.checks import check_bool, check_int, check_seed
from ..funcs import library as slib
from .snap import bottom_up, fixed_branch, point_values as _values

EXACT_RMSE = 1e-6  # relative RMSE below which a formula fits noise-free data exactly
NOISY_RMSE = 1e-3  # the same for data with 1% label noise: the fit cannot be sharper
EXTRA_OPS = 2      # operations a found formula may have beyond the truth's
TIDY_SHARE = 0.1   # the tidy-up's share, as a fraction of the accuracy tolerance
GUARDS = ("Abs", "sign", "Max", "Min")


def judge(found, truth, variables, ranges, noise=False, rng=0, n_points=10_000):
    """Judge `found` against `truth` by the module docstring's two criteria.

    found, truth   sympy expressions or formula strings in `variables` (or x_1..x_n)
    variables      the variables' names, e.g. ["m", "v"]
    ranges         one (low, high) per variable, low < high: where the points are drawn
    noise          False: tolerance EXACT_RMSE; True: NOISY_RMSE (data with label noise)
    rng            seed (integer >= 0) or numpy Generator drawing the points
    n_points       how many points
    -> {"exact": both criteria hold, "accurate", "short": each criterion,
        "rel_rmse": relative RMSE (None when found is not finite at every point),
        "tolerance", "ops_found", "ops_truth", "ops_allowed" (ops_truth + EXTRA_OPS),
        "found", "truth": the forms that were counted (strings),
        "reason": which criteria failed and by how much ("" when exact),
        "note": what the tidy-up and simplification changed ("" when nothing)}
    """
    sp = _sympy()
    noise = check_bool(noise, "noise")
    n_points = check_int(n_points, "n_points", 2)
    symbols, bounds = _check_variables(sp, variables, ranges)
    found_expr = _as_expression(sp, found, "found", symbols)
    truth_expr = _as_expression(sp, truth, "truth", symbols)
    generator = _generator(rng)
    low, high = bounds[:, 0], bounds[:, 1]
    points = low + (high - low) * generator.random((n_points, len(symbols)))
    columns = list(points.T)
    tolerance = NOISY_RMSE if noise else EXACT_RMSE

    t = _values(sp, truth_expr, symbols, columns)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"truth is not finite at {int(np.sum(~np.isfinite(t)))} of {n_points} "
                         f"points in the ranges: {truth_expr}")
    scale = float(np.sqrt(np.mean(t ** 2)))
    if scale == 0:
        raise ValueError(f"truth is 0 at every point in the ranges: {truth_expr}")
    f = _values(sp, found_expr, symbols, columns)
    finite = np.isfinite(f)
    rel_rmse = float(np.sqrt(np.mean((f - t) ** 2)) / scale) if np.all(finite) else None
    accurate = rel_rmse is not None and rel_rmse < tolerance

    tidied, changes = _tidy(sp, found_expr, symbols, columns, TIDY_SHARE * tolerance)
    if accurate:
        ops_found, found_counted = operations(tidied)
    else:  # not exact whatever its length: simplify could take minutes on a long formula
        ops_found, found_counted = int(sp.count_ops(tidied)), tidied
        changes.append("counted as written (not simplified: not accurate)")
    ops_truth, truth_counted = operations(truth_expr)
    allowed = ops_truth + EXTRA_OPS
    short = ops_found <= allowed

    reasons = []
    if rel_rmse is None:
        reasons.append(f"not finite at {int(np.sum(~finite))} of {n_points} points")
    elif not accurate:
        reasons.append(f"relative RMSE {rel_rmse:.2e} >= {tolerance:g}")
    if not short:
        reasons.append(f"{ops_found} operations > {ops_truth} of the truth + {EXTRA_OPS}")
    written = int(sp.count_ops(found_expr))
    if written != ops_found:
        changes.append(f"{written} operations as written, {ops_found} counted")
    return {"exact": accurate and short, "accurate": accurate, "short": short,
            "rel_rmse": rel_rmse, "tolerance": tolerance, "ops_found": ops_found,
            "ops_truth": ops_truth, "ops_allowed": allowed, "found": str(found_counted),
            "truth": str(truth_counted), "reason": "; ".join(reasons), "note": "; ".join(changes)}


def operations(expr):
    """(operations, the form counted) of a sympy expression: the shorter of expr and
    sympy.simplify(expr) by sympy.count_ops, the written form when they tie."""
    sp = _sympy()
    simple = sp.simplify(expr)
    written, simplified = int(sp.count_ops(expr)), int(sp.count_ops(simple))
    return (simplified, simple) if simplified < written else (written, expr)


def _tidy(sp, expr, symbols, columns, share):
    """expr without the guards, terms and near-integers of the module docstring's tidy-up,
    decided on the points `columns` (one array per symbol) -> (expr, [what changed])."""
    counts = {"guard(s)": 0, "negligible term(s)": 0}

    def rule(e):
        if e.func.__name__ in GUARDS:
            branch = fixed_branch(sp, e, symbols, columns)
            if branch is not None:
                counts["guard(s)"] += 1
                return branch
        if isinstance(e, sp.Add):
            kept = _kept_terms(sp, e, symbols, columns, share)
            if len(kept) < len(e.args):
                counts["negligible term(s)"] += len(e.args) - len(kept)
                return sp.Add(*kept)
        return e

    out = bottom_up(expr, rule)
    snap = {}
    for number in out.atoms(sp.Float):
        nearest = round(float(number))
        if nearest != 0 and abs(float(number) - nearest) <= share * abs(float(number)):
            snap[number] = sp.Integer(nearest)
    out = out.xreplace(snap) if snap else out
    changes = [f"{n} {what} removed" for what, n in counts.items() if n]
    if snap:
        changes.append(f"{len(snap)} near-integer(s) snapped")
    return out, changes


def _kept_terms(sp, add, symbols, columns, share):
    """The terms of a sum whose RMS exceeds share x the sum's RMS (all of them when none does)."""
    rms = lambda v: float(np.sqrt(np.mean(v ** 2)))
    total = rms(_values(sp, add, symbols, columns))
    if not np.isfinite(total) or total == 0:
        return list(add.args)
    kept = [t for t in add.args if not rms(_values(sp, t, symbols, columns)) <= share * total]
    return kept or list(add.args)


def _sympy():
    sp = slib.optional_sympy()
    if sp is None:
        raise ImportError("kanarray.symbolic.judge needs sympy: pip install 'kanarray[symbolic]'")
    return sp


def _generator(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(check_seed(rng, "rng"))


def _check_variables(sp, variables, ranges):
    """(symbols with assumptions from the ranges, bounds (n, 2)) after checking both."""
    if isinstance(variables, str) or not isinstance(variables, (list, tuple)):
        raise TypeError(f"variables must be a list of names, got {type(variables).__name__}")
    if not variables or not all(isinstance(v, str) and v.isidentifier() for v in variables):
        raise ValueError(f"variables must be a non-empty list of identifiers, got {variables!r}")
    if len(set(variables)) != len(variables):
        raise ValueError(f"variables must be distinct, got {variables!r}")
    if isinstance(ranges, str) or not isinstance(ranges, (list, tuple, np.ndarray)):
        raise TypeError(f"ranges must be a list of (low, high) pairs, got {type(ranges).__name__}")
    if len(ranges) != len(variables):
        raise ValueError(f"ranges must give one (low, high) per variable ({len(variables)}), "
                         f"got {len(ranges)}")
    for pair in ranges:
        if not (isinstance(pair, (list, tuple, np.ndarray)) and len(pair) == 2
                and all(_is_real(b) for b in pair)):
            raise TypeError(f"ranges must hold (low, high) pairs of real numbers, got {pair!r}")
    bounds = np.asarray(ranges, dtype=np.float64)
    if not np.all(np.isfinite(bounds)) or not np.all(bounds[:, 0] < bounds[:, 1]):
        raise ValueError(f"ranges must be finite with low < high, got {ranges!r}")
    symbols = []
    for name, (low, _) in zip(variables, bounds):
        sign = {"positive": True} if low > 0 else {"nonnegative": True} if low == 0 else {}
        symbols.append(sp.Symbol(name, real=True, **sign))
    return symbols, bounds


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _as_expression(sp, formula, name, symbols):
    """formula (sympy expression or string) in `symbols`, its x_i read as the i-th symbol."""
    table = {s.name: s for s in symbols}
    for i, s in enumerate(symbols, start=1):
        table.setdefault(f"x_{i}", s)
    if isinstance(formula, str):
        try:
            expr = sp.sympify(formula, locals=dict(table))
        except (sp.SympifyError, SyntaxError, TypeError) as exc:
            raise ValueError(f"{name} is not a formula sympy can read: {formula!r} "
                             f"({exc})") from None
    elif isinstance(formula, sp.Expr):
        expr = formula.xreplace({s: table[s.name] for s in formula.free_symbols
                                 if isinstance(s, sp.Symbol) and s.name in table})
    else:
        raise TypeError(f"{name} must be a sympy expression or a formula string, "
                        f"got {type(formula).__name__}")
    if not isinstance(expr, sp.Expr):
        raise ValueError(f"{name} must be an expression, got {expr!r}")
    unknown = sorted(str(s) for s in expr.free_symbols if s not in symbols)
    if unknown:
        raise ValueError(f"{name} uses names that are not variables: {', '.join(unknown)}")
    undefined = sorted({f.func.__name__ for f in expr.atoms(sp.core.function.AppliedUndef)})
    if undefined:
        raise ValueError(f"{name} calls functions sympy does not know: {', '.join(undefined)}")
    return expr
