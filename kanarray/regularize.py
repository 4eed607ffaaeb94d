"""Sparsity regularisation of a KAN, with its hand-derived gradient.

    model.fit(dataset, lamb=1e-2)                       # lamb_l1=1, lamb_entropy=2 (pykan's defaults)
    reg = Regularization(lamb=1e-2, lamb_coef=1e-3)
    loss, dx = model.device_loss_and_grad(x, y, reg=reg)  # loss = data loss + lamb * reg value

Definitions (what is computed, exactly)
---------------------------------------
For layer l with inputs x (B, I) the per-edge activation is the numerical edge function

    phi[b, i, o] = mask[i,o] ( w_base[i,o] base(x[b,i]) + w_spline[i,o] sum_m coef[i,m,o] B_im(x[b,i]) )

(symbolic edges, when a layer has them, are not penalised: as in pykan only the spline edges are
regularised). Its magnitude over the batch is the paper's L1 norm of an activation function:

    m[i, o] = (1/B) sum_b |phi[b, i, o]|                                    (KAN paper, eq. 2.17)

The value of the regulariser is, summed over layers (pykan 0.2's `MultKAN.reg` formula, applied to
the paper's magnitudes m rather than to pykan's std-based scales):

    L1        = sum_{i,o} m[i,o]
    entropy   = H_in + H_out   (node-level entropies, log base 2, as in pykan 0.2)
      H_in    = -(1/O) sum_o sum_i p[i,o] log2(p[i,o] + 1e-4),  p[i,o] = m[i,o] / (sum_i' m[i',o] + 1)
                (for every output node: how its incoming edges share its magnitude)
      H_out   = -(1/I) sum_i sum_o q[i,o] log2(q[i,o] + 1e-4),  q[i,o] = m[i,o] / (sum_o' m[i,o'] + 1)
                (for every input node: how its outgoing edges share its magnitude)
    coef L1   = (1/(G+k))   sum_{i,m,o} |coef[i,m,o]|                 (pykan: sum over edges of the
    coef diff = (1/(G+k-1)) sum_{i,m,o} |coef[i,m+1,o] - coef[i,m,o]|   mean over the basis index)

    reg   = sum_l  lamb_l1 L1_l + lamb_entropy (H_in,l + H_out,l) + lamb_coef coefL1_l
                   + lamb_coefdiff coefdiff_l
    total = data loss + lamb * reg

The derivative of |.| at 0 is taken as 0. The magnitude terms depend on the layer input x, so their
gradient reaches the layer's parameters and dL/dx, which the model then back-propagates through
the earlier layers (model.backward adds each layer's contribution right after that layer's own
backward).

Cost: this runs as plain array code (NumPy or CuPy, `xp = model.backend.xp`) on the local basis
from the backend's `span_basis` kernel, materialising per layer the edge activations (B, I, O) and
the basis densified to (B, I, G+k) (values and derivatives). Memory O(B I (O + G + k)) per layer is
fine for the interpretable-size models regularisation is meant for, not for large models.
"""
import math
from dataclasses import dataclass

import numpy as np

ENTROPY_EPS = 1e-4  # pykan: log2(p + 1e-4)
ENTROPY_SHIFT = 1.0  # pykan: p = m / (sum m + 1)
LN2 = math.log(2.0)


@dataclass(frozen=True)
class Regularization:
    """Weights of the regulariser; the objective is loss + lamb * reg (see the module docstring)."""

    lamb: float = 0.0
    lamb_l1: float = 1.0
    lamb_entropy: float = 2.0
    lamb_coef: float = 0.0
    lamb_coefdiff: float = 0.0

    def __post_init__(self):
        for name in ("lamb", "lamb_l1", "lamb_entropy", "lamb_coef", "lamb_coefdiff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")

    @property
    def uses_activations(self):
        return self.lamb_l1 != 0 or self.lamb_entropy != 0

    @property
    def active(self):
        """False when the regulariser contributes nothing (then nothing is computed)."""
        return self.lamb != 0 and (self.uses_activations or self.lamb_coef != 0
                                   or self.lamb_coefdiff != 0)


