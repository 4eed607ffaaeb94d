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
    def __init__(self, in_dim, out_dim, grid, k, knots, base_fun, backend, dtype):
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.grid = grid
        self.k = k
        self.base_fun = base_fun
        self.backend = backend
        self.dtype = dtype
        self.knots = backend.asarray(knots, dtype)
        self.mask = backend.xp.ones((in_dim, out_dim), dtype=dtype)
        self.params = {}
        self.grads = {}

    @property
    def n_basis(self):
        return self.grid + self.k

    def param_shapes(self):
        """Trainable groups in the order they sit in the flat buffer."""
        I, O = self.in_dim, self.out_dim
        return {"coef": (I, self.n_basis, O), "w_base": (I, O), "w_spline": (I, O), "bias": (O,)}

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

    def _kernel_args(self):
        p = self.params
        return self.knots, p["coef"], p["w_base"], p["w_spline"]

    def forward(self, x):
        """x (B, I) on the layer's device and dtype -> y (B, O)."""
        y = self.backend.xp.empty((x.shape[0], self.out_dim), dtype=self.dtype)
        knots, coef, w_base, w_spline = self._kernel_args()
        self.backend.kernels.layer_forward(x, knots, coef, w_base, w_spline, self.params["bias"],
                                           self.mask, self.k, BASE_CODES[self.base_fun], y)
        return y

    def backward(self, x, g):
        """Gradient of sum(g * forward(x)): fills self.grads, returns dx (B, I)."""
        dx = self.backend.xp.empty_like(x)
        knots, coef, w_base, w_spline = self._kernel_args()
        d = self.grads
        self.backend.kernels.layer_backward(x, g, knots, coef, w_base, w_spline, self.mask, self.k,
                                            BASE_CODES[self.base_fun], dx, d["coef"], d["w_base"],
                                            d["w_spline"], d["bias"])
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
