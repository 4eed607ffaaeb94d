"""One KAN layer: I inputs -> O outputs, a learnable B-spline on every edge.

    y[b, o] = bias[o] + sum_i mask[i,o] ( w_base[i,o] base(x[b,i])
                                         + w_spline[i,o] sum_m coef[i,m,o] B_im(x[b,i]) )

A layer owns no parameter memory: `bind` points its parameters (and their gradients) at slices
of the model's flat buffers, so optimizers see one vector. The layer keeps only what is not
trained: the knot vectors (I, G+2k+1), the mask (I, O), the order k and the base function.
"""
import numpy as np

from .kernels.reference import BASE_CODES


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
        self.knots = backend.asarray(knots, dtype)
        self.mask = backend.xp.ones((in_dim, out_dim), dtype=dtype)
        # symbolic edges (kanarray.symbolic): edge (i, o) outputs
        #   mask * ((1 - symbolic_mask) * spline branch + symbolic_mask * (c f(a x + b) + d))
        # symbolic_fun holds f's library name per edge ("" = none; host array); the invariant
        # symbolic_mask[i, o] != 0 only where symbolic_fun[i, o] != "" is kept by fix/unfix.
        self.symbolic_mask = backend.xp.zeros((in_dim, out_dim), dtype=dtype)
        self.symbolic_fun = np.full((in_dim, out_dim), "", dtype="<U16")
        self.params = {}
        self.grads = {}

    @property
    def n_basis(self):
        return self.grid + self.k

    def param_shapes(self):
        """Trainable groups in the order they sit in the flat buffer."""
        I, O = self.in_dim, self.out_dim
        return {"coef": (I, self.n_basis, O), "w_base": (I, O), "w_spline": (I, O), "bias": (O,),
                "symbolic": (I, O, 4)}  # (a, b, c, d) of c f(a x + b) + d per edge

    def bind(self, flat_params, flat_grads, offset):
        """Point parameters and gradients at flat_params/flat_grads from offset; return the end."""
        for name, shape in self.param_shapes().items():
            size = int(np.prod(shape))
            self.params[name] = flat_params[offset:offset + size].reshape(shape)
            self.grads[name] = flat_grads[offset:offset + size].reshape(shape)
            offset += size
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
        self.params["symbolic"][...] = self.backend.asarray([1.0, 0.0, 1.0, 0.0], self.dtype)

    def _kernel_pair(self, batch):
        """(forward, backward) kernels for a batch of this size: the CPU has one path, the GPU two."""
        kernels = self.backend.kernels
        if self.backend.device == "cpu":
            return kernels.layer_forward, kernels.layer_backward
        path = kernels.choose_path(self.grid, self.k, self.dtype, self.in_dim, self.out_dim, batch,
                                   path=self.path)
        return kernels.FORWARD[path], kernels.BACKWARD[path]

    def _kernel_args(self):
        p = self.params
        return self.knots, p["coef"], p["w_base"], p["w_spline"]

    def has_symbolic(self):
        """True when some edge carries a symbolic function."""
        return bool((self.symbolic_fun != "").any())

    def spline_mask(self):
        """Mask the spline kernels see: mask * (1 - symbolic_mask) (just mask without symbolic edges)."""
        return self.mask * (1 - self.symbolic_mask) if self.has_symbolic() else self.mask

    def _splines_off(self, spline_mask):
        """True when symbolic edges exist and no edge has a spline part left (skip the kernels)."""
        return self.has_symbolic() and not bool(spline_mask.any())

    def forward(self, x):
        """x (B, I) on the layer's device and dtype -> y (B, O)."""
        y = self.backend.xp.empty((x.shape[0], self.out_dim), dtype=self.dtype)
        knots, coef, w_base, w_spline = self._kernel_args()
        spline_mask = self.spline_mask()
        if self._splines_off(spline_mask):
            y[...] = self.params["bias"]
        else:
            forward, _ = self._kernel_pair(x.shape[0])
            forward(x, knots, coef, w_base, w_spline, self.params["bias"], spline_mask, self.k,
                    BASE_CODES[self.base_fun], y)
        if self.has_symbolic():
            from .symbolic import branch_forward

            branch_forward(self, x, y)
        return y

    def backward(self, x, g):
        """Gradient of sum(g * forward(x)): fills self.grads, returns dx (B, I)."""
        dx = self.backend.xp.empty_like(x)
        knots, coef, w_base, w_spline = self._kernel_args()
        d = self.grads
        spline_mask = self.spline_mask()
        if self._splines_off(spline_mask):
            for name in ("coef", "w_base", "w_spline"):
                d[name][...] = 0
            d["bias"][...] = g.sum(axis=0)
            dx[...] = 0
        else:
            _, backward = self._kernel_pair(x.shape[0])
            backward(x, g, knots, coef, w_base, w_spline, spline_mask, self.k,
                     BASE_CODES[self.base_fun], dx, d["coef"], d["w_base"], d["w_spline"], d["bias"])
        d["symbolic"][...] = 0
        if self.has_symbolic():
            from .symbolic import branch_backward

            branch_backward(self, x, g, dx)
        return dx

    def interior_range(self):
        """(I, 2) float64 host array: first and last interior knot of every input."""
        knots = self.backend.to_numpy(self.knots).astype(np.float64)
        return np.stack([knots[:, self.k], knots[:, -1 - self.k]], axis=1)

    def outside_share(self, x):
        """Share of the entries of x (B, I) outside the layer's extended knot range."""
        xp = self.backend.xp
        outside = (x < self.knots[:, 0]) | (x >= self.knots[:, -1])
        return float(xp.count_nonzero(outside)) / x.size
