"""The formula of a symbolic model: its edges composed through the layers, one per output.

Every sum node is bias + the sum of its incoming edges and every multiplication node the product
of its factors (each factor such a sum; kanarray.core.nodes), so composing c f(a x + b) + d edge by edge
gives one sympy expression per output (a plain string without sympy). Numbers keep full float64
precision; `round_formula` rounds them for display only. Before composing, the parameters (a
copy: the model is not changed) are brought to a canonical form that leaves the function
unchanged: each hidden sum node whose outgoing edges are all symbolic is rescaled so that its first
outgoing edge reads f(1*h + b), its constant part (bias + the d of its incoming edges) moves into
the b of its outgoing edges, and each edge's (a, b, c, d) goes through its library function's
canonical map (exp: b = 0, powers: |a| = 1, sin: b in [-pi/2, pi/2], ...). That removes the
trade-offs that training leaves free (a node's scale and offset), so a model of
exp(sin(pi x) + y^2) reads exactly that once rounded.

An edge that is alive but not symbolic has no formula: symbolic_formula raises a ValueError
naming those edges, or with allow_splines=True writes them as unknown functions
phi_l_i_o(argument) (sympy Function / plain text).
"""
import re

import numpy as np

from . import expr
from ..funcs import library as slib

def _host_state(model):
    """Float64 host copies of what a formula needs, per layer, with the model's input scaling
    folded into the first layer: f(a (x - s) / c + b) = f((a / c) x + (b - a s / c))."""
    host = model.backend.to_numpy
    state = []
    for layer in model.layers:
        state.append({
            "p": host(layer.params["symbolic"]).astype(np.float64).copy(),
            "bias": host(layer.params["bias"]).astype(np.float64).copy(),
            "mask": host(layer.mask).astype(np.float64),
            "sm": host(layer.symbolic_mask).astype(np.float64),
            "fun": layer.symbolic_fun.copy(),
        })
    if model.input_scaling is not None:
        shift, scale = model.input_scaling
        p = state[0]["p"]
        a = p[:, :, 0].copy()
        p[:, :, 0] = a / scale[:, None]
        p[:, :, 1] -= a * (shift / scale)[:, None]
    return state


def _canonical(name, p):
    fn = slib.LIBRARY[name]
    if fn.canonical is None:
        return p
    q = np.asarray(fn.canonical(p), dtype=np.float64)
    return q if np.all(np.isfinite(q)) else p


def _normalize(state, n_sum):
    """Canonical (a, b, c, d) per edge and canonical hidden-node scale and offset (module doc)."""
    for st in state:
        for i, o in zip(*np.nonzero(st["fun"] != "")):
            st["p"][i, o] = _canonical(st["fun"][i, o], st["p"][i, o])
    for l in range(1, len(state)):
        prev, cur = state[l - 1], state[l]
        for n in range(n_sum[l]):  # mult nodes keep their factors' scales
            live_out = np.nonzero(cur["mask"][n] != 0)[0]
            live_in = np.nonzero(prev["mask"][:, n] != 0)[0]
            if live_out.size == 0:
                continue
            if not (np.all(cur["sm"][n, live_out] == 1) and np.all(prev["sm"][live_in, n] == 1)):
                continue  # spline branches involved: their curves cannot be rescaled
            scales = cur["p"][n, live_out, 0]
            if not np.any(scales != 0):
                continue
            s = scales[np.nonzero(scales != 0)[0][0]]
            w_in = prev["mask"][live_in, n] * prev["sm"][live_in, n]
            m = prev["bias"][n] + float((w_in * prev["p"][live_in, n, 3]).sum())
            # h = m + r  ->  h' = s r:  incoming c *= s, d = 0, bias = 0
            prev["p"][live_in, n, 2] *= s
            prev["p"][live_in, n, 3] = 0.0
            prev["bias"][n] = 0.0
            # f(a h + b) = f((a / s) h' + b + a m)
            for o in live_out:
                a, b = cur["p"][n, o, :2]
                cur["p"][n, o, 0], cur["p"][n, o, 1] = a / s, b + a * m
                cur["p"][n, o] = _canonical(cur["fun"][n, o], cur["p"][n, o])
    return state


