"""Constants that read right: a formula's fitted numbers replaced by 0, small rationals and
rational multiples of pi and sqrt(2) where the data allow, the others refitted.

    expr = snap_constants(expr, ["x_1", "x_2"], x_train, y_train, accept)

A fitted formula carries its constants in float64: 0.4999999999998*x_1**2.0000000000001 where a
person writes x_1**2/2, 0.0795774715459*q/r**2 where a person writes q/(4*pi*r**2), and terms
of round-off size (1e-13*x_1**2) where a person writes nothing. snap_constants tries, for every
number, 0, +-1 and the simple values within SNAP_REL of it, p/q * pi^(k/2) * sqrt(2)^m with
q <= MAX_DENOMINATOR, |k| <= 2, m in {-1, 0, 1} (1/(4*pi), 3/2, pi, 1/sqrt(2*pi) are all of this
form): all numbers' candidates in one queue, simplest first (simplicity(); the written order at
a tie), each pair once. A value is kept when, after the numbers still fitted are refitted to
(x, y) by least squares (as refit_constants does), `accept(formula)` says yes; then the queue is
drawn again from the refitted values. Simplest first across numbers matters with noisy data,
where a number may snap to a near value that the others' refit compensates within the noise:
the exponent of x**1.9992 then snaps to 2 before its prefactor 0.3995 can go to 2/5, and the
prefactor, refitted with the exponent exact, goes to 1/sqrt(2*pi). Whether a snap is good enough is the caller's to say, on rows the
refit did not see (kanarray.discover asks that the formula still passes its held-out check and
its held-out error does not grow).

Numbers that are the bounds of the library's guards (log(Max(|z|, 1e-4)), sqrt(Max(z, 0)): the
direct arguments of Max and Min) are neither snapped nor refitted: they say where a function
is defined, not what it computes.

drop_guards(expr, names, x) writes a formula as it reads on the rows x: every guard (Abs, sign,
Max, Min) that takes one branch at every row becomes that branch, so that sign(z)/Max(|z|,
1e-4) on rows where z > 1e-4 reads 1/z. A formula put together from other formulas (the split
route of kanarray.discover) needs this: each part carries its library functions' guards, and
after the parts are put together sympy cannot see that they cancel (12/5 - Max(1e-4, |12/5 - v|)
is v where v < 12/5 - 1e-4).

linearize(expr, names, x) writes as a straight line what the rows x see only along a nearly
straight piece, in two ways. A part of the formula in one variable only, built with functions,
whose least-squares line in that variable differs from it by at most LINE_TOL of its own
variation on the rows, becomes that line: a look-alike fitted to noisy labels read Feynman's
2 pi g B J mom / h as 343*B*J*mom*exp(-6/sqrt(g + 14/11))/h, whose exp(...) is within 1.4% of
a line in g on g in [1, 5] though neither exp nor sqrt is straight there. Then every function
g(a) left whose argument varies so little that g's tangent at a's mean differs from g by at
most LINEAR_TOL of g's own variation: 709*m*r*v*(1 - exp(-0.0014*sin(theta))) becomes
m*r*v*sin(theta) up to a constant. Refitting and snapping take care of the constants; the
caller decides, on held-out rows, whether the straight form is kept (kanarray.discover keeps
it only when it still passes its check).

sympy is the `symbolic` extra; scipy is imported on the first refit.
"""
from fractions import Fraction

import numpy as np

from ..funcs import library as slib

SNAP_REL = 1e-2       # a simple value is tried only within this relative distance of a number
MAX_DENOMINATOR = 12  # of the rationals tried
MAX_TRIES = 4         # simple values tried per number besides 0 and +-1 (each try is a refit)
GUARDS = ("Max", "Min")
BRANCHES = ("Abs", "sign", "Max", "Min")  # what drop_guards reads on the rows
LINEAR_TOL = 1e-2  # linearize: a tangent's largest gap on the rows, as a share of g's variation
LINE_TOL = 3e-2    # linearize: a one-variable part's largest gap to its least-squares line, as
                   # a share of its variation (look-alikes measured 1.4-1.6%; sqrt on [1, 5]: 14%)


