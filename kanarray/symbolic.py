"""Symbolic edges: fix a KAN edge to c * f(a*x + b) + d, suggest and auto-fix, read the formula.

Convention (pykan's, made explicit). Every edge (i, o) of a layer has a spline branch and a
symbolic branch; its output is

    mask[i,o] * ( (1 - symbolic_mask[i,o]) * phi_spline(x)  +  symbolic_mask[i,o] * (c f(a x + b) + d) )

- `layer.mask` stays what it always was: whether the edge is alive at all (pruning). A pruned
  edge (mask 0) is off in both branches.
- `layer.symbolic_mask` switches an edge from its spline to its symbolic function: fixing an
  edge sets it to 1, so the spline kernels see mask * (1 - symbolic_mask) = 0 for that edge
  (its spline branch is off and untouched, so `unfix_symbolic` brings the spline back as it
  was); unfixing sets it to 0. Fractional values blend the two branches.
- `layer.symbolic_fun` (host array of library names, "" = none) names f per edge;
  symbolic_mask is non-zero only where a name is set.
- (a, b, c, d) live in the trainable parameter group "symbolic" of shape (I, O, 4), so they sit
  in the model's flat buffer and train with everything else (their gradients below are exact;
  for edges without a function they are zero).

The symbolic branch is array code over the batch for the (few) symbolic edges, NumPy on the CPU
and CuPy on the GPU; its float64 oracle is `kernels.reference.symbolic_forward/backward`.

Formulas: `symbolic_formula` composes the edges through the layers (node = bias + sum of its
incoming edges) into one sympy expression per output (a plain string without sympy). Numbers
keep full float64 precision; `round_formula` rounds them for display only. Before composing,
the parameters (a copy: the model is not changed) are brought to a canonical form that leaves
the function unchanged: each hidden node whose outgoing edges are all symbolic is rescaled so
that its first outgoing edge reads f(1*h + b), its constant part (bias + the d of its incoming
edges) moves into the b of its outgoing edges, and each edge's (a, b, c, d) goes through its
library function's canonical map (exp: b = 0, powers: |a| = 1, sin: b in [-pi/2, pi/2], ...).
That removes the trade-offs that training leaves free (a node's scale and offset), so a model
of exp(sin(pi x) + y^2) reads exactly that once rounded.
An edge that is alive but not symbolic has no formula: symbolic_formula raises a ValueError
naming those edges, or with allow_splines=True writes them as unknown functions
phi_l_i_o(argument) (sympy Function / plain text).
"""
import time

import numpy as np

from . import grid as gridlib
from . import symbolic_lib as slib
from .kernels.reference import BASE_CODES, base_function

# --------------------------------------------------------------------------------------------
# the symbolic branch of a layer (forward and hand-derived backward)
# --------------------------------------------------------------------------------------------


def _groups(layer):
    """Symbolic edges grouped by function: [(name, ii, oo)] with host int64 index arrays."""
    names = layer.symbolic_fun
    ii, oo = np.nonzero(names != "")
    edge_names = names[ii, oo]
    return [(name, ii[edge_names == name], oo[edge_names == name]) for name in np.unique(edge_names)]


def _one_hot(xp, idx, n, dtype):
    m = np.zeros((idx.size, n))
    m[np.arange(idx.size), idx] = 1.0
    return xp.asarray(m, dtype=dtype)


def _edge_terms(layer, x, name, ii, oo):
    """Per-edge pieces over the batch for one function: X, z, (a, b, c, d) and the weight."""
    xp = layer.backend.xp
    di, do = xp.asarray(ii), xp.asarray(oo)
    p = layer.params["symbolic"][di, do].astype(np.float64)  # (E, 4)
    weight = (layer.mask[di, do] * layer.symbolic_mask[di, do]).astype(np.float64)
    X = x[:, di].astype(np.float64)  # (B, E)
    z = X * p[:, 0] + p[:, 1]
    return slib.get_symbolic(name), X, z, p, weight


def branch_forward(layer, x, y):
    """y (B, O) += sum over symbolic edges of mask * symbolic_mask * (c f(a x_i + b) + d)."""
    xp = layer.backend.xp
    outs, cols = [], []
    for name, ii, oo in _groups(layer):
        fn, _, z, p, weight = _edge_terms(layer, x, name, ii, oo)
        outs.append(weight * (p[:, 2] * fn.f(z) + p[:, 3]))
        cols.append(oo)
    out = xp.concatenate(outs, axis=1) if len(outs) > 1 else outs[0]
    # scatter onto the outputs with a one-hot matrix: deterministic, no atomics
    y += (out @ _one_hot(xp, np.concatenate(cols), layer.out_dim, np.float64)).astype(y.dtype)


