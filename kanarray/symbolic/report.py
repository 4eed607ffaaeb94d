"""A formula you can check: how far a symbolic model's formula is from its network and its data.

    report = formula_report(model, x, y)
    print("\\n".join(report_lines(report)))

Three numbers say whether a formula can be trusted:
- per symbolic edge, the R^2 of its function c f(a x + b) + d against the learned spline it
  replaced (1 = the function is the spline): auto_symbolic's values when given, else measured
  now on the edge's inputs over x (meaningful until the constants are refitted: fit_constants
  or training may rescale an edge and its neighbours together, away from the old spline);
- the maximum gap |formula(x) - model(x)| over the rows of x: the formula says what the network
  computes (the gap is round-off, ~1e-12, when it does);
- the formula's RMSE against the labels y (how well it explains the data).
"""
import numpy as np

from . import formula as formulalib
from ..core.metrics import r2_score
from ..funcs import library as slib


def edge_r2(model, x):
    """{(l, i, j): (name, r2)} for every live symbolic edge: its function against its spline,
    on the layer's inputs over x (host float64)."""
    acts = model.layer_inputs(x)
    host = model.backend.to_numpy
    out = {}
    for l, layer in enumerate(model.layers):
        mask = host(layer.mask)
        params = host(layer.params["symbolic"]).astype(np.float64)
        for i, j in zip(*np.nonzero((layer.symbolic_fun != "") & (mask != 0))):
            xs = acts[l][:, i]
            spline = layer.spline_curves(i, xs)[:, j]
            curve = slib.evaluate_affine(layer.symbolic_fun[i, j], params[i, j], xs)
            out[(l, int(i), int(j))] = (str(layer.symbolic_fun[i, j]), r2_score(curve, spline))
    return out


def formula_report(model, x, y=None, var_names=None, edge_fits=None):
    """Check the formula of an all-symbolic model on inputs x (N, width[0]) and labels y.

    edge_fits: {(l, i, j): (name, r2)} as auto_symbolic returned it (the R^2 of each edge's
    function against its spline when it was fixed); None: edge_r2(model, x).
    -> {"formulas": model.symbolic_formula(var_names) (sympy expressions), "edges": edge_fits,
        "max_gap": max over rows and outputs of |formula - model| (None without sympy),
        "rmse": the formula's RMSE against y (None without y or sympy)}
    Raises ValueError when a live edge is still a spline (the formula would not be closed).
    """
    xh = model.backend.to_numpy(model.as_batch(x)).astype(np.float64)
    formulas = model.symbolic_formula(var_names=var_names)
    edges = edge_r2(model, xh) if edge_fits is None else dict(edge_fits)
    report = {"formulas": formulas, "edges": edges, "max_gap": None, "rmse": None}
    if slib.optional_sympy() is None:
        return report
    names = formulalib.check_var_names(var_names, model)
    values = np.stack([formulalib.formula_function(f, names)(xh) for f in formulas], axis=1)
    network = np.asarray(model(xh), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        report["max_gap"] = float(np.max(np.abs(values - network)))
        if y is not None:
            labels = model.backend.to_numpy(model.as_labels(y, xh.shape[0])).astype(np.float64)
            report["rmse"] = float(np.sqrt(np.mean((values - labels) ** 2)))
    return report


def report_lines(report, digits=10):
    """The report as printable lines: one per edge, then the gap and the RMSE."""
    lines = [f"  edge ({l},{i},{j}) {name:<6s} R^2 = {r2:.{digits}f}"
             for (l, i, j), (name, r2) in sorted(report["edges"].items())]
    gap, rmse = report["max_gap"], report["rmse"]
    lines.append("  max |formula - network| on the data: "
                 + ("n/a (needs sympy)" if gap is None else f"{gap:.3e}"))
    if rmse is not None or gap is None:
        lines.append("  formula RMSE against the labels: "
                     + ("n/a" if rmse is None else f"{rmse:.3e}"))
    return lines
