"""Symbolic edges: fix a KAN edge to c * f(a*x + b) + d, suggest and auto-fix.

Convention (pykan's, made explicit; the math of both branches is in kanarray.core.layer): every edge
(i, o) of a layer has a spline branch and a symbolic branch; its output is

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
  in the model's flat buffer and train with everything else.

Fitting: an edge's function is chosen by fitting its learned curve (the spline branch, at the
layer's inputs on data or on a sweep of its grid range) with every library function
(kanarray.funcs.library). Formulas of a symbolic model: kanarray.symbolic.formula.
"""
import numbers

import numpy as np

from . import fit as sfit
from ..core.layer import representable
from ..core.metrics import r2_score
from ..funcs import library as slib

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


def edge_samples(model, l, i, x=None, acts=None):
    """The points an edge of layer l from input i is fitted on: its inputs on x, or a sweep."""
    if acts is not None:
        return acts[l][:, i]
    if x is not None:
        return model.layer_inputs(x)[l][:, i]
    lo, hi = model.layers[l].interior_range()[i]
    return np.linspace(lo, hi, SWEEP_POINTS)


# --------------------------------------------------------------------------------------------
# fix / unfix / suggest / auto
# --------------------------------------------------------------------------------------------


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
    ys = layer.spline_curves(i, xs)[:, j]
    if fit_params:
        params, r2 = sfit.fit_affine(xs, ys, fn, a_range=a_range, b_range=b_range)
    else:
        params = np.array([1.0, 0.0, 1.0, 0.0])
        r2 = r2_score(slib.evaluate_affine(fn, params, xs), ys)
    layer.set_symbolic(i, j, fn.name, params)
    if verbose:
        print(f"fixed ({l},{i},{j}) with {fn.name:>9s}, r2={r2:.6f}, "
              f"c*f(a*x+b)+d = {slib.affine_text(fn, params)}")
    return float(r2)


def unfix_symbolic(model, l, i, j):
    """Return edge (l, i, j) to its spline (kept untouched while the edge was symbolic)."""
    _check_edge(model, l, i, j).clear_symbolic(i, j)


R2_THRESHOLD = 0.99  # auto_symbolic leaves an edge a spline when no candidate reaches this R^2


def suggest_symbolic(model, l, i, j, topk=5, lib=None, x=None, weight_simple=0.8,
                     r2_threshold=0.0, verbose=True, acts=None):
    """Rank library functions for edge (l, i, j): fit quality (R^2) against complexity.

    -> list of (name, r2, complexity, score, params), best first (topk=None: all); the score
    is kanarray.symbolic.fit.score (simplest function within the fit tolerance, amplified fits penalised).
    """
    layer = _check_edge(model, l, i, j)
    xs = edge_samples(model, l, i, x, acts)
    ys = layer.spline_curves(i, xs)[:, j]
    rows = sfit.suggest(xs, ys, lib=lib, topk=topk, weight_simple=weight_simple,
                        r2_threshold=r2_threshold)
    if verbose:
        print(f"edge ({l},{i},{j}):")
        print(f"  {'function':>10s} {'r2':>12s} {'complexity':>10s} {'score':>9s}")
        for name, r2, comp, score, _ in rows:
            print(f"  {name:>10s} {r2:12.8f} {comp:10d} {score:9.3f}")
    return rows