def branch_backward(layer, x, g, dx):
    """Gradients of sum(g * symbolic branch): writes grads["symbolic"], adds into dx (B, I).

        u = f(z), z = a x + b, out = w (c u + d), G = g[:, o] w
        dd = sum_b G,  dc = sum_b G u,  da = sum_b G c f'(z) x,  db = sum_b G c f'(z),
        dx[:, i] += G c f'(z) a
    """
    xp = layer.backend.xp
    grads = layer.grads["symbolic"]
    g64 = g.astype(np.float64)
    dxs, rows = [], []
    for name, ii, oo in _groups(layer):
        fn, X, z, p, weight = _edge_terms(layer, x, name, ii, oo)
        G = g64[:, xp.asarray(oo)] * weight
        dz = G * p[:, 2] * fn.df(z)
        grad = xp.stack([(dz * X).sum(axis=0), dz.sum(axis=0), (G * fn.f(z)).sum(axis=0),
                         G.sum(axis=0)], axis=1)
        grads[xp.asarray(ii), xp.asarray(oo)] = grad.astype(grads.dtype)
        dxs.append(dz * p[:, 0])
        rows.append(ii)
    d = xp.concatenate(dxs, axis=1) if len(dxs) > 1 else dxs[0]
    dx += (d @ _one_hot(xp, np.concatenate(rows), layer.in_dim, np.float64)).astype(dx.dtype)


def edge_activations(layer, x):
    """Symbolic part of every edge's contribution at inputs x: (B, I, O) device array.

    mask * symbolic_mask * (c f(a x + b) + d) on symbolic edges, 0 elsewhere (the spline part
    is kanarray.regularize.edge_activations; their sum is the edge's whole contribution).
    """
    xp = layer.backend.xp
    phi = xp.zeros((x.shape[0], layer.in_dim, layer.out_dim), dtype=layer.dtype)
    for name, ii, oo in _groups(layer):
        fn, _, z, p, weight = _edge_terms(layer, x, name, ii, oo)
        phi[:, xp.asarray(ii), xp.asarray(oo)] = (weight * (p[:, 2] * fn.f(z) + p[:, 3])).astype(layer.dtype)
    return phi


# --------------------------------------------------------------------------------------------
# edge curves and samples
# --------------------------------------------------------------------------------------------

SWEEP_POINTS = 201  # samples of an edge's input range when no data are given


