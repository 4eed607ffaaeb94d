"""A network's outputs with their exact input derivatives (its jet), and the backward through them.

    jet, trace = forward_jet(net, x, pairs=[(0, 0), (1, 1)])
    jet.value (B, O), jet.grad (B, O, D) = du/dx_a, jet.second (B, O, P) = d2u/dx_a dx_b per pair
    dx = backward_jet(net, trace, g_value, g_grad, g_second, grads)

This is forward mode over the D = width[0] raw inputs: every layer receives its inputs z with
dz/dx (B, I, D) and the requested second derivatives (B, I, P), and gives its outputs with theirs
(kernels.cpu.jets: the chain rule through h_j = sum_i phi_ij(z_i)). Between layers:
- the input scaling z_0 = (x - shift) / scale starts the chain with dz_0/dx_a = 1/scale_a on the
  diagonal and no second derivatives;
- a multiplication node multiplies its factors two at a time, (u v)' = u' v + u v' and
  (u v)_ab = u_ab v + u v_ab + u_a v_b + u_b v_a;
- the output scaling multiplies all three by the output's scale (and shifts the value).
backward_jet runs the same steps in reverse order: given dL/d value, dL/d grad and dL/d second
at the outputs, it writes dL/d parameters into `grads` (views of a flat gradient) and returns
dL/dx of the raw inputs (B, D).

CPU only, and sum edges only: a model with symbolic edges or on the GPU gets a ValueError
(those edges' library functions have no second derivatives here, and the GPU has no jet
kernels yet).
"""
from typing import NamedTuple

import numpy as np

from ..kernels.common import BASE_CODES


class Jet(NamedTuple):
    """Raw outputs and their derivatives in the raw inputs: value (B, O), grad (B, O, D) with
    grad[b, o, a] = du_o/dx_a, second (B, O, P) with second[b, o, p] = d2u_o/dx_a dx_b for
    the p-th pair (a, b)."""

    value: np.ndarray
    grad: np.ndarray
    second: np.ndarray


class Trace(NamedTuple):
    """What backward_jet needs of a forward_jet: every layer's input jet (z, dz, d2z), the
    factors' jets and partial products of every level with multiplication nodes, the pairs
    and the parameter views used."""

    inputs: list
    products: dict
    pairs: np.ndarray
    params: list


def check_pairs(pairs, n_inputs):
    """pairs: a sequence of (a, b) input indices in [0, n_inputs) -> (P, 2) int64 array."""
    if isinstance(pairs, (str, bytes)):
        raise TypeError(f"second must be a sequence of (a, b) input index pairs, got {pairs!r}")
    try:
        array = np.asarray(pairs if len(pairs) else np.zeros((0, 2)))
    except TypeError:
        raise TypeError(f"second must be a sequence of (a, b) input index pairs, got {pairs!r}") from None
    if array.ndim != 2 or array.shape[1] != 2 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"second must be a sequence of (a, b) pairs of integer input indices, got {pairs!r}")
    if array.size and (array.min() < 0 or array.max() >= n_inputs):
        raise ValueError(f"second: input indices must be in [0, {n_inputs}), got {pairs!r}")
    return array.astype(np.int64).reshape(-1, 2)


def check_jet_model(net):
    """ValueError unless every layer of net can give second derivatives (CPU, no symbolic edge)."""
    if net.backend.device != "cpu":
        raise ValueError("input derivatives (jets) run on the CPU only; make the model with "
                         "device='cpu' (kanarray.load(path, device='cpu') moves a saved one)")
    for l, layer in enumerate(net.layers):
        if layer.has_symbolic():
            raise ValueError(f"layer {l} has symbolic edges, which have no second derivatives "
                             "here; take jets of the spline model (before fix_symbolic/auto_symbolic)")


def forward_jet(net, x, pairs, params=None):
    """(Jet, Trace) of the network at raw device inputs x (B, width[0]) for the input pairs
    (P, 2) of check_pairs; params: views(...) of the parameters to use (default: net's).
    A model that has no jets (check_jet_model) gets a ValueError."""
    check_jet_model(net)
    params = [layer.params for layer in net.layers] if params is None else params
    dtype, (B, D) = net.np_dtype, x.shape
    kernels = net.backend.kernels
    inv_scale = np.ones(D, dtype) if net.input_scaling is None else 1 / np.asarray(net.input_scaling[1], dtype)
    z = x if net.input_scaling is None else (x - np.asarray(net.input_scaling[0], dtype)) * inv_scale
    dz = np.zeros((B, D, D), dtype)
    dz[:, np.arange(D), np.arange(D)] = inv_scale
    d2z = np.zeros((B, D, len(pairs)), dtype)
    inputs, products = [], {}
    for l, layer in enumerate(net.layers):
        inputs.append((z, dz, d2z))
        p, O = params[l], layer.out_dim
        y, dy, d2y = (np.empty((B, O) + extra, dtype) for extra in ((), (D,), (len(pairs),)))
        kernels.layer_jet_forward(z, dz, d2z, pairs, layer.knots, p["coef"], p["w_base"], p["w_spline"],
                                  p["bias"], layer.spline_mask(), layer.k, BASE_CODES[layer.base_fun], y, dy, d2y)
        z, dz, d2z = y, dy, d2y
        if net.n_mult[l + 1]:
            (z, dz, d2z), products[l + 1] = _multiply(z, dz, d2z, net.n_sum[l + 1], net.arities[l + 1], pairs)
    if net.output_scaling is not None:
        shift, scale = (np.asarray(a, dtype) for a in net.output_scaling)
        z, dz, d2z = z * scale + shift, dz * scale[:, None], d2z * scale[:, None]
    return Jet(z, dz, d2z), Trace(inputs, products, pairs, params)