# ---------------------------------------------------------------------- building blocks
def base_function(xp, x, base_fun):
    """(value, derivative) of a layer's base branch, elementwise, in x's dtype."""
    if base_fun == "silu":
        sig = 1 / (1 + xp.exp(-x))
        return x * sig, sig * (1 + x * (1 - sig))
    if base_fun == "identity":
        return x, xp.ones_like(x)
    if base_fun == "zero":
        return xp.zeros_like(x), xp.zeros_like(x)
    raise ValueError(f"unknown base function {base_fun!r}")


def dense_local_basis(layer, x, with_derivs=True):
    """Basis values (and derivatives) of every (sample, input) as dense (B, I, G+k) arrays.

    Built from the backend's span_basis kernel (k+1 non-zero values a sample) by scattering the
    local values to their basis index with comparisons, so the same code runs on NumPy and CuPy.
    """
    xp = layer.backend.xp
    B, I = x.shape
    k = layer.k
    spans = xp.empty((B, I), dtype=xp.int64)
    values = xp.empty((B, I, k + 1), dtype=layer.dtype)
    derivs = xp.empty((B, I, k + 1), dtype=layer.dtype)
    layer.backend.kernels.span_basis(x, layer.knots, k, spans, values, derivs)
    index = xp.arange(layer.n_basis)
    A = xp.zeros((B, I, layer.n_basis), dtype=layer.dtype)
    Ad = xp.zeros_like(A) if with_derivs else None
    for r in range(k + 1):  # entries of a bad index or of an off-grid sample hold 0
        hit = (spans - k + r)[:, :, None] == index
        A += values[:, :, r, None] * hit
        if with_derivs:
            Ad += derivs[:, :, r, None] * hit
    return A, Ad


def _spline_mask(layer):
    """The mask of the spline (numerical) edges: layer.spline_mask() where symbolic edges exist."""
    spline_mask = getattr(layer, "spline_mask", None)
    return layer.mask if spline_mask is None else spline_mask()


class _LayerActivations:
    """Edge activations of one layer, kept in (I, B, O) layout, with what the backward needs."""

    def __init__(self, layer, x, with_derivs=True):
        xp = layer.backend.xp
        p = layer.params
        self.layer = layer
        self.x = x
        A, Ad = dense_local_basis(layer, x, with_derivs)
        self.A = A.transpose(1, 0, 2)  # (I, B, nb)
        self.Ad = None if Ad is None else Ad.transpose(1, 0, 2)
        base_val, self.base_der = base_function(xp, x.T, layer.base_fun)  # (I, B)
        self.base_val = base_val
        self.spline = xp.matmul(self.A, p["coef"])  # (I, B, O)
        self.mask = _spline_mask(layer)
        self.phi = self.mask[:, None, :] * (p["w_base"][:, None, :] * base_val[:, :, None]
                                             + p["w_spline"][:, None, :] * self.spline)

    def magnitudes(self):
        """m[i, o] = mean_b |phi[b, i, o]|, (I, O)."""
        return abs(self.phi).mean(axis=1)

    def add_backward(self, dm, dx):
        """Add d(sum dm * m)/d(params) to the layer's grads and d/dx to dx (B, I), in place."""
        xp = self.layer.backend.xp
        layer = self.layer
        p, d = layer.params, layer.grads
        B = self.phi.shape[1]
        q = xp.sign(self.phi) * (dm / B)[:, None, :] * self.mask[:, None, :]  # (I, B, O)
        d["w_base"] += (q * self.base_val[:, :, None]).sum(axis=1)
        d["w_spline"] += (q * self.spline).sum(axis=1)
        qs = q * p["w_spline"][:, None, :]
        d["coef"] += xp.matmul(self.A.transpose(0, 2, 1), qs)  # (I, nb, O)
        dspline = xp.matmul(self.Ad, p["coef"])  # (I, B, O)
        slope = q * p["w_base"][:, None, :] * self.base_der[:, :, None] + qs * dspline
        dx += slope.sum(axis=2).T


def edge_activations(layer, x):
    """phi (B, I, O) of the numerical edges of `layer` at inputs x (device arrays)."""
    return _LayerActivations(layer, x, with_derivs=False).phi.transpose(1, 0, 2)