def _check_edge(model, l, i, j):
    for value, label, hi in ((l, "l", model.depth), (i, "i", None), (j, "j", None)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{label} must be an int, got {value!r}")
    if not 0 <= l < model.depth:
        raise IndexError(f"layer index l={l} out of range for a model with {model.depth} layers")
    layer = model.layers[l]
    if not 0 <= i < layer.in_dim:
        raise IndexError(f"input index i={i} out of range for layer {l} with {layer.in_dim} inputs")
    if not 0 <= j < layer.out_dim:
        raise IndexError(f"output index j={j} out of range for layer {l} with {layer.out_dim} outputs")
    return layer


def spline_curves(layer, i, xs):
    """Spline branch of every edge leaving input i at the points xs (N,): (N, O) host float64.

    w_base base(x) + w_spline spline(x), without the masks (the edge's learned curve).
    """
    host = layer.backend.to_numpy
    xs = np.asarray(xs, dtype=np.float64)
    knots = host(layer.knots).astype(np.float64)[i:i + 1]
    design = gridlib.design_matrices(xs[:, None], knots, layer.k)[0]
    coef = host(layer.params["coef"]).astype(np.float64)[i]
    base, _ = base_function(xs, BASE_CODES[layer.base_fun])
    w_base = host(layer.params["w_base"]).astype(np.float64)[i]
    w_spline = host(layer.params["w_spline"]).astype(np.float64)[i]
    return base[:, None] * w_base + (design @ coef) * w_spline


def edge_curves(layer, i, xs):
    """Current curve of every edge leaving input i, both branches blended, without `mask`."""
    host = layer.backend.to_numpy
    xs = np.asarray(xs, dtype=np.float64)
    out = spline_curves(layer, i, xs)
    sm = host(layer.symbolic_mask).astype(np.float64)[i]
    params = host(layer.params["symbolic"]).astype(np.float64)[i]
    for o in range(layer.out_dim):
        name = layer.symbolic_fun[i, o]
        if name:
            sym = slib.evaluate_affine(name, params[o], xs)
            out[:, o] = (1 - sm[o]) * out[:, o] + sm[o] * sym
    return out


def layer_inputs(model, x):
    """Host float64 inputs of every layer for the model inputs x: [x, h_1, ...]."""
    acts = model.forward_all(model._input(x))
    return [model.backend.to_numpy(a).astype(np.float64) for a in acts[:-1]]


def edge_samples(model, l, i, x=None, acts=None):
    """The points an edge of layer l from input i is fitted on: its inputs on x, or a sweep."""
    if acts is not None:
        return acts[l][:, i]
    if x is not None:
        return layer_inputs(model, x)[l][:, i]
    lo, hi = model.layers[l].interior_range()[i]
    return np.linspace(lo, hi, SWEEP_POINTS)


# --------------------------------------------------------------------------------------------
# fix / unfix / suggest / auto
# --------------------------------------------------------------------------------------------


def _set_name(layer, i, j, name):
    if len(name) > layer.symbolic_fun.dtype.itemsize // 4:
        layer.symbolic_fun = layer.symbolic_fun.astype(f"<U{len(name)}")
    layer.symbolic_fun[i, j] = name


def set_symbolic(layer, i, j, name, params):
    """Make edge (i, j) of `layer` the symbolic edge c f(a x + b) + d with params (a, b, c, d)."""
    fn = slib.get_symbolic(name)
    if slib.LIBRARY.get(fn.name) is not fn:
        raise ValueError(f"{fn.name!r} is not a registered library function; register it with "
                         "kanarray.symbolic_lib.add_symbolic (an edge stores its function by name)")
    if fn.df is None:
        raise ValueError(f"{fn.name!r} has no derivative; symbolic edges need one to train")
    _set_name(layer, i, j, fn.name)
    layer.params["symbolic"][i, j] = layer.backend.asarray(np.asarray(params, np.float64), layer.dtype)
    layer.symbolic_mask[i, j] = 1


def fix_symbolic(model, l, i, j, name, fit_params=True, a_range=(-10, 10), b_range=(-10, 10),
                 x=None, verbose=False, acts=None):
    """Fix edge (l, i, j) to c f(a x + b) + d; return the fit's R^2 against its spline curve.

    The curve fitted is the edge's spline branch (its learned phi) at the layer's inputs on x, or
    on a dense sweep of the input's grid range when x is None. fit_params=False sets
    (a, b, c, d) = (1, 0, 1, 0) and returns the R^2 of that unfitted form.
    """
    layer = _check_edge(model, l, i, j)
    fn = slib.get_symbolic(name)
    xs = edge_samples(model, l, i, x, acts)
    ys = spline_curves(layer, i, xs)[:, j]
    if fit_params:
        params, r2 = slib.fit_affine(xs, ys, fn, a_range=a_range, b_range=b_range)
    else:
        params = np.array([1.0, 0.0, 1.0, 0.0])
        sse = float(((slib.evaluate_affine(fn, params, xs) - ys) ** 2).sum())
        sst = float(((ys - ys.mean()) ** 2).sum())
        r2 = 1.0 - sse / sst if sst > 0 else float(sse == 0)
    set_symbolic(layer, i, j, fn.name, params)
    if verbose:
        print(f"fixed ({l},{i},{j}) with {fn.name:>9s}, r2={r2:.6f}, "
              f"c*f(a*x+b)+d = {slib.affine_text(fn, params)}")
    return float(r2)


def unfix_symbolic(model, l, i, j):
    """Return edge (l, i, j) to its spline (kept untouched while the edge was symbolic)."""
    layer = _check_edge(model, l, i, j)
    layer.symbolic_fun[i, j] = ""
    layer.symbolic_mask[i, j] = 0
    layer.params["symbolic"][i, j] = layer.backend.asarray([1.0, 0.0, 1.0, 0.0], layer.dtype)


R2_THRESHOLD = 0.99  # auto_symbolic leaves an edge a spline when no candidate reaches this R^2


def suggest_symbolic(model, l, i, j, topk=5, lib=None, x=None, weight_simple=0.8,
                     r2_threshold=0.0, verbose=True, acts=None):
    """Rank library functions for edge (l, i, j): fit quality (R^2) against complexity.

    -> list of (name, r2, complexity, score, params), best first (topk=None: all); the score
    is symbolic_lib.score (simplest function within the fit tolerance, amplified fits penalised).
    """
    layer = _check_edge(model, l, i, j)
    xs = edge_samples(model, l, i, x, acts)
    ys = spline_curves(layer, i, xs)[:, j]
    rows = slib.suggest(xs, ys, lib=lib, topk=topk, weight_simple=weight_simple,
                        r2_threshold=r2_threshold)
    if verbose:
        print(f"edge ({l},{i},{j}):")
        print(f"  {'function':>10s} {'r2':>12s} {'complexity':>10s} {'score':>9s}")
        for name, r2, comp, score, _ in rows:
            print(f"  {name:>10s} {r2:12.8f} {comp:10d} {score:9.3f}")
    return rows


def auto_symbolic(model, lib=None, r2_threshold=R2_THRESHOLD, weight_simple=0.8, x=None, verbose=1):
    """Fix every live edge (mask != 0) that is not symbolic yet to its best library candidate.

    The candidate is the best-scoring one (symbolic_lib.score) among those with R^2 >=
    r2_threshold; when no candidate reaches r2_threshold the edge stays a spline (printed when
    verbose). Layers are processed in order; with samples x each layer's inputs are recomputed
    after the layers before it were fixed, so edges are fitted where they will be evaluated.
    -> {(l, i, j): (name, r2)} for every edge considered: the function fixed and its R^2, or
    name "" (an edge left a spline, as in layer.symbolic_fun) with the best R^2 any candidate
    reached. Edges already symbolic are skipped and not listed.
    """
    fixed = {}
    host = model.backend.to_numpy
    for l, layer in enumerate(model.layers):
        acts = layer_inputs(model, x) if x is not None else None
        mask = host(layer.mask)
        for i in range(layer.in_dim):
            for j in range(layer.out_dim):
                if mask[i, j] == 0:
                    continue
                if layer.symbolic_fun[i, j]:
                    if verbose:
                        print(f"skipping ({l},{i},{j}): already symbolic ({layer.symbolic_fun[i, j]})")
                    continue
                rows = suggest_symbolic(model, l, i, j, topk=None, lib=lib, x=x,
                                        weight_simple=weight_simple, verbose=False, acts=acts)
                passing = [row for row in rows if row[1] >= r2_threshold]
                if not passing:
                    best = max(rows, key=lambda row: row[1], default=("", 0.0))
                    fixed[(l, i, j)] = ("", best[1])
                    if verbose:
                        print(f"leaving ({l},{i},{j}) a spline: best R^2 = {best[1]:.6f} "
                              f"({best[0] or 'no fit'}) < r2_threshold = {r2_threshold}")
                    continue
                name, r2, _, _, params = passing[0]
                set_symbolic(layer, i, j, name, params)
                fixed[(l, i, j)] = (name, r2)
                if verbose:
                    print(f"fixing ({l},{i},{j}) with {name:>9s}, r2={r2:.10f}")
    return fixed


# --------------------------------------------------------------------------------------------
# formulas
# --------------------------------------------------------------------------------------------


def _host_state(model):
    """Float64 host copies of what a formula needs, per layer."""
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
    return state


def _canonical(name, p):
    fn = slib.LIBRARY[name]
    if fn.canonical is None:
        return p
    q = np.asarray(fn.canonical(p), dtype=np.float64)
    return q if np.all(np.isfinite(q)) else p


def _normalize(state):
    """Canonical (a, b, c, d) per edge and canonical hidden-node scale and offset (module doc)."""
    for st in state:
        for i, o in zip(*np.nonzero(st["fun"] != "")):
            st["p"][i, o] = _canonical(st["fun"][i, o], st["p"][i, o])
    for l in range(1, len(state)):
        prev, cur = state[l - 1], state[l]
        for n in range(cur["p"].shape[0]):
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


def _sympy():
    try:
        import sympy
    except ImportError:
        return None
    return sympy


def symbolic_formula(model, var_names=None, simplify=False, normalize=True, allow_splines=False):
    """One formula per output of a symbolic model, in full float64 precision.

    -> list of sympy expressions (sympy installed: the `symbolic` extra) or of plain strings.
    var_names: names of the inputs (default x_1, x_2, ... by original input index). simplify: sympy.simplify each
    output (slow on large formulas). normalize: canonical node scales and parameters (module
    doc; the model is not changed). Live edges that are not symbolic raise a ValueError unless
    allow_splines, which writes them as unknown functions phi_l_i_o(...).
    """
    n_in = model.width[0]
    if var_names is None:  # named after the original inputs (a pruned model keeps input_ids)
        ids = getattr(model, "input_ids", None) or list(range(n_in))
        var_names = [f"x_{i + 1}" for i in ids]
    var_names = [str(v) for v in var_names]
    if len(var_names) != n_in:
        raise ValueError(f"var_names must have {n_in} names, got {len(var_names)}")
    state = _host_state(model)
    missing = _nonsymbolic_edges(state)
    if missing and not allow_splines:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"{len(missing)} live edge(s) are not symbolic: {shown}; fix them with "
                         "model.fix_symbolic / model.auto_symbolic, prune them, or pass "
                         "allow_splines=True to write them as unknown functions phi_l_i_o")
    if normalize:
        state = _normalize(state)
    sp = _sympy()
    if sp is not None:
        nodes = [sp.Symbol(v) for v in var_names]
        zero = sp.Integer(0)
    else:
        nodes = list(var_names)
        zero = ""
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
                    terms.append(_edge_term(sp, st["fun"][i, o], st["p"][i, o], nodes[i], mask * sm))
                if sm != 1:
                    terms.append(_unknown_term(sp, f"phi_{l}_{i}_{o}", nodes[i], mask * (1 - sm)))
            bias = float(st["bias"][o])
            if sp is not None:
                expr = sp.Add(*terms, sp.Float(bias) if bias != 0 else zero)
            else:
                parts = [t for t in terms] + ([repr(bias)] if bias != 0 or not terms else [])
                expr = " + ".join(parts)
            out.append(expr)
        nodes = out
    if sp is not None and simplify:
        nodes = [sp.simplify(e) for e in nodes]
    return nodes