def _nonsymbolic_edges(state):
    return [(l, int(i), int(o)) for l, st in enumerate(state)
            for i, o in zip(*np.nonzero(st["mask"] * (1 - st["sm"]) != 0))]


def symbolic_formula(model, var_names=None, simplify=False, normalize=True, allow_splines=False):
    """One formula per output of a symbolic model, in full float64 precision.

    -> list of sympy expressions (sympy installed: the `symbolic` extra) or, without sympy, of
    plain strings (expression trees printed by kanarray.symbolic.expr.text).
    var_names: names of the inputs (default x_1, x_2, ... by original input index). simplify: sympy.simplify each
    output (slow on large formulas). normalize: canonical node scales and parameters (module
    doc; the model is not changed). Live edges that are not symbolic raise a ValueError unless
    allow_splines, which writes them as unknown functions phi_l_i_o(...).
    """
    sp = slib.optional_sympy()
    if sp is None:
        return [expr.text(e) for e in formula_trees(model, var_names, normalize, allow_splines)]
    nodes = _compose(model, var_names, normalize, allow_splines, _Sympy(sp))
    return [sp.simplify(e) for e in nodes] if simplify else nodes


def formula_trees(model, var_names=None, normalize=True, allow_splines=False):
    """symbolic_formula's formulas as expression trees (kanarray.symbolic.expr), which print as
    text, LaTeX or NumPy code and evaluate without sympy."""
    return _compose(model, var_names, normalize, allow_splines, _Trees())


def _compose(model, var_names, normalize, allow_splines, algebra):
    """The outputs' formulas, built edge by edge with `algebra` (sympy or expression trees)."""
    var_names = check_var_names(var_names, model)
    state = _host_state(model)
    missing = _nonsymbolic_edges(state)
    if missing and not allow_splines:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"{len(missing)} live edge(s) are not symbolic: {shown}; fix them with "
                         "model.fix_symbolic / model.auto_symbolic, prune them, or pass "
                         "allow_splines=True to write them as unknown functions phi_l_i_o")
    if normalize:
        state = _normalize(state, model.n_sum)
    nodes = [algebra.var(v) for v in var_names]
    for l, st in enumerate(state):
        out = []
        for o in range(st["bias"].shape[0]):
            terms = []
            for i in range(len(nodes)):
                mask = st["mask"][i, o]
                if mask == 0:
                    continue
                sm = st["sm"][i, o]
                if sm != 0:
                    terms.append(algebra.scaled(mask * sm, algebra.edge(st["fun"][i, o], st["p"][i, o], nodes[i])))
                if sm != 1:
                    terms.append(algebra.scaled(mask * (1 - sm), algebra.unknown(f"phi_{l}_{i}_{o}", nodes[i])))
            out.append(algebra.node(terms, float(st["bias"][o])))
        level, start = out[:model.n_sum[l + 1]], model.n_sum[l + 1]
        for r in model.arities[l + 1]:  # every mult node: the product of its next r factors
            level.append(algebra.product(out[start:start + r]))
            start += r
        nodes = level
    if model.output_scaling is not None:  # raw outputs: y * scale + shift
        shift, scale = model.output_scaling
        nodes = [algebra.affine(node, float(c), float(s)) for node, s, c in zip(nodes, shift, scale)]
    return nodes


