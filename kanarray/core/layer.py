"""One KAN layer: I inputs -> O outputs, a learnable function on every edge.

Every edge (i, o) adds to output o

    phi_io(x) = mask[i,o] ( (1 - sym[i,o]) (w_base[i,o] base(x) + w_spline[i,o] sum_m coef[i,m,o] B_im(x))
                           + sym[i,o] (c f(a x + b) + d) )

and y[b, o] = bias[o] + sum_i phi_io(x[b, i]). The first bracket is the spline branch, run by the
fused kernels; the second is the symbolic branch of the edges fixed to a library function f
(kanarray.funcs.library), with (a, b, c, d) trained like any parameter. `mask` is whether an edge
is alive at all (pruning); `sym` (symbolic_mask) switches an edge from its spline to its function,
and the spline stays untouched underneath, so unfixing brings it back.

A layer owns no parameter memory: `bind` points its parameters at slices of the model's flat
buffer, so optimizers see one vector; `views` gives the same groups over any other flat buffer
(a training workspace's trial point, a gradient). forward and backward take the parameters to
use (default: the layer's own) and backward the gradient views to write. The layer keeps what is not trained:
the knot vectors (I, G+2k+1), the masks (I, O), the function names (host (I, O) strings, "" =
none), the order k and the base function. This module is the only place that computes an edge:
the forward and backward passes, each edge's activation (regularisation, attribution) and each
edge's curve (symbolic fitting, the plot).
"""
import math
from typing import NamedTuple

import numpy as np

from . import grid as gridlib
from ..funcs import library as slib
from ..kernels.common import BASE_CODES, base_function

IDENTITY_SYMBOLIC = (1.0, 0.0, 1.0, 0.0)  # (a, b, c, d) of an edge without a function


class Group(NamedTuple):
    """One array of a layer. axes: per axis "in" (I), "out" (O), "basis" (G + k), "knot"
    (G + 2k + 1) or a fixed size; trained: a view of the model's flat parameter vector (in
    this order), else an array the layer owns."""

    name: str
    axes: tuple
    trained: bool


# Every array of a layer, the one table that binding, pruning (kanarray.analysis.prune),
# refinement (Network.refined) and checkpoints (KAN.state_arrays, from_state) read.
GROUPS = (
    Group("coef", ("in", "basis", "out"), True),
    Group("w_base", ("in", "out"), True),
    Group("w_spline", ("in", "out"), True),
    Group("bias", ("out",), True),
    Group("symbolic", ("in", "out", 4), True),  # (a, b, c, d) of c f(a x + b) + d per edge
    Group("knots", ("in", "knot"), False),
    Group("mask", ("in", "out"), False),
    Group("symbolic_mask", ("in", "out"), False),
    Group("symbolic_fun", ("in", "out"), False),  # host strings, "" = no function
)
GRID_AXES = ("basis", "knot")  # a group with one of these changes with the grid


def representable(values, dtype):
    """Whether host float64 values stay finite cast to dtype."""
    with np.errstate(over="ignore"):
        return bool(np.all(np.isfinite(np.asarray(values, np.float64).astype(dtype))))