def auto_symbolic(model, lib=None, r2_threshold=R2_THRESHOLD, weight_simple=0.8, x=None, verbose=1,
                  layers=None):
    """Fix every live edge (mask != 0) that is not symbolic yet to its best library candidate.

    layers: the layer indices to work on (None: all), e.g. [0] to fix the first layer, retrain
    the splines after it, then fix the next.

    The candidate is the best-scoring one (kanarray.symbolic.fit.score) among those with R^2 >=
    r2_threshold; when no candidate reaches r2_threshold the edge stays a spline (printed when
    verbose). Layers are processed in order; with samples x each layer's inputs are recomputed
    after the layers before it were fixed, so edges are fitted where they will be evaluated.
    -> {(l, i, j): (name, r2)} for every edge considered: the function fixed and its R^2, or
    name "" (an edge left a spline, as in layer.symbolic_fun) with the best R^2 any candidate
    reached. Edges already symbolic are skipped and not listed.
    """
    if layers is None:
        layers = range(model.depth)
    elif (isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__")
          or not all(isinstance(l, numbers.Integral) and not isinstance(l, bool)
                     and 0 <= l < model.depth for l in layers)):
        raise ValueError(f"layers must be None or layer indices in [0, {model.depth}), got {layers!r}")
    fixed = {}
    host = model.backend.to_numpy
    for l, layer in enumerate(model.layers):
        if l not in layers:
            continue
        acts = model.layer_inputs(x) if x is not None else None
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
                passing = [row for row in rows  # constants the model's dtype can hold
                           if row[1] >= r2_threshold and representable(row[4], layer.dtype)]
                if not passing:
                    best = max(rows, key=lambda row: row[1], default=("", 0.0))
                    fixed[(l, i, j)] = ("", best[1])
                    if verbose:
                        print(f"leaving ({l},{i},{j}) a spline: best R^2 = {best[1]:.6f} "
                              f"({best[0] or 'no fit'}) < r2_threshold = {r2_threshold}")
                    continue
                name, r2, _, _, params = passing[0]
                layer.set_symbolic(i, j, name, params)
                fixed[(l, i, j)] = (name, r2)
                if verbose:
                    print(f"fixing ({l},{i},{j}) with {name:>9s}, r2={r2:.10f}")
    return fixed


def fit_constants(model, x, y):
    """Least-squares fit of the constants of a model whose live edges are all symbolic.

    After auto_symbolic a model is a small parametric formula: (a, b, c, d) per edge and a bias
    per node. Gradient methods crawl along the valleys such formulas have (c e^b trades against
    e^(a x)); Levenberg–Marquardt (scipy.optimize.least_squares, a finite-difference Jacobian
    over these few constants) converges in a handful of iterations. The model changes only if
    the fit lowers the squared error on (x, y). -> the RMSE on (x, y) afterwards.
    """
    from scipy.optimize import least_squares  # scipy loads only where it is used

    xd = model.as_batch(x)
    yh = model.backend.to_numpy(model.as_labels(y, xd.shape[0])).astype(np.float64).ravel()
    splines = [(l, int(i), int(o)) for l, layer in enumerate(model.layers)
               for i, o in zip(*np.nonzero(model.backend.to_numpy(layer.spline_mask())))]
    if splines:
        raise ValueError(f"fit_constants needs every live edge symbolic; {len(splines)} are "
                         f"splines, e.g. {splines[:3]} (auto_symbolic or prune them first)")
    index = []
    for l, name, part in model.group_slices():
        layer = model.layers[l]
        if name == "bias":
            index.append(np.arange(part.start, part.stop))
        elif name == "symbolic":
            flat = np.arange(part.start, part.stop).reshape(layer.in_dim, layer.out_dim, 4)
            index.append(flat[layer.symbolic_fun != ""].ravel())
    index = np.concatenate(index)
    if yh.size < index.size:
        raise ValueError(f"fit_constants needs at least as many values in y as the formula has "
                         f"constants: y has {yh.size}, the formula {index.size}")
    start = model.backend.to_numpy(model.params).astype(np.float64)

    def residuals(constants):
        params = start.copy()
        params[index] = constants
        with np.errstate(over="ignore"):  # beyond float32: inf residuals, a step LM rejects
            model.params[...] = model.backend.asarray(params, model.np_dtype)
        return model.backend.to_numpy(model.forward_all(xd)[-1]).astype(np.float64).ravel() - yh

    try:  # the residuals move model.params: any failure puts the start back
        before = float((residuals(start[index]) ** 2).sum())
        fit = least_squares(residuals, start[index], method="lm", x_scale="jac", xtol=1e-15,
                            ftol=1e-15, gtol=1e-15, max_nfev=100 * (index.size + 1))
        after = float((residuals(fit.x) ** 2).sum())
    except BaseException:
        model.params = start
        raise
    if not (np.isfinite(after) and after < before):
        model.params = start
        after = before
    return float(np.sqrt(after / yh.size))