def snap_constants(expr, names, x, y, accept):
    """`expr` (sympy, in the variables `names`, the i-th column of x each) with its numbers
    snapped as the module docstring says. y: labels (N,) of the rows x (N, len(names)) the
    refits use; accept(candidate expression) -> bool decides every snap. -> the new expression
    (equal to expr when no snap was kept)."""
    sp = _sympy()
    x, y = _check_rows(x, y, names)
    params, template, values, original = _parametrise(sp, expr)
    symbols = [sp.Symbol(n) for n in names]
    fitted_ones, tried = list(params), set()
    while fitted_ones:
        trials = sorted((simplicity(value), k, value) for k, param in enumerate(fitted_ones)
                        for value in candidates(values[param]) if (param, value) not in tried)
        for _, k, value in trials:
            param = fitted_ones[k]
            tried.add((param, value))  # each pair once: the work stays (numbers x candidates)
            trial = template.xreplace({param: value})
            if trial.has(sp.zoo, sp.oo, -sp.oo, sp.nan):  # a number snapped to 0 under a division
                continue
            free = [p for p in fitted_ones if p != param and trial.has(p)]
            fitted = _refit(sp, trial, free, {p: values[p] for p in free}, symbols, x, y)
            numbers = {p: sp.Float(v) for p, v in fitted.items()}
            candidate = trial.xreplace({**numbers, **original})
            if candidate.has(sp.zoo, sp.oo, -sp.oo, sp.nan):  # a refitted 0 under a division
                continue
            if accept(candidate):
                template = trial
                values.update(fitted)
                fitted_ones = free
                break
        else:
            break
    return template.xreplace({**{p: sp.Float(values[p]) for p in fitted_ones}, **original})


def refit_constants(expr, names, x, y):
    """`expr` with its numbers (guard bounds aside) refitted to (x, y) by Levenberg-Marquardt,
    starting where they are; expr itself when the fit does not lower the squared error."""
    sp = _sympy()
    x, y = _check_rows(x, y, names)
    params, template, values, original = _parametrise(sp, expr)
    fitted = _refit(sp, template, params, values, [sp.Symbol(n) for n in names], x, y)
    if fitted == values:
        return expr
    return template.xreplace({**{p: sp.Float(v) for p, v in fitted.items()}, **original})


def candidates(value):
    """The values snap_constants tries for a number (sympy numbers): 0; +-1 of the number's
    sign (which refitting the others can make exact where a formula carries a scale twice,
    c * f(x / c)); and the MAX_TRIES simplest values within SNAP_REL of `value`,
    p/q * pi^(k/2) * sqrt(2)^m, by simplicity()."""
    sp = _sympy()
    if value == 0 or not np.isfinite(value):
        return [sp.Integer(0)]
    unit = sp.Integer(1 if value > 0 else -1)
    near = []
    for k in range(-2, 3):
        for m in (-1, 0, 1):
            scale = np.pi ** (k / 2) * np.sqrt(2.0) ** m
            ratio = Fraction(value / scale).limit_denominator(MAX_DENOMINATOR)
            if ratio == 0 or abs(float(ratio) * scale - value) > SNAP_REL * abs(value):
                continue
            number = (sp.Rational(ratio.numerator, ratio.denominator) * sp.pi ** sp.Rational(k, 2)
                      * sp.sqrt(2) ** m)
            if number != unit and all(number != seen for seen in near):  # sqrt(2)^2 = 2
                near.append(number)
    return [sp.Integer(0), unit, *sorted(near, key=simplicity)[:MAX_TRIES]]


def simplicity(number):
    """How simple a sympy number reads, smaller first: (operations of |number| by sympy's
    count_ops, plus 1 for a factor of pi or sqrt(2); the denominator q and |numerator| p of its
    rational part). 0, 1, 2 come before 1/2, pi and 2/5, which come before 1/(4*pi)."""
    rational, rest = abs(number).as_coeff_Mul()
    ops = int(_sympy().count_ops(abs(number))) + (rest != 1)
    return ops, int(rational.q), abs(int(rational.p))


