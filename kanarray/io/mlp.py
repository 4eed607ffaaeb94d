"""A piecewise-linear KAN written as the ReLU MLP it is.

    mlp = model.to_mlp()                 # model: k = 1, base_fun "identity" or "zero"
    mlp(x)                               # plain NumPy, equal to model(x) to round-off
    mlp.write_c("kan.c", name="kan")     # void kan(const double *x, double *y), no dependency

With k = 1 every spline is continuous and linear between its knots t_0 < ... < t_{G+2} (the
hat B_m peaks at t_{m+1} with value 1, so the spline is coef[m] there) and 0 outside
[t_0, t_{G+2}]. Such a function is a sum of ramps at its knots,

    s(x) = sum_m a_m ReLU(x - t_m),   a_m = slope right of t_m - slope left of t_m,

exactly, on the whole line: the slopes on either side of the knots are 0, so the ramps cancel
past the last knot. The identity base is x = ReLU(x) - ReLU(-x). So a layer is one ReLU layer
of I (G + 5) units (unit (i, m): ReLU(z_i - t_im); the last two per input: ReLU(z_i),
ReLU(-z_i)) followed by an affine map to its O outputs; the affine map of layer l and the unit
pre-activations of layer l + 1 compose into one affine map, and the input and output scalings
fold into the first and last. The MLP has len(layers) + 1 affine maps, with a ReLU between
consecutive ones.

The silu base is not piecewise linear, multiplication nodes multiply, and symbolic edges are
library functions, so models with any of them are refused; so are k != 1 splines.
"""
from typing import NamedTuple

import numpy as np


class MLP(NamedTuple):
    """affine maps (W (n_out, n_in), b (n_out,)), host float64, a ReLU between consecutive ones."""

    weights: list
    biases: list

    def __call__(self, x):
        """Outputs (B, n_out) for inputs x (B, n_in)."""
        h = np.asarray(x, dtype=np.float64)
        if h.ndim != 2 or h.shape[1] != self.weights[0].shape[1]:
            raise ValueError(f"x must have shape (B, {self.weights[0].shape[1]}), got {h.shape}")
        for n, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if n < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h

    def write_c(self, path, name="kan_mlp"):
        """A C99 file with `void name(const double *x, double *y)`: y = this MLP at one input
        row x (n_in values), written with every weight as a hex float (exact). -> path."""
        if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
            raise ValueError(f"name must be a C identifier, got {name!r}")
        width = max(w.shape[0] for w in self.weights)
        lines = ["/* A KAN as a ReLU MLP, written by kanarray (kanarray.io.mlp). */", ""]
        for n, (w, b) in enumerate(zip(self.weights, self.biases)):
            lines.append(f"static const double W{n}[{w.size}] = {{{_hex(w.ravel())}}};")
            lines.append(f"static const double B{n}[{b.size}] = {{{_hex(b)}}};")
        lines += ["", f"void {name}(const double *x, double *y)", "{",
                  f"    double a[{width}], h[{width}];", "    const double *in = x;"]
        for n, w in enumerate(self.weights):
            rows, cols = w.shape
            last = n == len(self.weights) - 1
            out = "y" if last else "a"
            lines += [f"    for (int r = 0; r < {rows}; ++r) {{",
                      f"        double s = B{n}[r];",
                      f"        for (int c = 0; c < {cols}; ++c) s += W{n}[r * {cols} + c] * in[c];",
                      f"        {out}[r] = {'s' if last else 's > 0.0 ? s : 0.0'};", "    }"]
            if not last:
                lines += [f"    for (int r = 0; r < {rows}; ++r) h[r] = a[r];", "    in = h;"]
        lines.append("}")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path


def to_mlp(model):
    """The module docstring's MLP of a model -> MLP. Raises ValueError naming what is not
    piecewise linear."""
    if model.k != 1:
        raise ValueError(f"to_mlp needs piecewise-linear splines (k=1), got k={model.k}")
    if model.base_fun not in ("identity", "zero"):
        raise ValueError(f"to_mlp needs base_fun 'identity' or 'zero' (piecewise linear), got "
                         f"{model.base_fun!r}")
    if any(model.n_mult):
        raise ValueError("to_mlp: a model with multiplication nodes is not an MLP")
    host = model.backend.to_numpy
    maps = []  # per layer: (unit pre-activations from z: (S, s), outputs from units: (V, c))
    for l, layer in enumerate(model.layers):
        mask = np.asarray(host(layer.mask), dtype=np.float64)
        if np.any(np.asarray(host(layer.symbolic_mask)) * mask):
            raise ValueError(f"to_mlp: layer {l} has edges fixed to library functions")
        maps.append(_layer_maps(layer, mask, host))
    weights, biases = [], []
    pre_w, pre_b = maps[0][0]
    if model.input_scaling is not None:  # z = (x - shift) / scale
        shift, scale = (np.asarray(v, dtype=np.float64) for v in model.input_scaling)
        pre_w, pre_b = pre_w / scale, pre_b - pre_w @ (shift / scale)
    weights.append(pre_w)
    biases.append(pre_b)
    for l in range(1, len(maps)):
        (out_w, out_b), (pre_w, pre_b) = maps[l - 1][1], maps[l][0]
        weights.append(pre_w @ out_w)
        biases.append(pre_w @ out_b + pre_b)
    out_w, out_b = maps[-1][1]
    if model.output_scaling is not None:  # y = out * scale + shift
        shift, scale = (np.asarray(v, dtype=np.float64) for v in model.output_scaling)
        out_w, out_b = out_w * scale[:, None], out_b * scale + shift
    weights.append(out_w)
    biases.append(out_b)
    return MLP(weights, biases)


def _layer_maps(layer, mask, host):
    """((S, s), (V, c)) of one layer: units = ReLU(S z + s), y = V units + c."""
    knots = np.asarray(host(layer.knots), dtype=np.float64)            # (I, G + 3)
    coef = np.asarray(host(layer.params["coef"]), dtype=np.float64)    # (I, G + 1, O)
    w_base = np.asarray(host(layer.params["w_base"]), dtype=np.float64) * mask
    w_spline = np.asarray(host(layer.params["w_spline"]), dtype=np.float64) * mask
    bias = np.asarray(host(layer.params["bias"]), dtype=np.float64)
    n_in, n_knots = knots.shape
    per = n_knots + 2
    S = np.zeros((n_in * per, n_in))
    s = np.zeros(n_in * per)
    V = np.zeros((layer.out_dim, n_in * per))
    for i in range(n_in):
        rows = slice(i * per, (i + 1) * per)
        S[rows, i] = np.r_[np.ones(n_knots), 1.0, -1.0]
        s[i * per:i * per + n_knots] = -knots[i]
        values = np.zeros((n_knots, layer.out_dim))                    # the spline at the knots
        values[1:-1] = coef[i]
        slopes = np.diff(values, axis=0) / np.diff(knots[i])[:, None]  # (G + 2, O)
        ramps = np.diff(np.vstack([np.zeros((1, layer.out_dim)), slopes,
                                   np.zeros((1, layer.out_dim))]), axis=0)  # (G + 3, O)
        V[:, i * per:i * per + n_knots] = (ramps * w_spline[i]).T
        if layer.base_fun == "identity":
            V[:, i * per + n_knots] = w_base[i]
            V[:, i * per + n_knots + 1] = -w_base[i]
    return (S, s), (V, bias.copy())


def _hex(values):
    return ", ".join(float(v).hex() for v in values)
