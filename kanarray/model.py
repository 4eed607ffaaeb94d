"""The KAN model: a chain of KAN layers over one flat parameter buffer.

    model = KAN(width=[2, 5, 1], grid=5, k=3)
    y = model(x)                          # (B, 2) -> (B, 1)
    mse, grad = model.loss_and_grad(x, y) # grad: flat, aligned with model.params
    model.fit(dataset, opt="lbfgs", steps=50)
    model = model.refine(10)              # grid extension

Conventions follow the reference implementation (pykan) where its users rely on them. Every
trainable parameter lives in `model.params`, one 1-D array on the model's device; layers hold
views into it, so an optimizer updating `model.params` in place updates the layers.
"""
import numbers
import warnings

import numpy as np

from . import grid as gridlib
from .backend import get_backend, return_like
from .checks import check_batch, check_int, check_real_array
from .kernels.reference import BASE_CODES
from .layer import KANLayer

DTYPES = {"float32": np.float32, "float64": np.float64}
PATHS = ("auto", "fused", "dense")
OUTSIDE_WARN_SHARE = 0.1  # warn when more than this share of a layer's inputs is off its grid


def _check_config(width, grid, k, grid_range, base_fun, grid_eps, dtype):
    if isinstance(width, (str, bytes)) or not hasattr(width, "__len__") or len(width) < 2:
        raise ValueError(f"width must be a list of at least 2 layer widths, got {width!r}")
    width = [check_int(w, "width entries", 1) for w in width]
    grid = check_int(grid, "grid", 1)
    k = check_int(k, "k", 1)
    if (not hasattr(grid_range, "__len__") or len(grid_range) != 2
            or not all(isinstance(v, numbers.Real) for v in grid_range)
            or not np.all(np.isfinite(grid_range)) or not grid_range[0] < grid_range[1]):
        raise ValueError(f"grid_range must be (lo, hi) with finite lo < hi, got {grid_range!r}")
    if base_fun not in BASE_CODES:
        raise ValueError(f"base_fun must be one of {sorted(BASE_CODES)}, got {base_fun!r}")
    if not isinstance(grid_eps, numbers.Real) or not 0 <= grid_eps <= 1:
        raise ValueError(f"grid_eps must be a number in [0, 1], got {grid_eps!r}")
    if str(dtype) not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return width, grid, k, (float(grid_range[0]), float(grid_range[1])), str(dtype)