def _parametrise(sp, expr):
    """(params _c0, _c1, ... in the order the numbers are written, expr with them in place of
    its Floats, {param: float value}, {real symbol: the symbol of expr it stands for}); guard
    bounds stay numbers. Symbols of no declared sign are declared real in the template (the
    formulas' inputs are), so that Abs and sign differentiate in closed form."""
    bounds = {a for node in sp.preorder_traversal(expr) if type(node).__name__ in GUARDS
              for a in node.args if isinstance(a, sp.Float)}
    order = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Float) and node not in bounds and node not in order:
            order.append(node)
    params = [sp.Symbol(f"_c{k}", real=True) for k in range(len(order))]
    real = {s: sp.Symbol(s.name, real=True) for s in expr.free_symbols if s.is_real is None}
    template = expr.xreplace({**dict(zip(order, params)), **real})
    values = {p: float(f) for p, f in zip(params, order)}
    return params, template, values, {r: s for s, r in real.items()}


def _refit(sp, template, free, start, symbols, x, y):
    """{param: value} of the params `free` fitted to (x, y) by Levenberg-Marquardt from
    `start`, with sympy's derivatives for the Jacobian (finite differences where one is not in
    closed form); `start` itself when the fit fails or does not lower the squared error."""
    if not free or y.size <= len(free):
        return dict(start)
    from scipy.optimize import least_squares  # scipy loads only where it is used

    fn = sp.lambdify([*symbols, *free], template, modules="numpy")
    columns = list(x.T)

    def residuals(c):
        with np.errstate(all="ignore"):
            r = _as_real(fn(*columns, *c), y.shape) - y
        return np.where(np.isfinite(r), r, 1e150)  # a step into the undefined is rejected

    jac = "2-point"  # where sympy cannot differentiate in closed form
    # a guard's kink differentiates to a DiracDelta: 0 wherever the data are not on the kink
    derivatives = [sp.diff(template, p).replace(sp.DiracDelta, lambda *a: sp.Integer(0))
                   for p in free]
    if not any(d.has(sp.Derivative, sp.Subs) for d in derivatives):
        dfn = sp.lambdify([*symbols, *free], derivatives, modules="numpy")

        def closed_form(c):
            with np.errstate(all="ignore"):
                j = np.stack([_as_real(v, y.shape) for v in dfn(*columns, *c)], axis=1)
            return np.where(np.isfinite(j), j, 0.0)

        try:  # numpy may lack a function sympy wrote (then finite differences)
            closed_form(np.array([start[p] for p in free], dtype=np.float64))
            jac = closed_form
        except (NameError, TypeError, ValueError):
            pass

    c0 = np.array([start[p] for p in free], dtype=np.float64)
    before = float(np.sum(residuals(c0) ** 2))
    try:
        fit = least_squares(residuals, c0, jac=jac, method="lm", x_scale="jac", xtol=1e-15,
                            ftol=1e-15, gtol=1e-15, max_nfev=100 * (len(free) + 1))
    except (ValueError, np.linalg.LinAlgError):
        return dict(start)
    after = float(np.sum(residuals(fit.x) ** 2))
    if not (np.isfinite(after) and after < before):
        return dict(start)
    return {**start, **dict(zip(free, (float(v) for v in fit.x)))}


def _as_real(values, shape):
    """Values of a lambdified expression as float64 of `shape`; NaN where they are complex."""
    values = np.asarray(values)
    if np.iscomplexobj(values):
        values = np.where(values.imag != 0, np.nan, values.real)
    return np.broadcast_to(values.astype(np.float64), shape)


