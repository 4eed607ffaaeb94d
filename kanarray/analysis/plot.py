"""Draw a KAN: nodes per layer and every edge as a small inset of its learned curve.

    model.plot("kan.png", x=dataset["train_input"])

Layers run bottom (inputs) to top (outputs), as in pykan. Between layer l and l+1 sits one row
of insets, one per edge (i, j) ordered by (i, j); a line joins input node i to the inset and the
inset to output node j. Each inset shows phi_ij over its input's range: the range of the layer's
inputs on x when x is given, else the grid range. Symbolic edges are drawn in red with their
function's name; spline edges in black. Line and curve opacity follow the edge's importance:
the attribution scores on x (kanarray.analysis.prune.attribute) when x is given, otherwise the mean
|phi_ij| over the same points, both scaled by the largest of the layer. Pruned edges
(mask 0) are left out. Multiplication nodes (kanarray.core.nodes) are white squares marked with a
times sign; the edges into each of their factors end at them.

Needs matplotlib (the `plot` extra); it draws on an Agg canvas and never touches pyplot's global
state or the user's backend.
"""
import os

import numpy as np

from ..core import nodes
from . import prune

CURVE_POINTS = 101
MAX_INSETS_PER_LAYER = 256  # beyond this a layer is drawn as lines only (insets would be unreadable)
SPLINE_COLOR = "black"
SYMBOLIC_COLOR = "#d62728"
MIN_ALPHA = 0.08


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("model.plot needs matplotlib, which comes with the plot extra: "
                          "pip install 'kanarray[plot]'") from None
    return Figure, FigureCanvasAgg


def _ranges(model, acts):
    """(lo, hi) of every input of every layer: on the data when given, else the grid range."""
    out = []
    for l, layer in enumerate(model.layers):
        if acts is not None:
            lo, hi = acts[l].min(axis=0), acts[l].max(axis=0)
        else:
            lo, hi = layer.interior_range().T
        hi = np.where(hi > lo, hi, lo + 1e-6)
        out.append(np.stack([lo, hi], axis=1))
    return out


def _importance(model, x, acts, curves):
    """Edge importance per layer (I, O), scaled to [0, 1] by the layer's largest value."""
    if x is not None:
        scores, _ = prune.attribution_scores(model, x)
    else:
        host = model.backend.to_numpy
        scores = []
        for l, layer in enumerate(model.layers):
            mags = np.stack([np.abs(c).mean(axis=0) for c in curves[l]])  # (I, O)
            scores.append(mags * host(layer.mask).astype(np.float64))
    return [s / s.max() if s.max() > 0 else s for s in scores]


def plot(model, path, x=None, var_names=None, out_names=None, title=None, dpi=110):
    """Draw `model` to the image file `path` (format from its suffix, e.g. .png); return path.

    x: inputs (N, width[0]) to take ranges and importance from (else grid ranges and |phi| on
    them). var_names / out_names: labels of the input and output nodes.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    path = os.fspath(path)
    host = model.backend.to_numpy
    acts = model.layer_inputs(x) if x is not None else None
    ranges = _ranges(model, acts)
    depth = model.depth
    widths = model.n_nodes
    if var_names is None:
        var_names = [f"x_{i + 1}" for i in model.input_ids]
    if out_names is None:
        out_names = [f"y_{j + 1}" for j in range(widths[-1])]

    # curves of every edge (host float64), computed once
    grids, curves = [], []
    for l, layer in enumerate(model.layers):
        g = [np.linspace(lo, hi, CURVE_POINTS) for lo, hi in ranges[l]]
        grids.append(g)
        curves.append([layer.edge_curves(i, g[i]) for i in range(layer.in_dim)])
    importance = _importance(model, x, acts, curves)

    slots = max(layer.in_dim * layer.out_dim for layer in model.layers)
    fig_w = float(np.clip(1.0 * min(slots, MAX_INSETS_PER_LAYER) ** 0.85 + 1.5, 4.0, 24.0))
    fig_h = 2.4 * depth + 0.8
    fig = Figure(figsize=(fig_w, fig_h))
    FigureCanvasAgg(fig)
    top = 1.0 - (0.45 / fig_h if title else 0.0)  # figure fraction left for the network
    ax = fig.add_axes([0, 0, 1, top])
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.35, depth + 0.35)
    ax.axis("off")

    def node_x(n, count):
        return (n + 0.5) / count

    for l in range(depth + 1):  # nodes
        for n in range(widths[l]):
            if n < model.n_sum[l]:
                ax.scatter([node_x(n, widths[l])], [l], s=120, color="black", zorder=5)
            else:  # multiplication node: a white square marked with a times sign
                ax.scatter([node_x(n, widths[l])], [l], s=220, marker="s", facecolor="white",
                           edgecolor="black", zorder=5)
                ax.text(node_x(n, widths[l]), l, "\u00d7", ha="center", va="center",
                        fontsize=11, zorder=6)
            if l == 0:
                ax.text(node_x(n, widths[l]), l - 0.16, var_names[n], ha="center", va="top", fontsize=11)
            elif l == depth:
                ax.text(node_x(n, widths[l]), l + 0.16, out_names[n], ha="center", va="bottom", fontsize=11)

    inset_h = 0.5  # in layer units
    for l, layer in enumerate(model.layers):
        I, O = layer.in_dim, layer.out_dim
        owner = nodes.factor_owners(model.n_sum[l + 1], model.arities[l + 1])  # node of output j
        n_slots = I * O
        mask = host(layer.mask)
        names = layer.symbolic_fun
        sm = host(layer.symbolic_mask)
        draw_insets = n_slots <= MAX_INSETS_PER_LAYER
        inset_w = min(0.8 / n_slots, 0.16)
        for i in range(I):
            for j in range(O):
                if mask[i, j] == 0:
                    continue
                alpha = float(max(MIN_ALPHA, min(1.0, importance[l][i, j])))
                symbolic = bool(names[i, j]) and sm[i, j] != 0
                color = SYMBOLIC_COLOR if symbolic else SPLINE_COLOR
                xs, ys = node_x(i, I), node_x(owner[j], widths[l + 1])
                if not draw_insets:
                    ax.plot([xs, ys], [l, l + 1], color=color, alpha=alpha, lw=1)
                    continue
                cx = node_x(i * O + j, n_slots)
                lo_y, hi_y = l + 0.5 - inset_h / 2, l + 0.5 + inset_h / 2
                ax.plot([xs, cx], [l, lo_y], color=color, alpha=alpha, lw=1.2)
                ax.plot([cx, ys], [hi_y, l + 1], color=color, alpha=alpha, lw=1.2)
                # inset axes in figure coordinates (the main axes span the width and `top`)
                fx = cx - inset_w / 2
                fy = top * (lo_y + 0.35) / (depth + 0.7)
                inset = fig.add_axes([fx, fy, inset_w, top * inset_h / (depth + 0.7)])
                inset.plot(grids[l][i], curves[l][i][:, j], color=color, alpha=alpha, lw=1.6)
                inset.set_xticks([])
                inset.set_yticks([])
                for spine in inset.spines.values():
                    spine.set_alpha(alpha)
                    spine.set_color(color)
                inset.patch.set_alpha(0.0)
                if symbolic:
                    inset.set_title(str(names[i, j]), fontsize=9, color=SYMBOLIC_COLOR, pad=2)
    if title:
        fig.suptitle(title, fontsize=11, y=1.0 - 0.08 / fig_h, va="top")
    fig.savefig(path, dpi=dpi)
    return path