def node_entropy(xp, m, axis):
    """pykan's node-level entropy of magnitudes m (I, O) and its gradient dH/dm.

    axis=0: groups are output nodes (normalise over inputs); axis=1: groups are input nodes.
    H = -(1/n_groups) sum_groups sum_j p_j log2(p_j + eps), p_j = m_j / (sum_group m + 1).
    With h_j = dH_group/dp_j = -(log2(p_j + eps) + p_j / ((p_j + eps) ln 2)) and
    dp_i/dm_j = (delta_ij - p_i) / s:   dH/dm_j = (h_j - sum_i h_i p_i) / s / n_groups.
    """
    n_groups = m.shape[1 - axis]
    s = m.sum(axis=axis, keepdims=True) + ENTROPY_SHIFT
    p = m / s
    lg = xp.log2(p + ENTROPY_EPS)
    value = -(p * lg).sum() / n_groups
    h = -(lg + p / ((p + ENTROPY_EPS) * LN2))
    grad = (h - (h * p).sum(axis=axis, keepdims=True)) / s / n_groups
    return value, grad


def magnitude_terms(xp, m, reg):
    """lamb_l1 L1 + lamb_entropy (H_in + H_out) of magnitudes m (I, O), and its gradient."""
    value = reg.lamb_l1 * m.sum()
    grad = xp.full_like(m, reg.lamb_l1)
    if reg.lamb_entropy != 0:
        for axis in (0, 1):
            h, dh = node_entropy(xp, m, axis)
            value = value + reg.lamb_entropy * h
            grad += reg.lamb_entropy * dh
    return value, grad


def coef_terms(xp, coef, reg):
    """lamb_coef coefL1 + lamb_coefdiff coefdiff of coef (I, nb, O), and its gradient."""
    value = 0.0
    grad = xp.zeros_like(coef)
    nb = coef.shape[1]
    if reg.lamb_coef != 0:
        value = value + reg.lamb_coef / nb * abs(coef).sum()
        grad += (reg.lamb_coef / nb) * xp.sign(coef)
    if reg.lamb_coefdiff != 0 and nb > 1:
        w = reg.lamb_coefdiff / (nb - 1)
        sd = xp.sign(coef[:, 1:, :] - coef[:, :-1, :])
        value = value + w * abs(coef[:, 1:, :] - coef[:, :-1, :]).sum()
        grad[:, 1:, :] += w * sd
        grad[:, :-1, :] -= w * sd
    return value, grad


# ---------------------------------------------------------------------- model level
class RegTape:
    """The regulariser at one point: its value, and per-layer gradient pieces for the backward.

    tape = RegTape(model, acts, reg)   # acts = model.forward_all(x)
    tape.value                        # reg (not multiplied by lamb)
    dx = tape.backward_layer(l, dx)   # after layer l's own backward: adds lamb * d reg
    """

    def __init__(self, model, acts, reg, need_grad=True):
        xp = model.backend.xp
        self.reg = reg
        self._layers = model.layers
        self._acts = [None] * model.depth
        self._dm = [None] * model.depth
        self._dcoef = [None] * model.depth
        total = 0.0
        for l, layer in enumerate(model.layers):
            if reg.uses_activations:
                acts_l = _LayerActivations(layer, acts[l], with_derivs=need_grad)
                value, dm = magnitude_terms(xp, acts_l.magnitudes(), reg)
                total = total + value
                self._acts[l], self._dm[l] = acts_l, dm
            if reg.lamb_coef != 0 or reg.lamb_coefdiff != 0:
                value, dcoef = coef_terms(xp, layer.params["coef"], reg)
                total = total + value
                self._dcoef[l] = dcoef
        self.value = float(total)

    def backward_layer(self, l, dx):
        """Add lamb * d reg / d(layer l params) to its grads and lamb * d reg / dx to dx."""
        lamb = self.reg.lamb
        if self._acts[l] is not None:
            self._acts[l].add_backward(lamb * self._dm[l], dx)
            self._acts[l] = None  # free the (I, B, O) arrays as soon as they are used
        if self._dcoef[l] is not None:
            self._layers[l].grads["coef"] += lamb * self._dcoef[l]
            self._dcoef[l] = None
        return dx


def tape(model, acts, reg):
    """RegTape for model at activations acts, or None when reg is None or inactive."""
    if reg is None or not reg.active:
        return None
    return RegTape(model, acts, reg)


def value(model, x, reg):
    """The regulariser's value (not multiplied by lamb) at inputs x (device array)."""
    if reg is None:
        return 0.0
    return RegTape(model, model.forward_all(x), reg, need_grad=False).value