def drop_guards(expr, names, x):
    """`expr` (sympy, in the variables `names`, the i-th column of x each) with every guard of
    BRANCHES that takes one branch on all rows of x replaced by that branch, innermost first
    (the module docstring); guards that switch, or are not finite, stay."""
    sp = _sympy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"x must have one column per name ({len(names)}), got shape {x.shape}")
    symbols = {s: k for k, s in enumerate(sp.Symbol(n) for n in names)}
    plain = {s: sp.Symbol(s.name) for s in expr.free_symbols}  # any assumptions -> by name
    columns = [x[:, symbols[plain[s]]] if plain[s] in symbols else None
               for s in sorted(expr.free_symbols, key=str)]
    if not columns or any(c is None for c in columns):
        return expr
    order = sorted(expr.free_symbols, key=str)

    def nonzero(a):
        return bool(np.all(point_values(sp, a, order, columns) != 0))

    def rule(e):
        if type(e).__name__ in BRANCHES:
            branch = fixed_branch(sp, e, order, columns)
            if branch is not None:
                return branch
            if isinstance(e, sp.Abs) and isinstance(e.args[0], sp.sign) and nonzero(e.args[0]):
                return sp.Integer(1)  # |sign(a)| where a is never 0
        if isinstance(e, sp.Mul):
            return _signs_cancelled(sp, e, nonzero)
        return e

    return bottom_up(expr, rule)


def linearize(expr, names, x):
    """`expr` (sympy, in `names`, the i-th column of x each) with every largest part in one
    variable that holds a function and is nearly straight in that variable on the rows x
    replaced by its least-squares line, then every one-argument function and every power of a
    non-integer or negative exponent that is nearly straight replaced by its tangent at its
    argument's mean there (module docstring), innermost first. Guards (BRANCHES) stay, but
    for those inside a one-variable part that became a line. -> the new expression (expr
    itself when nothing is straight)."""
    sp = _sympy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"x must have one column per name ({len(names)}), got shape {x.shape}")
    index = {n: k for k, n in enumerate(names)}
    order = sorted(expr.free_symbols, key=str)
    if any(s.name not in index for s in order) or not order:
        return expr
    columns = [x[:, index[s.name]] for s in order]
    expr = _one_variable_lines(sp, expr, order, columns)
    z = sp.Dummy("z")

    def rule(e):
        if isinstance(e, sp.Pow) and e.exp.is_Number and not (e.exp.is_integer and e.exp > 0):
            inner, curve = e.base, z ** e.exp
        elif (isinstance(e, sp.Function) and len(e.args) == 1
              and type(e).__name__ not in BRANCHES):
            inner, curve = e.args[0], e.func(z)
        else:
            return e
        tangent = _tangent(sp, curve, z, point_values(sp, inner, order, columns))
        return e if tangent is None else tangent.subs(z, inner)

    return bottom_up(expr, rule)


def _one_variable_lines(sp, expr, symbols, columns):
    """expr with each largest subexpression that has one free symbol t, holds a function or a
    power of a non-integer or negative exponent and is not a bare power t**p (the tangent rule
    of linearize takes those), replaced by its least-squares line a + b t on the points, where
    that line's largest gap is within LINE_TOL of the subexpression's variation (largest
    distance from its mean). Guards inside such a part go with it: the line is what the part
    computes on the points."""
    column = dict(zip(symbols, columns))

    def curved(e):
        return any((isinstance(a, sp.Pow) and a.exp.is_Number
                    and not (a.exp.is_integer and a.exp > 0))
                   or (isinstance(a, sp.Function) and type(a).__name__ not in BRANCHES)
                   for a in sp.preorder_traversal(e))

    def visit(e):
        if not e.args:
            return e
        free = e.free_symbols
        if len(free) == 1 and curved(e) and not (isinstance(e, sp.Pow) and e.base in free):
            (t,) = free
            values = point_values(sp, e, [t], [column[t]])
            if np.all(np.isfinite(values)) and np.ptp(column[t]) > 0:
                rows = np.column_stack([np.ones_like(column[t]), column[t]])
                (a, b), *_ = np.linalg.lstsq(rows, values, rcond=None)
                gap = np.max(np.abs(values - rows @ np.array([a, b])))
                variation = np.max(np.abs(values - np.mean(values)))
                if variation > 0 and gap <= LINE_TOL * variation:
                    return sp.Float(a) + sp.Float(b) * t
        args = tuple(visit(a) for a in e.args)
        return e.func(*args) if args != e.args else e

    return visit(expr)


def bottom_up(expr, rule):
    """expr rewritten innermost first: every subexpression e, its arguments rewritten already,
    replaced by rule(e) (e itself to keep it)."""
    if not expr.args:
        return expr
    args = tuple(bottom_up(a, rule) for a in expr.args)
    return rule(expr.func(*args) if args != expr.args else expr)