class _Sympy:
    """The composition's operations on sympy expressions (library functions by their safe
    sympy forms)."""

    def __init__(self, sp):
        self.sp = sp

    def var(self, name):
        return self.sp.Symbol(name)

    def edge(self, name, p, arg):
        sp, (a, b, c, d) = self.sp, (float(v) for v in p)
        inner = sp.Float(a) * arg + (sp.Float(b) if b != 0 else 0)
        return sp.Float(c) * slib.LIBRARY[name].sympy(inner) + (sp.Float(d) if d != 0 else 0)

    def unknown(self, label, arg):
        return self.sp.Function(label)(arg)

    def scaled(self, weight, term):
        return term if weight == 1 else self.sp.Float(float(weight)) * term

    def node(self, terms, bias):
        return self.sp.Add(*terms, self.sp.Float(bias) if bias != 0 else self.sp.Integer(0))

    def product(self, factors):
        return self.sp.Mul(*factors)

    def affine(self, node, scale, shift):
        return self.sp.Float(scale) * node + (self.sp.Float(shift) if shift != 0 else 0)


class _Trees:
    """The same operations on kanarray.symbolic.expr trees."""

    var = staticmethod(expr.var)

    @staticmethod
    def edge(name, p, arg):
        a, b, c, d = (float(v) for v in p)
        inner = expr.add([expr.mul([expr.num(a), arg]), expr.num(b)])
        return expr.add([expr.mul([expr.num(c), expr.call(name, inner)]), expr.num(d)])

    @staticmethod
    def unknown(label, arg):
        return expr.call(label, arg)

    @staticmethod
    def scaled(weight, term):
        return expr.mul([expr.num(weight), term])

    @staticmethod
    def node(terms, bias):
        return expr.add([*terms, expr.num(bias)])

    product = staticmethod(expr.mul)
    affine = staticmethod(expr.affine)


def check_var_names(var_names, model):
    """The input names of a formula: default x_1, x_2, ... by original input index (a pruned
    model keeps input_ids); else width[0] distinct non-empty strings."""
    n_in = model.width[0]
    if var_names is None:
        return [f"x_{i + 1}" for i in model.input_ids]
    if isinstance(var_names, (str, bytes)) or not hasattr(var_names, "__len__"):
        raise TypeError(f"var_names must be a list of {n_in} names, got {var_names!r}")
    names = list(var_names)
    if len(names) != n_in or not all(isinstance(v, str) and v.strip() for v in names):
        raise ValueError(f"var_names must be {n_in} non-empty strings, got {names!r}")
    if len(set(names)) != n_in:
        raise ValueError(f"var_names must be distinct (two inputs with one name would merge), "
                         f"got {names!r}")
    return names


def round_formula(formula, digits=4):
    """A copy of a formula with its numbers rounded to `digits` decimals, for display.

    Numbers that round to an integer become exact integers (so 1.0000000003*x reads x, and
    terms that round to 0 vanish). Plain-string formulas have their numbers rounded in place, and
    unit factors and zero terms dropped.
    """
    if isinstance(formula, str):
        def fmt(match):
            v = round(float(match.group(0)), digits)
            return str(int(v)) if v == int(v) else f"{v:.{digits}f}".rstrip("0")

        text = re.sub(r"(?<![\w.])-?\d+\.\d*(?:e[-+]?\d+)?", fmt, formula)
        text = re.sub(r"(?<![\w.])1\*", "", text)  # unit factors
        text = re.sub(r" \+ -?0(?![\w.*])", "", text)  # zero terms
        return text.replace("+ -", "- ")
    sp = slib.optional_sympy()
    replace = {}
    for f in formula.atoms(sp.Float):
        v = round(float(f), digits)
        replace[f] = sp.Integer(int(v)) if v == int(v) else sp.Float(f"{v:.{digits}f}".rstrip("0"))
    return formula.xreplace(replace)


def formula_function(formula, var_names):
    """A NumPy callable f(x (N, n_in)) -> (N,) evaluating a sympy formula (for checks)."""
    sp = slib.optional_sympy()
    symbols = [sp.Symbol(v) for v in var_names]
    fn = sp.lambdify(symbols, formula, modules="numpy")
    return lambda x: np.broadcast_to(fn(*np.asarray(x, np.float64).T), (np.shape(x)[0],))