def backward_jet(net, trace, g_value, g_grad, g_second, grads):
    """dL/dx (B, width[0]) of the raw inputs for a loss L with the given gradients with respect to
    the Jet of the forward_jet that made `trace`; writes dL/dparams into grads (views(...) of a
    flat gradient, every group overwritten)."""
    dtype = net.np_dtype
    pairs = trace.pairs
    g, gd, gd2 = (np.ascontiguousarray(a, dtype=dtype) for a in (g_value, g_grad, g_second))
    if net.output_scaling is not None:
        scale = np.asarray(net.output_scaling[1], dtype)
        g, gd, gd2 = g * scale, gd * scale[:, None], gd2 * scale[:, None]
    kernels = net.backend.kernels
    for l in range(net.depth - 1, -1, -1):
        if net.n_mult[l + 1]:
            g, gd, gd2 = _multiply_backward(trace.products[l + 1], g, gd, gd2, net.n_sum[l + 1],
                                            net.arities[l + 1], pairs)
        layer, p, d = net.layers[l], trace.params[l], grads[l]
        z, dz, d2z = trace.inputs[l]
        gz, gdz, gd2z = np.empty_like(z), np.empty_like(dz), np.empty_like(d2z)
        kernels.layer_jet_backward(z, dz, d2z, pairs, g, gd, gd2, layer.knots, p["coef"], p["w_base"],
                                   p["w_spline"], layer.spline_mask(), layer.k, BASE_CODES[layer.base_fun],
                                   gz, gdz, gd2z, d["coef"], d["w_base"], d["w_spline"], d["bias"])
        d["symbolic"][...] = 0
        g, gd, gd2 = gz, gdz, gd2z
    # dz_0/dx and d2z_0/dx2 do not depend on x: only the value's gradient reaches x
    return g if net.input_scaling is None else g / np.asarray(net.input_scaling[1], dtype)


def _product(u, v, pairs):
    """Jet of u * v from the jets (value (B,), grad (B, D), second (B, P)) of u and v."""
    a, b = pairs[:, 0], pairs[:, 1]
    return (u[0] * v[0], u[1] * v[0][:, None] + u[0][:, None] * v[1],
            u[2] * v[0][:, None] + u[0][:, None] * v[2] + u[1][:, a] * v[1][:, b] + u[1][:, b] * v[1][:, a])


def _product_backward(u, v, g, pairs):
    """Gradients with respect to the jets of u and v of a loss with gradient g = (g0, g1, g2)
    with respect to the jet of u * v."""
    a, b = pairs[:, 0], pairs[:, 1]
    g0, g1, g2 = g
    out = []
    for mine, other in ((u, v), (v, u)):
        d0 = g0 * other[0] + (g1 * other[1]).sum(axis=1) + (g2 * other[2]).sum(axis=1)
        d1 = g1 * other[0][:, None]
        np.add.at(d1, (slice(None), a), g2 * other[1][:, b])
        np.add.at(d1, (slice(None), b), g2 * other[1][:, a])
        out.append((d0, d1, g2 * other[0][:, None]))
    return out


def _multiply(z, dz, d2z, n_sum, arities, pairs):
    """The jets of a level's nodes from its factors' jets -> ((h, dh, d2h), partial products)."""
    nodes = [(z[:, :n_sum], dz[:, :n_sum], d2z[:, :n_sum])]
    partials = []
    start = n_sum
    for r in arities:
        chain = [(z[:, start], dz[:, start], d2z[:, start])]
        for c in range(start + 1, start + r):
            chain.append(_product(chain[-1], (z[:, c], dz[:, c], d2z[:, c]), pairs))
        partials.append(chain)
        nodes.append(tuple(part[:, None] for part in chain[-1]))
        start += r
    h = tuple(np.concatenate([node[q] for node in nodes], axis=1) for q in range(3))
    return h, ((z, dz, d2z), partials)


def _multiply_backward(saved, g, gd, gd2, n_sum, arities, pairs):
    """Gradients with respect to the factors' jets from those with respect to the nodes' jets."""
    (z, dz, d2z), partials = saved
    out = [np.empty_like(z), np.empty_like(dz), np.empty_like(d2z)]
    for q, grad in enumerate((g, gd, gd2)):
        out[q][:, :n_sum] = grad[:, :n_sum]
    start = n_sum
    for j, r in enumerate(arities):
        chain = partials[j]
        carried = (g[:, n_sum + j], gd[:, n_sum + j], gd2[:, n_sum + j])
        for c in range(start + r - 1, start, -1):  # chain[m] = chain[m - 1] * factor start + m
            factor = (z[:, c], dz[:, c], d2z[:, c])
            carried, to_factor = _product_backward(chain[c - start - 1], factor, carried, pairs)
            for q in range(3):
                out[q][:, c] = to_factor[q]
        for q in range(3):
            out[q][:, start] = carried[q]
        start += r
    return tuple(out)