def _tangent(sp, curve, z, a):
    """curve(z)'s tangent at the mean of the values a, when it stays within LINEAR_TOL of the
    curve's variation over a; else (or where the curve is not finite) None."""
    if not np.all(np.isfinite(a)) or np.ptp(a) == 0:
        return None
    a0 = float(np.mean(a))
    values = point_values(sp, curve, [z], [a])
    at = point_values(sp, curve, [z], [np.array([a0])])[0]
    slope = point_values(sp, sp.diff(curve, z), [z], [np.array([a0])])[0]
    if not (np.all(np.isfinite(values)) and np.isfinite(at) and np.isfinite(slope)):
        return None
    variation = np.max(np.abs(values - at))
    gap = np.max(np.abs(values - (at + slope * (a - a0))))
    if variation == 0 or gap > LINEAR_TOL * variation:
        return None
    return sp.Float(at) + sp.Float(slope) * (z - sp.Float(a0))


def _signs_cancelled(sp, product, nonzero):
    """A product's factors sign(a)**p |a|**q (integers p, q; a never 0 on the rows) as a**q,
    times sign(a) where p + q is odd: |a| = a sign(a) and sign(a)**2 = 1 there. A guard that
    switches on the rows can still cancel another: 1/(1/a) is written sign(a)/(|sign(a)| /
    |a|), which is a wherever a is not 0."""
    powers = {}
    for factor in product.args:
        base, exponent = factor.as_base_exp()
        if isinstance(base, (sp.sign, sp.Abs)) and exponent.is_integer:
            powers.setdefault(base.args[0], {}).setdefault(type(base), []).append(factor)
    swap = {}
    for a, kinds in powers.items():
        if len(kinds) < 2 or not nonzero(a):
            continue
        p = sum(f.as_base_exp()[1] for f in kinds[sp.sign])
        q = sum(f.as_base_exp()[1] for f in kinds[sp.Abs])
        for f in kinds[sp.sign] + kinds[sp.Abs]:
            swap[f] = sp.Integer(1)
        swap[kinds[sp.Abs][0]] = a ** q * (sp.sign(a) if (p + q) % 2 else 1)
    if not swap:
        return product
    return sp.Mul(*[swap.get(f, f) for f in product.args])


def fixed_branch(sp, e, symbols, columns):
    """The branch a guard e (Abs, sign, Max or Min) takes at every point (columns: one array
    per symbol), or None when it switches or is not real."""
    name = type(e).__name__
    if name in ("Abs", "sign"):
        v = point_values(sp, e.args[0], symbols, columns)
        if np.all(v > 0) or (name == "Abs" and np.all(v >= 0)):
            return e.args[0] if name == "Abs" else sp.Integer(1)
        if np.all(v < 0) or (name == "Abs" and np.all(v <= 0)):
            return -e.args[0] if name == "Abs" else sp.Integer(-1)
        return None
    values = np.stack([point_values(sp, a, symbols, columns) for a in e.args], axis=1)
    if not np.all(np.isfinite(values)):
        return None
    extreme = values.max(axis=1) if name == "Max" else values.min(axis=1)
    for k, arg in enumerate(e.args):
        if np.all(values[:, k] == extreme):
            return arg
    return None


def point_values(sp, expr, symbols, columns):
    """expr at the points (one array per symbol), float64 (n,); NaN where it is undefined or
    not real."""
    n = columns[0].shape[0]
    with np.errstate(all="ignore"):
        out = np.asarray(sp.lambdify(symbols, expr, modules="numpy")(*columns))
        if np.iscomplexobj(out):
            out = np.where(np.abs(out.imag) > 0, np.nan, out.real)
        return np.broadcast_to(out.astype(np.float64), (n,))


def _check_rows(x, y, names):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"x must have one column per name ({len(names)}), got shape {x.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one value per row of x ({x.shape[0]}), got {y.shape[0]}")
    return x, y


def _sympy():
    sp = slib.optional_sympy()
    if sp is None:
        raise ImportError("kanarray.symbolic.snap needs sympy: pip install 'kanarray[symbolic]'")
    return sp