def in_dtype(knots, dtype, what):
    """Knots (I, n) as host float64, checked to stay finite and strictly increasing in dtype."""
    knots = np.asarray(knots, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = knots.astype(dtype)
        span = cast[:, -1] - cast[:, 0]  # finite: so is every difference the basis divides by
    if not (np.all(np.isfinite(cast)) and np.all(np.isfinite(span)) and np.all(np.diff(cast, axis=1) > 0)):
        name = np.dtype(dtype).name
        raise ValueError(f"{what} do not stay finite and strictly increasing in {name} (range "
                         f"{knots.min():.6g} .. {knots.max():.6g}, {knots.shape[1]} knots): the "
                         f"inputs span too little or too much for {name} at this grid; use "
                         "dtype='float64', fewer grid intervals, or inputs in the grid range "
                         "(KAN.set_scaling)")
    return knots


class KANLayer:
    def __init__(self, in_dim, out_dim, grid, k, knots, base_fun, backend, dtype, path="auto"):
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.grid = grid
        self.k = k
        self.base_fun = base_fun
        self.path = path  # GPU only: "fused", "dense" or "auto" (kernels.cuda.choose_path)
        self.backend = backend
        self.dtype = dtype
        self.knots = backend.asarray(in_dtype(knots, dtype, "the knots"), dtype)
        self.mask = backend.xp.ones((in_dim, out_dim), dtype=dtype)
        self.symbolic_mask = backend.xp.zeros((in_dim, out_dim), dtype=dtype)
        self.symbolic_fun = np.full((in_dim, out_dim), "", dtype="<U16")  # sets _symbolic_edges
        self.params = {}
        self._groups = [(group.name, self.shape(group), math.prod(self.shape(group)))
                        for group in GROUPS if group.trained]

    @property
    def n_basis(self):
        return self.grid + self.k

    def shape(self, group):
        """The shape of one of GROUPS in this layer."""
        sizes = {"in": self.in_dim, "out": self.out_dim, "basis": self.n_basis,
                 "knot": self.grid + 2 * self.k + 1}
        return tuple(sizes.get(axis, axis) for axis in group.axes)

    def param_shapes(self):
        """Trainable groups in the order they sit in the flat buffer."""
        return {name: shape for name, shape, _ in self._layout()}

    def _layout(self):
        """[(name, shape, size)] of the trainable groups, fixed for a layer (views runs at
        every public evaluation: built once, in __init__)."""
        return self._groups

    def views(self, flat, offset):
        """({group name: view of flat}, end offset): the layer's groups laid out from offset."""
        out = {}
        for name, shape, size in self._layout():
            out[name] = flat[offset:offset + size].reshape(shape)
            offset += size
        return out, offset

    def bind(self, flat_params, offset):
        """Point the layer's parameters at flat_params from offset; return the end."""
        self.params, offset = self.views(flat_params, offset)
        return offset

    def init_params(self, rng, noise_scale):
        """pykan's initialisation: small random splines, w_base ~ U(-1, 1)/sqrt(I), w_spline = 1/sqrt(I)."""
        I, O = self.in_dim, self.out_dim
        scale = 1.0 / np.sqrt(I)
        coef = (rng.random((I, self.n_basis, O)) - 0.5) * noise_scale / self.grid
        self.params["coef"][...] = self.backend.asarray(coef, self.dtype)
        self.params["w_base"][...] = self.backend.asarray((rng.random((I, O)) * 2 - 1) * scale, self.dtype)
        self.params["w_spline"][...] = scale
        self.params["bias"][...] = 0
        self.params["symbolic"][...] = self.backend.asarray(IDENTITY_SYMBOLIC, self.dtype)

    # ------------------------------------------------------------------ forward and backward
    def _kernels(self, batch):
        """(forward, backward) kernels for a batch of this size: the CPU has one path, the GPU two."""
        kernels = self.backend.kernels
        if self.backend.device == "cpu":
            return kernels.layer_forward, kernels.layer_backward
        path = kernels.choose_path(self.grid, self.k, self.dtype, self.in_dim, self.out_dim, batch,
                                   path=self.path)
        return kernels.FORWARD[path], kernels.BACKWARD[path]

    @property
    def symbolic_fun(self):
        """Library function name of every edge, host (I, O) strings ("" = none). Replace it or
        use set_symbolic/clear_symbolic: has_symbolic() is kept from these, not recomputed per
        call (a string comparison per forward pass costs as much as a small layer's kernel)."""
        return self._symbolic_fun

    @symbolic_fun.setter
    def symbolic_fun(self, names):
        self._symbolic_fun = names
        self._symbolic_edges = bool((names != "").any())

    def has_symbolic(self):
        """True when some edge carries a symbolic function."""
        return self._symbolic_edges

    def spline_mask(self):
        """Weight of every edge's spline branch: mask * (1 - symbolic_mask)."""
        return self.mask * (1 - self.symbolic_mask) if self.has_symbolic() else self.mask

    def forward(self, x, p=None, out=None, tape=None, tape_filled=False):
        """x (B, I) on the layer's device and dtype -> y (B, O) (written into `out` if given).

        p: the parameter groups to use (views(...)'s dict; default: the layer's own).
        tape: a CPU kernels' BasisTape for B rows (a training workspace's): forward fills it
        with the basis of x (unless tape_filled: it holds them already), and backward(x, g,
        tape=tape) reuses it instead of recomputing it.
        """
        y = self.backend.xp.empty((x.shape[0], self.out_dim), dtype=self.dtype) if out is None else out
        p = self.params if p is None else p
        spline_mask = self.spline_mask()
        symbolic = self.has_symbolic()
        if tape is not None and not tape_filled:
            self.backend.kernels.basis_tape(x, self.knots, self.k, BASE_CODES[self.base_fun], tape)
        if symbolic and not bool(spline_mask.any()):  # every live edge is symbolic
            y[...] = p["bias"]
        elif tape is not None:
            self.backend.kernels.layer_forward_tape(tape, p["coef"], p["w_base"], p["w_spline"], p["bias"],
                                                    spline_mask, self.k, y)
        else:
            forward, _ = self._kernels(x.shape[0])
            forward(x, self.knots, p["coef"], p["w_base"], p["w_spline"], p["bias"], spline_mask,
                    self.k, BASE_CODES[self.base_fun], y)
        if symbolic:
            y += self.symbolic_activations(x, p).sum(axis=1).astype(y.dtype)
        return y

    def backward(self, x, g, d, p=None, dx=None, tape=None, need_dx=True):
        """Gradient of sum(g * forward(x, p)): writes every group of `d` (gradient views of the
        layer's groups), returns dx (B, I) (into `dx` if given). tape: the BasisTape that
        forward(x, tape=tape) filled, or None. need_dx=False (with a tape and no symbolic
        edge): dx is not computed and None is returned; d gets the same bits."""
        p = self.params if p is None else p
        spline_mask = self.spline_mask()
        symbolic = self.has_symbolic()
        if not need_dx and tape is not None and not symbolic:
            dx = None  # the tape kernel's "no input gradient"
        elif dx is None:
            dx = self.backend.xp.empty_like(x)
        if symbolic and not bool(spline_mask.any()):
            for name in ("coef", "w_base", "w_spline"):
                d[name][...] = 0
            d["bias"][...] = g.sum(axis=0)
            dx[...] = 0
        elif tape is not None:
            self.backend.kernels.layer_backward_tape(tape, g, p["coef"], p["w_base"], p["w_spline"], spline_mask,
                                                     self.k, dx, d["coef"], d["w_base"], d["w_spline"], d["bias"])
        else:
            _, backward = self._kernels(x.shape[0])
            backward(x, g, self.knots, p["coef"], p["w_base"], p["w_spline"], spline_mask, self.k,
                     BASE_CODES[self.base_fun], dx, d["coef"], d["w_base"], d["w_spline"], d["bias"])
        d["symbolic"][...] = 0
        if symbolic:
            self.symbolic_backward(x, g, dx, d, p)
        return dx

    # ------------------------------------------------------------------ the symbolic branch
    def _symbolic_groups(self):
        """Symbolic edges grouped by function: [(function, ii, oo)] with host int64 index arrays."""
        ii, oo = np.nonzero(self.symbolic_fun != "")
        names = self.symbolic_fun[ii, oo]
        return [(slib.get_symbolic(name), ii[names == name], oo[names == name])
                for name in np.unique(names)]

    def _symbolic_terms(self, x, ii, oo, params):
        """Float64 pieces of the edges (ii, oo) over the batch: X (B, E), z = a X + b, (E, 4), weight (E,)."""
        xp = self.backend.xp
        di, do = xp.asarray(ii), xp.asarray(oo)
        p = params["symbolic"][di, do].astype(np.float64)
        weight = (self.mask[di, do] * self.symbolic_mask[di, do]).astype(np.float64)
        X = x[:, di].astype(np.float64)
        return X, X * p[:, 0] + p[:, 1], p, weight

    def symbolic_activations(self, x, params=None):
        """Symbolic branch of every edge, mask * sym * (c f(a x + b) + d): (B, I, O), 0 elsewhere.
        params: the parameter groups to use (default: the layer's own)."""
        xp = self.backend.xp
        params = self.params if params is None else params
        phi = xp.zeros((x.shape[0], self.in_dim, self.out_dim), dtype=np.float64)
        for fn, ii, oo in self._symbolic_groups():
            _, z, p, weight = self._symbolic_terms(x, ii, oo, params)
            phi[:, xp.asarray(ii), xp.asarray(oo)] = weight * (p[:, 2] * fn.f(z) + p[:, 3])
        return phi

    def symbolic_backward(self, x, g, dx, d, params=None):
        """Gradients of sum(g * symbolic branch) at params (default: the layer's own): writes
        d["symbolic"], adds into dx (B, I).

            u = f(z), z = a x + b, out = w (c u + d), G = g[:, o] w
            dd = sum_b G,  dc = sum_b G u,  da = sum_b G c f'(z) x,  db = sum_b G c f'(z),
            dx[:, i] += G c f'(z) a    (summed over the edge's outputs in a fixed order)
        """
        xp = self.backend.xp
        params = self.params if params is None else params
        grads = d["symbolic"]
        g64 = g.astype(np.float64)
        slope = xp.zeros((x.shape[0], self.in_dim, self.out_dim), dtype=np.float64)
        for fn, ii, oo in self._symbolic_groups():
            X, z, p, weight = self._symbolic_terms(x, ii, oo, params)
            G = g64[:, xp.asarray(oo)] * weight
            dz = G * p[:, 2] * fn.df(z)
            grad = xp.stack([(dz * X).sum(axis=0), dz.sum(axis=0), (G * fn.f(z)).sum(axis=0),
                             G.sum(axis=0)], axis=1)
            grads[xp.asarray(ii), xp.asarray(oo)] = grad.astype(grads.dtype)
            slope[:, xp.asarray(ii), xp.asarray(oo)] = dz * p[:, 0]
        dx += slope.sum(axis=2).astype(dx.dtype)

    def set_symbolic(self, i, o, name, params):
        """Make edge (i, o) the symbolic edge c f(a x + b) + d, params = (a, b, c, d) (finite
        in the layer's dtype)."""
        if not representable(params, self.dtype):
            raise ValueError(f"edge ({i},{o}): the constants (a, b, c, d) = {tuple(np.asarray(params, np.float64))} "
                             f"of {name!r} are not finite in the model's {np.dtype(self.dtype).name}")
        fn = slib.get_symbolic(name)
        if slib.LIBRARY.get(fn.name) is not fn:
            raise ValueError(f"{fn.name!r} is not a registered library function; register it with "
                             "kanarray.funcs.library.add_symbolic (an edge stores its function by name)")
        if fn.df is None:
            raise ValueError(f"{fn.name!r} has no derivative; symbolic edges need one to train")
        if len(fn.name) > self.symbolic_fun.dtype.itemsize // 4:
            self.symbolic_fun = self.symbolic_fun.astype(f"<U{len(fn.name)}")
        self.symbolic_fun[i, o] = fn.name
        self._symbolic_edges = True
        self.params["symbolic"][i, o] = self.backend.asarray(np.asarray(params, np.float64), self.dtype)
        self.symbolic_mask[i, o] = 1

    def clear_symbolic(self, i, o):
        """Return edge (i, o) to its spline (kept untouched while the edge was symbolic)."""
        self.symbolic_fun[i, o] = ""
        self._symbolic_edges = bool((self.symbolic_fun != "").any())
        self.symbolic_mask[i, o] = 0
        self.params["symbolic"][i, o] = self.backend.asarray(IDENTITY_SYMBOLIC, self.dtype)

    # ------------------------------------------------------------------ edges one at a time
    def spline_activations(self, x, with_derivs=False, tape=None, p=None):
        """The spline branch of every edge at inputs x with parameters p (default: the layer's
        own), as a SplineActivations (phi (I, B, O)); given the BasisTape that forward(x,
        tape=) filled (CPU training), as a TapedSplineActivations: what the regulariser needs,
        from the kernels, without phi."""
        p = self.params if p is None else p
        if tape is not None:
            return TapedSplineActivations(self, tape, p)
        return SplineActivations(self, x, p, with_derivs)

    def edge_activations(self, x):
        """What every edge adds to its output node at inputs x: phi (B, I, O), both branches and
        the masks, so that forward(x) = bias + phi.sum(axis=1)."""
        phi = self.spline_activations(x).phi.transpose(1, 0, 2)
        if self.has_symbolic():
            phi = phi + self.symbolic_activations(x).astype(phi.dtype)
        return phi

    def spline_curves(self, i, xs):
        """Spline branch of every edge leaving input i at points xs (N,), without the masks:
        w_base base(x) + w_spline spline(x), (N, O) host float64."""
        host = self.backend.to_numpy
        xs = np.asarray(xs, dtype=np.float64)
        knots = host(self.knots).astype(np.float64)[i:i + 1]
        design = gridlib.design_matrices(xs[:, None], knots, self.k)[0]
        coef = host(self.params["coef"]).astype(np.float64)[i]
        base, _ = base_function(xs, BASE_CODES[self.base_fun])
        w_base = host(self.params["w_base"]).astype(np.float64)[i]
        w_spline = host(self.params["w_spline"]).astype(np.float64)[i]
        return base[:, None] * w_base + (design @ coef) * w_spline

    def edge_curves(self, i, xs):
        """Learned curve of every edge leaving input i at xs (N,), both branches blended by
        symbolic_mask, without `mask`: (N, O) host float64."""
        out = self.spline_curves(i, xs)
        sym = self.backend.to_numpy(self.symbolic_mask).astype(np.float64)[i]
        params = self.backend.to_numpy(self.params["symbolic"]).astype(np.float64)[i]
        for o in np.flatnonzero(self.symbolic_fun[i] != ""):
            curve = slib.evaluate_affine(self.symbolic_fun[i, o], params[o], np.asarray(xs, np.float64))
            out[:, o] = (1 - sym[o]) * out[:, o] + sym[o] * curve
        return out

    # ------------------------------------------------------------------ the grid
    def set_knots(self, knots):
        """Give the layer new knots (I, G + 2k + 1), host float64: refused unless they stay
        finite and strictly increasing in the layer's dtype (float32 has about 7 digits: close
        neighbours can collide, far ones overflow)."""
        self.knots[...] = self.backend.asarray(in_dtype(knots, self.dtype, "the knots"), self.dtype)

    def interior_range(self):
        """(I, 2) float64 host array: first and last interior knot of every input."""
        knots = self.backend.to_numpy(self.knots).astype(np.float64)
        return np.stack([knots[:, self.k], knots[:, -1 - self.k]], axis=1)

    def outside_share(self, x):
        """Share of the entries of x (B, I) outside the layer's extended knot range, counting
        only the inputs whose spline part is in use (an input whose edges are all symbolic or
        pruned does not care where its knots are)."""
        live = self.backend.to_numpy(self.spline_mask().any(axis=1))
        if not live.any():
            return 0.0
        outside = (x < self.knots[:, 0]) | (x >= self.knots[:, -1])
        return float(self.backend.xp.count_nonzero(outside[:, live])) / (x.shape[0] * int(live.sum()))


class SplineActivations:
    """The spline branch of every edge of a layer at inputs x, kept in (I, B, O) layout:

        phi[i, b, o] = spline_mask[i,o] (w_base[i,o] base(x[b,i]) + w_spline[i,o] spline_io(x[b,i]))

    with what the backward of a function of the magnitudes m = mean_b |phi| needs. Plain array
    code (NumPy or CuPy) over the basis densified to (I, B, G+k) from the backend's span_basis
    kernel: memory O(B I (O + G + k)), meant for interpretable-size models.
    """

    def __init__(self, layer, x, p, with_derivs=False):
        xp = layer.backend.xp
        self.layer, self.p = layer, p
        self.A, self.Ad = _dense_local_basis(layer, x, with_derivs)  # (I, B, nb)
        self.base_val, self.base_der = _base_branch(xp, x.T, layer.base_fun)  # (I, B)
        self.spline = xp.matmul(self.A, p["coef"])  # (I, B, O)
        self.mask = layer.spline_mask()
        self.phi = self.mask[:, None, :] * (p["w_base"][:, None, :] * self.base_val[:, :, None]
                                             + p["w_spline"][:, None, :] * self.spline)

    @property
    def n_rows(self):
        return self.phi.shape[1]

    def abs_sums(self):
        """sum_b |phi[i, b, o]|, (I, O)."""
        return abs(self.phi).sum(axis=1)

    def add_magnitude_backward(self, dm, dx, d, weight=None):
        """Add d(sum dm * m)/d(params) to the gradient views d and d/dx to dx (B, I), in place.

        m is the mean over this batch's B rows; `weight` (default 1/B) replaces that 1/B when the
        mean runs over more rows than these (the rows of every rank, kanarray.training.distributed).
        """
        xp = self.layer.backend.xp
        p = self.p
        weight = 1.0 / self.phi.shape[1] if weight is None else weight
        q = xp.sign(self.phi) * (dm * weight)[:, None, :] * self.mask[:, None, :]  # (I, B, O)
        d["w_base"] += (q * self.base_val[:, :, None]).sum(axis=1)
        d["w_spline"] += (q * self.spline).sum(axis=1)
        qs = q * p["w_spline"][:, None, :]
        d["coef"] += xp.matmul(self.A.transpose(0, 2, 1), qs)  # (I, nb, O)
        dspline = xp.matmul(self.Ad, p["coef"])  # (I, B, O)
        slope = q * p["w_base"][:, None, :] * self.base_der[:, :, None] + qs * dspline
        dx += slope.sum(axis=2).T


class TapedSplineActivations:
    """SplineActivations' n_rows, abs_sums and add_magnitude_backward from a filled BasisTape
    of the layer's input (CPU kernels edge_magnitude_sums and edge_magnitude_backward): no
    (I, B, O) or (I, B, G+k) arrays, and the spans and bases of the forward pass reused."""

    def __init__(self, layer, tape, p):
        self.layer, self.tape, self.p = layer, tape, p
        self.n_rows = tape.window.shape[1]

    def abs_sums(self):
        layer, p = self.layer, self.p
        sums = np.empty((layer.in_dim, layer.out_dim), dtype=layer.dtype)
        layer.backend.kernels.edge_magnitude_sums(self.tape, p["coef"], p["w_base"], p["w_spline"],
                                                  layer.spline_mask(), layer.k, sums)
        return sums

    def add_magnitude_backward(self, dm, dx, d, weight=None):
        """As SplineActivations.add_magnitude_backward."""
        layer, p = self.layer, self.p
        weight = 1.0 / self.n_rows if weight is None else weight
        mask = layer.spline_mask()
        scale = np.ascontiguousarray(dm * weight * mask, dtype=layer.dtype)
        layer.backend.kernels.edge_magnitude_backward(self.tape, p["coef"], p["w_base"], p["w_spline"], mask,
                                                      layer.k, scale, dx, d["coef"], d["w_base"], d["w_spline"])


def _base_branch(xp, x, base_fun):
    """(value, derivative) of a layer's base function, elementwise, in x's dtype (NumPy or CuPy)."""
    if base_fun == "silu":
        sig = 1 / (1 + xp.exp(-x))
        return x * sig, sig * (1 + x * (1 - sig))
    if base_fun == "identity":
        return x, xp.ones_like(x)
    return xp.zeros_like(x), xp.zeros_like(x)


def _dense_local_basis(layer, x, with_derivs):
    """Basis values (and derivatives) of every (input, sample) as dense (I, B, G+k) arrays.

    From the backend's span_basis kernel (k+1 non-zero values a sample), scattered to their basis
    index by one indexed assignment, so the same code runs on NumPy and CuPy. Entries of a bad
    index or of an off-grid sample go to an extra column G+k that is sliced off (within one
    sample the k+1 good indices are distinct, so no good entry is written twice).
    """
    xp = layer.backend.xp
    B, I = x.shape
    k, nb = layer.k, layer.n_basis
    spans = xp.empty((B, I), dtype=xp.int64)
    values = xp.empty((B, I, k + 1), dtype=layer.dtype)
    derivs = xp.empty((B, I, k + 1), dtype=layer.dtype)
    layer.backend.kernels.span_basis(x, layer.knots, k, spans, values, derivs)
    spans = spans.T[:, :, None]  # (I, B, 1)
    cols = spans - k + xp.arange(k + 1)  # (I, B, k+1)
    cols = xp.where((spans >= 0) & (cols >= 0) & (cols < nb), cols, nb)
    at = (xp.arange(I)[:, None, None], xp.arange(B)[None, :, None], cols)
    A = xp.zeros((I, B, nb + 1), dtype=layer.dtype)
    A[at] = values.transpose(1, 0, 2)
    Ad = None
    if with_derivs:
        Ad = xp.zeros((I, B, nb + 1), dtype=layer.dtype)
        Ad[at] = derivs.transpose(1, 0, 2)
        Ad = Ad[:, :, :nb]
    return A[:, :, :nb], Ad