class KAN:
    """A Kolmogorov–Arnold Network.

    width       layer widths, e.g. [2, 5, 1]: inputs, hidden nodes, outputs
    grid        number of grid intervals G of every spline
    k           spline order (3 = cubic)
    grid_range  initial interval covered by the grid
    base_fun    "silu" (default), "identity" or "zero": the residual branch of every edge
    grid_eps    grid update mix: 1 = uniform knots, 0 = knots at sample quantiles
    seed        seed of the initial parameters
    dtype       "float64" (default: scientific accuracy) or "float32"
    device      "cpu" or "cuda"
    noise_scale amplitude of the initial random splines
    path        GPU kernels: "fused" (sparse, memory independent of G), "dense" (basis matrix
                times cuBLAS) or "auto" (kernels.cuda.choose_path); the CPU has one path
    """

    def __init__(self, width=(2, 5, 1), grid=5, k=3, grid_range=(-1, 1), base_fun="silu",
                 grid_eps=0.02, seed=0, dtype="float64", device="cpu", noise_scale=0.5, path="auto",
                 input_ids=None):
        width, grid, k, grid_range, dtype = _check_config(width, grid, k, grid_range, base_fun,
                                                          grid_eps, dtype)
        # original index of every input (kept by prune_input, so formulas name x_1.. as in the data)
        from .prune import check_input_ids

        self.input_ids = check_input_ids(input_ids, width[0])
        self.node_scores = self.edge_scores = None  # set by attribute()
        self.cache_data = None  # the last data attribute()/fit() saw; prune() defaults to it
        self.width = width
        self.grid = grid
        self.k = k
        self.grid_range = grid_range
        self.base_fun = base_fun
        self.grid_eps = float(grid_eps)
        self.seed = seed
        self.dtype = dtype
        self.device = device
        self.noise_scale = noise_scale
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.path = path
        self.backend = get_backend(device)
        self.layers = [
            KANLayer(i, o, grid, k, gridlib.uniform_knots(i, grid, k, grid_range), base_fun,
                     self.backend, self.np_dtype, path)
            for i, o in zip(width[:-1], width[1:])
        ]
        self._allocate()
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.init_params(rng, noise_scale)

    # ------------------------------------------------------------------ parameters
    @property
    def np_dtype(self):
        return DTYPES[self.dtype]

    @property
    def depth(self):
        return len(self.layers)

    def _allocate(self):
        """One flat buffer for all parameters and one for their gradients; layers bind views."""
        xp = self.backend.xp
        total = sum(int(np.prod(s)) for layer in self.layers for s in layer.param_shapes().values())
        self._params = xp.zeros(total, dtype=self.np_dtype)
        self._grad = xp.zeros(total, dtype=self.np_dtype)
        offset = 0
        for layer in self.layers:
            offset = layer.bind(self._params, self._grad, offset)

    @property
    def params(self):
        """All trainable parameters as one flat 1-D array (the layers' storage itself)."""
        return self._params

    @params.setter
    def params(self, values):
        values = self.backend.asarray(values, self.np_dtype)
        if values.shape != self._params.shape:
            raise ValueError(f"params must have shape {self._params.shape}, got {values.shape}")
        self._params[...] = values

    @property
    def num_params(self):
        return int(self._params.size)

    def config(self):
        """Constructor arguments, JSON-serialisable (used by save and by derived models)."""
        return {"width": list(self.width), "grid": self.grid, "k": self.k,
                "grid_range": list(self.grid_range), "base_fun": self.base_fun,
                "grid_eps": self.grid_eps, "seed": self.seed, "dtype": self.dtype,
                "device": self.device, "noise_scale": self.noise_scale, "path": self.path,
                "input_ids": list(self.input_ids)}

    # ------------------------------------------------------------------ forward / backward
    def _input(self, x, name="x"):
        return self.backend.asarray(check_batch(x, name, self.width[0]), self.np_dtype)

    def _labels(self, y, n_rows, name="y"):
        y = check_real_array(y, name)
        y = check_batch(y.reshape(-1, 1) if y.ndim == 1 else y, name, self.width[-1])
        if y.shape[0] != n_rows:
            raise ValueError(f"{name} has {y.shape[0]} rows but the inputs have {n_rows}")
        return self.backend.asarray(y, self.np_dtype)

    def forward_all(self, x):
        """Activations of every layer: [x, h_1, ..., y] for x already on the device."""
        acts = [x]
        for layer in self.layers:
            acts.append(layer.forward(acts[-1]))
        return acts

    def backward(self, acts, g, reg=None):
        """Back-propagate g = dL/dy through the layers; fills the gradient buffer, returns dL/dx.

        reg: a kanarray.regularize.RegTape at these activations; its gradient for layer l is
        added (parameters and dL/dx) right after layer l's own backward.
        """
        for l in range(self.depth - 1, -1, -1):
            g = self.layers[l].backward(acts[l], g)
            if reg is not None:
                g = reg.backward_layer(l, g)
        return g

    def __call__(self, x):
        """Outputs (B, width[-1]) for inputs x (B, width[0]), on the kind of array given."""
        xd = self._input(x)
        acts = self.forward_all(xd)
        self._warn_outside(acts)
        return return_like(acts[-1], x, self.backend)

    predict = __call__

    def score(self, x, y):
        """Coefficient of determination R^2 of the predictions (over all outputs)."""
        pred = self.backend.to_numpy(self.forward_all(self._input(x))[-1])
        y = self.backend.to_numpy(self._labels(y, pred.shape[0]))
        return 1.0 - float(((pred - y) ** 2).sum() / max(((y - y.mean(0)) ** 2).sum(), 1e-300))

    def _warn_outside(self, acts):
        for l, (layer, x) in enumerate(zip(self.layers, acts)):
            share = layer.outside_share(x)
            if share > OUTSIDE_WARN_SHARE:
                warnings.warn(f"layer {l}: {share:.0%} of its inputs fall outside its grid, where "
                              "the spline part is zero; consider model.update_grid(x)", stacklevel=3)

    def loss_and_grad(self, x, y, input_grad=False, reg=None):
        """Mean squared error and its gradient through every layer (the hand-derived backward).

        x (B, width[0]), y (B, width[-1]) -> (mse, grad) with grad a new flat array aligned
        with model.params; with input_grad=True also dL/dx (B, width[0]). With reg (a
        kanarray.regularize.Regularization) the loss is mse + reg.lamb * regulariser.
        """
        xd = self._input(x)
        yd = self._labels(y, xd.shape[0])
        mse, dx = self.device_loss_and_grad(xd, yd, reg=reg)
        grad = self._grad.copy()
        return (mse, grad, return_like(dx, x, self.backend)) if input_grad else (mse, grad)

    def device_loss_and_grad(self, x, y, loss_fn=None, reg=None):
        """(loss, dL/dx) for device arrays, gradient left in the model's gradient buffer.

        loss_fn(pred, y) -> (loss, dloss/dpred); default the mean squared error.
        reg: a kanarray.regularize.Regularization; loss becomes loss + reg.lamb * regulariser
        and self.last_reg holds the regulariser's value (0.0 without one).
        """
        from .regularize import tape as reg_tape

        acts = self.forward_all(x)
        tape = reg_tape(self, acts, reg)
        self.last_reg = 0.0 if tape is None else tape.value
        if loss_fn is None:
            residual = acts[-1] - y
            loss = float((residual * residual).mean())
            g = residual * (2.0 / residual.size)
        else:
            loss, g = loss_fn(acts[-1], y)
            loss = float(loss)
        if tape is not None:
            loss += reg.lamb * tape.value
        return loss, self.backward(acts, self.backend.asarray(g, self.np_dtype), tape)

    # ------------------------------------------------------------------ grids
    def update_grid(self, x, gather=None):
        """Move every layer's knots to fit the samples x (quantile/uniform mix by grid_eps).

        Coefficients are refit by least squares so that each edge keeps its shape. Layer l is
        updated on the activations of the layers before it, already updated (as pykan does).
        gather (distributed training): x is this rank's device rows, possibly none, and
        gather(samples) returns every rank's host samples of a layer, so all ranks compute the
        same knots and refit from the union (see kanarray.distributed).
        """
        xd = self._input(x) if gather is None else x
        for l, layer in enumerate(self.layers):
            samples = self.backend.to_numpy(self.forward_all(xd)[l]).astype(np.float64)
            if gather is not None:
                samples = gather(samples)
            knots = gridlib.knots_from_samples(samples, layer.grid, layer.k, self.grid_eps,
                                               layer.interior_range())
            self._set_spline(layer, layer, samples, knots)

    def refine(self, new_grid, x=None):
        """A new model with new_grid intervals whose splines are least-squares fits of these.

        With samples x, each layer's new knots follow the samples as in update_grid. Without,
        they subdivide the current knots (kanarray.grid.subdivide_knots): when new_grid is a
        multiple of the current grid every old knot is kept and the fit is exact.
        """
        new_grid = check_int(new_grid, "new_grid", 1)
        new = KAN(**{**self.config(), "grid": new_grid})
        acts = [None] * self.depth if x is None else self.forward_all(self._input(x))
        for l, (old, layer) in enumerate(zip(self.layers, new.layers)):
            if x is None:
                samples = np.empty((0, old.in_dim))
                interior = self.backend.to_numpy(old.knots).astype(np.float64)[:, old.k:old.k + old.grid + 1]
                knots = gridlib.extend_knots(gridlib.subdivide_knots(interior, new_grid), layer.k)
            else:
                samples = self.backend.to_numpy(acts[l]).astype(np.float64)
                knots = gridlib.knots_from_samples(samples, new_grid, layer.k, self.grid_eps,
                                                   old.interior_range())
            for name in ("w_base", "w_spline", "bias", "symbolic"):
                layer.params[name][...] = old.params[name]
            layer.mask[...] = old.mask
            layer.symbolic_mask[...] = old.symbolic_mask
            layer.symbolic_fun = old.symbolic_fun.copy()
            self._set_spline(old, layer, samples, knots)
        return new

    def _set_spline(self, old, layer, samples, knots):
        """Give `layer` the knots `knots` and coefficients fitting `old`'s splines."""
        to_host = self.backend.to_numpy
        coef = gridlib.refit_coef(samples, to_host(old.knots).astype(np.float64),
                                  to_host(old.params["coef"]).astype(np.float64), knots, old.k, layer.k)
        layer.knots[...] = layer.backend.asarray(knots, layer.dtype)
        layer.params["coef"][...] = layer.backend.asarray(coef, layer.dtype)

    # ------------------------------------------------------------------ attribution and pruning
    def attribute(self, x=None):
        """Node and edge importance scores on inputs x (default: the last data seen); see
        kanarray.prune.attribute. Sets self.edge_scores and self.node_scores; returns self."""
        from .prune import attribute

        return attribute(self, x)

    @property
    def feature_score(self):
        """Importance of every input (node_scores[0]), computed on the last data if needed."""
        if self.node_scores is None:
            self.attribute()
        return self.node_scores[0]

    def prune_node(self, threshold=1e-2, x=None):
        """A new model without the hidden nodes scoring below threshold (kanarray.prune)."""
        from .prune import prune_node

        return prune_node(self, threshold, x)

    def prune_edge(self, threshold=3e-2, x=None):
        """Mask (in place) the edges scoring below threshold; returns self (kanarray.prune)."""
        from .prune import prune_edge

        return prune_edge(self, threshold, x)

    def prune(self, node_th=1e-2, edge_th=3e-2, x=None):
        """A new, smaller model: weak hidden nodes removed, weak edges masked (kanarray.prune)."""
        from .prune import prune

        return prune(self, node_th, edge_th, x)

    def prune_input(self, threshold=1e-2, active_inputs=None, x=None):
        """A new model without the inputs scoring below threshold, or keeping active_inputs;
        it takes x[:, new.input_ids] of the original data (kanarray.prune)."""
        from .prune import prune_input

        return prune_input(self, threshold, active_inputs, x)

    # ------------------------------------------------------------------ training and I/O
    def fit(self, dataset, **kwargs):
        """Train on dataset (see kanarray.train.fit for the arguments); returns the history dict."""
        from .train import fit

        return fit(self, dataset, **kwargs)

    def save(self, path):
        """Write the model to `path` (.npz with JSON metadata); see kanarray.load."""
        from .io import save

        save(self, path)

    # ------------------------------------------------------------------ symbolic edges and plot
    # c * f(a*x + b) + d on chosen edges; conventions and details in kanarray.symbolic
    def fix_symbolic(self, l, i, j, name, fit_params=True, a_range=(-10, 10), b_range=(-10, 10),
                     x=None, verbose=False):
        """Fix edge (l, i, j) to c f(a x + b) + d, fitted to its curve; returns the fit's R^2."""
        from .symbolic import fix_symbolic

        return fix_symbolic(self, l, i, j, name, fit_params, a_range, b_range, x, verbose)

    def unfix_symbolic(self, l, i, j):
        """Return edge (l, i, j) to its spline."""
        from .symbolic import unfix_symbolic

        unfix_symbolic(self, l, i, j)

    def suggest_symbolic(self, l, i, j, topk=5, lib=None, x=None, weight_simple=0.8,
                         r2_threshold=0.0, verbose=True):
        """Library functions ranked for edge (l, i, j): [(name, r2, complexity, score, params)]."""
        from .symbolic import suggest_symbolic

        return suggest_symbolic(self, l, i, j, topk, lib, x, weight_simple, r2_threshold, verbose)

    def auto_symbolic(self, lib=None, r2_threshold=0.99, weight_simple=0.8, x=None, verbose=1):
        """Fix every live edge to its best library function; returns {(l, i, j): (name, r2)}
        (name "" where no candidate reached r2_threshold and the edge stays a spline)."""
        from .symbolic import auto_symbolic

        return auto_symbolic(self, lib, r2_threshold, weight_simple, x, verbose)

    def symbolic_formula(self, var_names=None, simplify=False, normalize=True, allow_splines=False):
        """One formula per output (sympy expressions, or strings without sympy)."""
        from .symbolic import symbolic_formula

        return symbolic_formula(self, var_names, simplify, normalize, allow_splines)

    def plot(self, path, x=None, **kwargs):
        """Draw the network with every edge's learned curve to `path` (needs matplotlib)."""
        from .plot import plot

        return plot(self, path, x=x, **kwargs)

    def __repr__(self):
        return (f"KAN(width={self.width}, grid={self.grid}, k={self.k}, dtype={self.dtype!r}, "
                f"device={self.device!r}, num_params={self.num_params})")