def _edge_term(sp, name, p, arg, weight):
    a, b, c, d = (float(v) for v in p)
    fn = slib.LIBRARY[name]
    if sp is not None:
        inner = sp.Float(a) * arg + (sp.Float(b) if b != 0 else 0)
        term = sp.Float(c) * fn.sympy(inner) + (sp.Float(d) if d != 0 else 0)
        return term if weight == 1 else sp.Float(float(weight)) * term
    inner = f"{a!r}*({arg})" + (f" + {b!r}" if b != 0 else "")
    term = f"{c!r}*{fn.text(inner)}" + (f" + {d!r}" if d != 0 else "")
    return f"({term})" if weight == 1 else f"{float(weight)!r}*({term})"


def _unknown_term(sp, label, arg, weight):
    if sp is not None:
        term = sp.Function(label)(arg)
        return term if weight == 1 else sp.Float(float(weight)) * term
    term = f"{label}({arg})"
    return term if weight == 1 else f"{float(weight)!r}*{term}"


def round_formula(expr, digits=4):
    """A copy of a formula with its numbers rounded to `digits` decimals, for display.

    Numbers that round to an integer become exact integers (so 1.0000000003*x reads x, and
    terms that round to 0 vanish). Plain-string formulas have their numbers rounded in place, and
    unit factors and zero terms dropped.
    """
    if isinstance(expr, str):
        import re

        def fmt(match):
            v = round(float(match.group(0)), digits)
            return str(int(v)) if v == int(v) else f"{v:.{digits}f}".rstrip("0")

        text = re.sub(r"(?<![\w.])-?\d+\.\d*(?:e[-+]?\d+)?", fmt, expr)
        text = re.sub(r"(?<![\w.])1\*", "", text)  # unit factors
        text = re.sub(r" \+ -?0(?![\w.*])", "", text)  # zero terms
        return text.replace("+ -", "- ")
    sp = _sympy()
    replace = {}
    for f in expr.atoms(sp.Float):
        v = round(float(f), digits)
        replace[f] = sp.Integer(int(v)) if v == int(v) else sp.Float(f"{v:.{digits}f}".rstrip("0"))
    return expr.xreplace(replace)


def formula_function(formula, var_names):
    """A NumPy callable f(x (N, n_in)) -> (N,) evaluating a sympy formula (for checks)."""
    sp = _sympy()
    symbols = [sp.Symbol(v) for v in var_names]
    fn = sp.lambdify(symbols, formula, modules="numpy")
    return lambda x: np.broadcast_to(fn(*np.asarray(x, np.float64).T), (np.shape(x)[0],))


# --------------------------------------------------------------------------------------------
# misc helpers used by the CLI and the plot
# --------------------------------------------------------------------------------------------


def symbolic_edges(model):
    """{(l, i, j): name} of every symbolic edge."""
    return {(l, int(i), int(j)): str(layer.symbolic_fun[i, j])
            for l, layer in enumerate(model.layers)
            for i, j in zip(*np.nonzero(layer.symbolic_fun != ""))}


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
