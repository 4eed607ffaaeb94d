"""Sparsity regularisation of a KAN, with its hand-derived gradient.

    model.fit(dataset, lamb=1e-2)                       # lamb_l1=1, lamb_entropy=2 (pykan's defaults)
    reg = Regularization(lamb=1e-2, lamb_coef=1e-3)
    loss, grad = model.loss_and_grad(x, y, reg=reg)     # loss = data loss + lamb * reg value

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

Cost: in training on the CPU the magnitudes and their gradient come from the kernels, on the
basis tapes the forward pass filled (no (B, I, O) array). Elsewhere the spline activations come
from the layer (KANLayer.spline_activations), plain array code that materialises per layer the
edge activations (B, I, O) and the basis densified to (B, I, G+k): memory O(B I (O + G + k)) per
layer, fine for the interpretable-size models regularisation is meant for.
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
def magnitude_value(xp, sums, n_rows, reg):
    """The magnitude terms summed over layers for magnitudes sums / n_rows (per layer (I, O)):
    (value, per layer d value / d m)."""
    total, dm = 0.0, []
    for s in sums:
        value, dm_l = magnitude_terms(xp, s / n_rows, reg)
        total = total + float(value)
        dm.append(dm_l)
    return total, dm


def coef_value_and_grads(model, reg, params=None):
    """The terms of the regulariser that depend on the coefficients alone: (their value, per
    layer its gradient dcoef or None). They are the same whatever rows are evaluated, so a
    sum over row blocks adds them once (kanarray.training.objective.evaluate)."""
    params = [layer.params for layer in model.layers] if params is None else params
    if reg.lamb_coef == 0 and reg.lamb_coefdiff == 0:
        return 0.0, [None] * model.depth
    total, grads = 0.0, []
    for l in range(model.depth):
        value, dcoef = coef_terms(model.backend.xp, params[l]["coef"], reg)
        total = total + float(value)
        grads.append(dcoef)
    return total, grads


class RegState:
    """The regulariser's magnitude terms at one point, and per-layer gradient pieces for the backward.

    state = RegState(model, acts, reg, params, grads)  # acts = model.forward_all(x, params)
    state.value                                      # reg (not multiplied by lamb)
    dx = state.backward_layer(l, dx)                 # after layer l's own backward: adds
                                                     # lamb * d reg into grads[l] and dx

    params, grads: model.views(...) of the point and of its gradient (default params: the
    model's own). tapes: the CPU kernels' BasisTapes that forward_all filled for acts (then the
    magnitudes come from the kernels).

    The magnitudes are means over rows. By default they are those of acts' rows. Over several
    blocks of rows (or processes): make each block's state with totals=False, add up every
    block's `sums` (per layer |phi| summed over its rows, (I, O)), and give every block the
    totals and their row count with set_totals; each then back-propagates through its own rows
    with weight 1/n_rows. coef=True also counts the coefficient terms in value and adds their
    gradient in backward_layer (one block: a sum over blocks adds them once, outside).
    """

    def __init__(self, model, acts, reg, params=None, grads=None, tapes=None, totals=True, coef=True):
        params = [layer.params for layer in model.layers] if params is None else params
        self.reg = reg
        self._xp = model.backend.xp
        self._grads = grads
        self._dm = [None] * model.depth
        self._pieces = [None] * model.depth
        self.sums = []
        self.value = 0.0
        if reg.uses_activations:
            self._pieces = [layer.spline_activations(acts[l], with_derivs=grads is not None,
                                                     tape=None if tapes is None else tapes[l], p=params[l])
                            for l, layer in enumerate(model.layers)]
            self.sums = [a.abs_sums() for a in self._pieces]  # (I, O) per layer
        self._coef_value, self._dcoef = (coef_value_and_grads(model, reg, params) if coef
                                         else (0.0, [None] * model.depth))
        if totals:
            self.set_totals(self.sums, int(acts[0].shape[0]))

    def set_totals(self, sums, n_rows):
        """The magnitude sums (per layer (I, O)) over all n_rows rows of every block -> value, dm."""
        self._weight = 1.0 / n_rows
        total, self._dm = magnitude_value(self._xp, sums, n_rows, self.reg)
        self._pieces = [p if p is not None and p.n_rows else None for p in self._pieces]
        self.value = float(total + self._coef_value)

    def backward_layer(self, l, dx):
        """Add lamb * d reg / d(layer l params) to grads[l] and lamb * d reg / dx to dx."""
        lamb = self.reg.lamb
        if self._pieces[l] is not None:
            self._pieces[l].add_magnitude_backward(lamb * self._dm[l], dx, self._grads[l],
                                                   weight=self._weight)
            self._pieces[l] = None  # free the (I, B, O) arrays as soon as they are used
        if self._dcoef[l] is not None:
            self._grads[l]["coef"] += lamb * self._dcoef[l]
            self._dcoef[l] = None
        return dx
