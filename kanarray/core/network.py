"""The network: a chain of KAN layers over one flat parameter buffer, and its grids.

This is the machinery under kanarray.KAN (kanarray/model.py), which adds the public, validated
face. Everything here works on arrays already on the model's device and dtype.

    net.forward_all(x)          [x, h_1, ..., y]: every layer's input, and the output
    net.backward(acts, g, grads) writes dL/dparams into grads (net.views of a flat gradient
                                aligned with net.params), returns dL/dx
    net.regrid(x)               knots follow the samples, splines keep their shape
    net.refined(G)              a new network on a finer grid, splines fitted to these
    net.derived(width=..., ...) a new network of the same kind with other settings

A level of width may be a pair [n_sum, n_mult]: the layer before it then outputs the factors
of its multiplication nodes, multiplied in forward_all (kanarray.core.nodes).

Every trainable parameter lives in `params`, one 1-D array; layers hold views into it, so an
optimizer updating `params` in place updates the layers. Any other flat array of that length (a
trial point, a gradient) is read and written through the same layout by `views`.
"""
import numbers

import numpy as np

from . import grid as gridlib
from . import nodes
from .arrays import is_cupy_array
from .backend import get_backend
from .checks import check_batch, check_int, check_real_array
from ..kernels.common import BASE_CODES
from .layer import GRID_AXES, GROUPS, KANLayer, in_dtype

DTYPES = {"float32": np.float32, "float64": np.float64}
PATHS = ("auto", "fused", "dense")
MAX_K = 10  # the kernels' Cox-de Boor triangle costs O(k^2) a sample; higher orders have no use
MAX_GRID = 10 ** 6  # grid intervals: far more than any data set fills, and knots that fit memory
MAX_PARAMS = 2 ** 31 - 1  # parameters of one model: kernels index them with 32-bit offsets


def check_input_ids(input_ids, n_inputs):
    """None -> [0 .. n_inputs-1]; else n_inputs distinct non-negative integers, as a list."""
    if input_ids is None:
        return list(range(n_inputs))
    if isinstance(input_ids, (str, bytes)) or not hasattr(input_ids, "__len__"):
        raise TypeError(f"input_ids must be a list of {n_inputs} integers, got {input_ids!r}")
    ids = list(input_ids)
    if (len(ids) != n_inputs or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                    or v < 0 for v in ids) or len(set(ids)) != len(ids)):
        raise ValueError(f"input_ids must be {n_inputs} distinct non-negative integers, got {ids!r}")
    return [int(v) for v in ids]


def check_scaling(scaling, n, name, dtype=np.float64):
    """None, or an affine map (shift, scale) of n finite shifts and n positive finite scales
    (also in the model's dtype), as a pair of host float64 arrays."""
    if scaling is None:
        return None
    try:
        shift, scale = (np.asarray(v, dtype=np.float64) for v in scaling)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be None or a pair (shift, scale) of {n} numbers each, got "
                        f"{scaling!r}") from None
    if shift.shape != (n,) or scale.shape != (n,):
        raise ValueError(f"{name} must be a pair (shift, scale) of {n} numbers each, got shapes "
                         f"{shift.shape} and {scale.shape}")
    if not (np.all(np.isfinite(shift)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError(f"{name} needs finite shifts and finite positive scales, got {scaling!r}")
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        cast = shift.astype(dtype), scale.astype(dtype)
        inverse = 1 / cast[1]
    if not (np.all(np.isfinite(cast[0])) and np.all(np.isfinite(inverse)) and np.all(cast[1] > 0)
            and np.all(np.isfinite(cast[1]))):
        raise ValueError(f"{name} does not fit the model's {np.dtype(dtype).name}: shifts "
                         f"{shift.tolist()} and scales {scale.tolist()} must stay finite and "
                         "positive (with a finite inverse) in it; use dtype='float64'")
    return shift, scale


def range_to_grid(low, high, grid_range):
    """The affine map (shift, scale) taking every column's [low, high] onto grid_range, x ->
    (x - shift) / scale; a constant column goes to the middle of the range."""
    lo, hi = grid_range
    span = np.asarray(high, np.float64) - np.asarray(low, np.float64)
    if not np.all(np.isfinite(span)):
        raise ValueError("the inputs span more than the largest float: rescale them first")
    scale = np.where(span > 0, span / (hi - lo), 1.0)
    return np.where(span > 0, low - lo * scale, low - 0.5 * (lo + hi)), scale


def check_config(width, grid, k, grid_range, base_fun, grid_eps, dtype, path):
    """The constructor's structural arguments but width and mult_arity (kanarray.core.nodes),
    validated and normalised."""
    grid = check_int(grid, "grid", 1)
    if grid > MAX_GRID:
        raise ValueError(f"grid must be at most {MAX_GRID} intervals, got {grid}")
    k = check_int(k, "k", 1)
    if k > MAX_K:
        raise ValueError(f"k must be at most {MAX_K} (the spline order), got {k}")
    if (not hasattr(grid_range, "__len__") or len(grid_range) != 2
            or not all(isinstance(v, numbers.Real) for v in grid_range)
            or not np.all(np.isfinite(grid_range)) or not grid_range[0] < grid_range[1]):
        raise ValueError(f"grid_range must be (lo, hi) with finite lo < hi, got {grid_range!r}")
    if not isinstance(base_fun, str) or base_fun not in BASE_CODES:
        raise ValueError(f"base_fun must be one of {sorted(BASE_CODES)}, got {base_fun!r}")
    if not isinstance(grid_eps, numbers.Real) or not 0 <= grid_eps <= 1:
        raise ValueError(f"grid_eps must be a number in [0, 1], got {grid_eps!r}")
    if str(dtype) not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not isinstance(path, str) or path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    grid_range = (float(grid_range[0]), float(grid_range[1]))
    try:
        in_dtype(gridlib.uniform_knots(1, grid, k, grid_range), DTYPES[str(dtype)], "its knots")
    except ValueError as exc:
        raise ValueError(f"grid_range {grid_range} with grid {grid}: {exc}") from None
    return grid, k, grid_range, str(dtype)


class Network:
    """A chain of KAN layers; see kanarray.KAN for the meaning of the arguments."""

    def __init__(self, width=(2, 5, 1), grid=5, k=3, grid_range=(-1, 1), base_fun="silu",
                 grid_eps=0.02, seed=0, dtype="float64", device="cpu", noise_scale=0.5, path="auto",
                 input_ids=None, input_scaling=None, output_scaling=None, mult_arity=2):
        grid, k, grid_range, dtype = check_config(width, grid, k, grid_range, base_fun, grid_eps,
                                                  dtype, path)
        # width: ints, or [n_sum, n_mult] pairs for levels with multiplication nodes
        width, self.n_sum, self.n_mult, self.arities, self.mult_arity = nodes.check_width(
            width, mult_arity)
        self.n_nodes = nodes.level_nodes(self.n_sum, self.n_mult)
        shapes = [(i, nodes.n_factors(s, r)) for i, s, r in
                  zip(self.n_nodes[:-1], self.n_sum[1:], self.arities[1:])]
        n_params = sum(i * o * (grid + k + 6) + o for i, o in shapes)
        if n_params > MAX_PARAMS:
            raise ValueError(f"width {width} with grid {grid} would need {n_params:.3g} parameters; at "
                             f"most {MAX_PARAMS} fit a model (use fewer nodes or grid intervals)")
        seed = check_int(seed, "seed", 0)
        if (isinstance(noise_scale, bool) or not isinstance(noise_scale, numbers.Real)
                or not np.isfinite(noise_scale) or noise_scale < 0):
            raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
        # raw inputs x enter the first layer as (x - shift) / scale; the last layer's outputs
        # leave as y * scale + shift (None: no map). kanarray.KAN.set_scaling fits both to data.
        self.width, self.dtype = width, dtype
        self.input_scaling = input_scaling
        self.output_scaling = output_scaling
        # original index of every input (kept by prune_input, so formulas name x_1.. as in the data)
        self.input_ids = check_input_ids(input_ids, width[0])
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
        self.path = path
        self.backend = get_backend(device)
        self.layers = [KANLayer(i, o, grid, k, gridlib.uniform_knots(i, grid, k, grid_range),
                                base_fun, self.backend, self.np_dtype, path) for i, o in shapes]
        self._allocate()
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.init_params(rng, noise_scale)

    # ------------------------------------------------------------------ parameters
    @property
    def np_dtype(self):
        return DTYPES[self.dtype]

    @property
    def input_scaling(self):
        """None, or (shift, scale): raw inputs x enter the first layer as (x - shift) / scale."""
        return self._input_scaling

    @input_scaling.setter
    def input_scaling(self, scaling):
        self._input_scaling = check_scaling(scaling, self.width[0], "input_scaling", self.np_dtype)

    @property
    def output_scaling(self):
        """None, or (shift, scale): the last layer's outputs leave as y * scale + shift."""
        return self._output_scaling

    @output_scaling.setter
    def output_scaling(self, scaling):
        self._output_scaling = check_scaling(scaling, self.width[-1], "output_scaling", self.np_dtype)

    @property
    def depth(self):
        return len(self.layers)

    def _allocate(self):
        """One flat buffer for all parameters; layers bind views into it."""
        total = sum(int(np.prod(s)) for layer in self.layers for s in layer.param_shapes().values())
        self._params = self.backend.xp.zeros(total, dtype=self.np_dtype)
        offset = 0
        for layer in self.layers:
            offset = layer.bind(self._params, offset)

    def views(self, flat):
        """[{group name: view}] per layer of a flat array laid out like params (a trial point,
        a gradient)."""
        out, offset = [], 0
        for layer in self.layers:
            groups, offset = layer.views(flat, offset)
            out.append(groups)
        return out

    def group_slices(self):
        """[(layer index, group name, slice of params)] for every parameter group, in buffer
        order (the order KANLayer.bind lays them out)."""
        out, offset = [], 0
        for l, layer in enumerate(self.layers):
            for name, shape in layer.param_shapes().items():
                size = int(np.prod(shape))
                out.append((l, name, slice(offset, offset + size)))
                offset += size
        return out

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
        return {"width": [list(w) if isinstance(w, list) else w for w in self.width],
                "mult_arity": (self.mult_arity if isinstance(self.mult_arity, int)
                               else [list(a) for a in self.mult_arity]),
                "grid": self.grid, "k": self.k,
                "grid_range": list(self.grid_range), "base_fun": self.base_fun,
                "grid_eps": self.grid_eps, "seed": self.seed, "dtype": self.dtype,
                "device": self.device, "noise_scale": self.noise_scale, "path": self.path,
                "input_ids": list(self.input_ids),
                "input_scaling": _scaling_lists(self.input_scaling),
                "output_scaling": _scaling_lists(self.output_scaling)}

    def derived(self, **changes):
        """A new, freshly initialised model of the same class with config() updated by changes."""
        return type(self)(**{**self.config(), **changes})

    def snapshot(self):
        """Copies of everything training changes: the parameters and every layer's knots."""
        return self._params.copy(), [layer.knots.copy() for layer in self.layers]

    def restore(self, snapshot):
        """Put back the state of snapshot()."""
        params, knots = snapshot
        self._params[...] = params
        for layer, saved in zip(self.layers, knots):
            layer.knots[...] = saved

    # ------------------------------------------------------------------ validation of user arrays
    def _in_dtype(self, array, name):
        """array moved to the device and dtype, refused when a value overflows the dtype (a
        finite float64 beyond float32's range would become inf in a float32 model)."""
        moved = self.backend.asarray(array, self.np_dtype)
        if moved.dtype != array.dtype and not bool(self.backend.xp.isfinite(moved).all()):
            raise ValueError(f"{name} holds values beyond the range of the model's {self.dtype}")
        return moved

    def as_batch(self, x, name="x"):
        """x (B, width[0]) validated (real, finite, non-empty) and moved to the device and dtype."""
        return self._in_dtype(check_batch(x, name, self.width[0]), name)

    def as_labels(self, y, n_rows, name="y"):
        """y (B, width[-1]) or (B,) for one output, validated, on the device and dtype."""
        y = check_real_array(y, name)
        y = check_batch(y.reshape(-1, 1) if y.ndim == 1 else y, name, self.width[-1])
        if y.shape[0] != n_rows:
            raise ValueError(f"{name} has {y.shape[0]} rows but the inputs have {n_rows}")
        return self._in_dtype(y, name)

    def as_classes(self, y, n_rows, name="y"):
        """Integer class labels (B,) (or (B, 1)) in [0, width[-1]) on the device, as int64;
        integral floats are accepted (class ids read from a CSV)."""
        y = check_real_array(y, name)
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        n_classes = self.width[-1]
        if y.ndim != 1 or y.shape[0] != n_rows:
            raise ValueError(f"{name} must hold one class id per row ({n_rows},), got shape "
                             f"{tuple(y.shape)}")
        host = y.get() if is_cupy_array(y) else np.asarray(y)
        if not np.all(np.isfinite(host)) or np.any(host != np.round(host)):
            raise ValueError(f"{name} must hold integer class ids")
        if host.min() < 0 or host.max() >= n_classes:
            raise ValueError(f"{name} must hold class ids in [0, {n_classes}) for a model with "
                             f"{n_classes} outputs, got {host.min():g} .. {host.max():g}")
        return self.backend.xp.asarray(host.astype(np.int64))

    # ------------------------------------------------------------------ forward / backward
    def _on_device(self, values):
        return self.backend.asarray(values, self.np_dtype)

    def forward_all(self, x, params=None, workspace=None):
        """[h_0, h_1, ..., y] for raw inputs x on the device: h_l is the input of layer l (h_0
        the scaled inputs) and y the raw outputs (the last layer's, through output_scaling).

        params: views(...) of the parameters to use (default: the network's own).
        workspace: a kanarray.core.workspace.Workspace for x's rows (training): the outputs go
        to its buffers and every layer's basis to its tapes, for backward to reuse.
        Where level l+1 has multiplication nodes, layer l's outputs are its factors (kept in
        acts.factors[l + 1] for backward) and h_{l+1} their products (kanarray.core.nodes).
        """
        params = [layer.params for layer in self.layers] if params is None else params
        first_tape_filled = workspace is not None and workspace.first_tape_current(self)
        if self.input_scaling is not None:
            shift, scale = self.input_scaling
            x = (x - self._on_device(shift)) / self._on_device(scale)
        acts = Activations([x])
        for l, layer in enumerate(self.layers):
            z = layer.forward(acts[-1], params[l], None if workspace is None else workspace.acts[l],
                              None if workspace is None else workspace.tape(l),
                              tape_filled=first_tape_filled and l == 0)
            if self.n_mult[l + 1]:
                acts.factors[l + 1] = z
                z = nodes.multiply(z, self.n_sum[l + 1], self.arities[l + 1])
            acts.append(z)
        acts.network_out = acts[-1]
        if self.output_scaling is not None:
            shift, scale = self.output_scaling
            acts[-1] = acts[-1] * self._on_device(scale) + self._on_device(shift)
        if workspace is not None and not first_tape_filled:
            workspace.first_tape_filled(self)
        return acts

    def backward(self, acts, g, grads, params=None, workspace=None, reg=None, need_dx=True,
                 raw=True):
        """Back-propagate g = dL/dy (raw outputs; raw=False: dL/d acts.network_out, the outputs
        before output_scaling) through the layers; writes dL/dparams into grads (views(...) of
        a flat gradient) and returns dL/dx (raw inputs).

        params, workspace: as given to the forward_all that made acts (which must come from
        forward_all: through a level with multiplication nodes g passes
        kanarray.core.nodes.multiply_backward at acts.factors).
        reg: a kanarray.training.regularize.RegState at these activations; its gradient for
        layer l is added (parameters and dL/dx) right after layer l's own backward.
        need_dx=False (training: the inputs are data): dL/dx may be left uncomputed, and then
        None is returned; grads get the same bits.
        """
        params = [layer.params for layer in self.layers] if params is None else params
        if self.output_scaling is not None and raw:
            g = g * self._on_device(self.output_scaling[1])
        for l in range(self.depth - 1, -1, -1):
            if self.n_mult[l + 1]:
                g = nodes.multiply_backward(acts.factors[l + 1], g, self.n_sum[l + 1],
                                            self.arities[l + 1])
            layer_dx = l > 0 or need_dx or reg is not None  # the regulariser adds into dL/dx
            g = self.layers[l].backward(acts[l], g, grads[l], params[l],
                                        None if workspace is None else workspace.dx[l],
                                        None if workspace is None else workspace.tape(l), layer_dx)
            if reg is not None:
                g = reg.backward_layer(l, g)
        if g is None:
            return None
        if self.input_scaling is not None:
            g = g / self._on_device(self.input_scaling[1])
        return g

    def standardise(self, y):
        """Device labels y (B, width[-1]) in the units of the network's outputs before
        output_scaling: (y - shift) / scale (y itself without a scaling)."""
        if self.output_scaling is None:
            return y
        shift, scale = self.output_scaling
        return (y - self._on_device(shift)) / self._on_device(scale)

    def layer_inputs(self, x):
        """Host float64 inputs of every layer for raw model inputs x (host or device):
        [h_0, h_1, ...] (h_0 the scaled inputs)."""
        acts = self.forward_all(self.as_batch(x))
        return [self.backend.to_numpy(a).astype(np.float64) for a in acts[:-1]]

    # ------------------------------------------------------------------ grids
    def regrid(self, x, gather=None, margin=0.0, fail=None):
        """Move every layer's knots to fit the samples x (device rows; quantile/uniform mix by
        grid_eps over their range widened by margin mean cells on each side) and refit the
        coefficients by least squares so each edge keeps its shape.

        Layer l is updated on the activations of the layers before it, already updated (as
        pykan does). gather (distributed training): gather(samples) returns every process's host
        samples of a layer, so all compute the same knots and refit from the union; fail(exc)
        records an error of this process's own part, which then still meets the others in the
        gather (that raises it on every process instead of leaving them waiting).
        """
        for l, layer in enumerate(self.layers):
            try:
                samples = self.backend.to_numpy(self.forward_all(x)[l]).astype(np.float64)
            except Exception as exc:  # noqa: BLE001 - raised by the gather on every process
                if gather is None or fail is None:
                    raise
                fail(exc)
                samples = np.empty((0, layer.in_dim))
            if gather is not None:
                samples = gather(samples)
            knots = gridlib.knots_from_samples(samples, layer.grid, layer.k, self.grid_eps,
                                               layer.interior_range(), margin)
            self._set_spline(layer, layer, samples, knots)

    def refined(self, new_grid, x=None):
        """A new network with new_grid intervals whose splines are least-squares fits of these.

        With samples x (device rows), each layer's new knots follow the samples as in regrid.
        Without, they subdivide the current knots (kanarray.core.grid.subdivide_knots): when
        new_grid is a multiple of the current grid every old knot is kept and the fit is exact.
        """
        new = self.derived(grid=new_grid)
        acts = [None] * self.depth if x is None else self.forward_all(x)
        for l, (old, layer) in enumerate(zip(self.layers, new.layers)):
            if x is None:
                samples = np.empty((0, old.in_dim))
                interior = self.backend.to_numpy(old.knots).astype(np.float64)[:, old.k:old.k + old.grid + 1]
                knots = gridlib.extend_knots(gridlib.subdivide_knots(interior, new_grid), layer.k)
            else:
                samples = self.backend.to_numpy(acts[l]).astype(np.float64)
                knots = gridlib.knots_from_samples(samples, new_grid, layer.k, self.grid_eps,
                                                   old.interior_range())
            for group in GROUPS:  # what does not depend on the grid carries over as it is
                if not set(group.axes) & set(GRID_AXES):
                    if group.trained:
                        layer.params[group.name][...] = old.params[group.name]
                    else:
                        setattr(layer, group.name, getattr(old, group.name).copy())
            self._set_spline(old, layer, samples, knots)
        return new

    def _set_spline(self, old, layer, samples, knots):
        """Give `layer` the knots `knots` and coefficients fitting `old`'s splines."""
        to_host = self.backend.to_numpy
        coef = gridlib.refit_coef(samples, to_host(old.knots).astype(np.float64),
                                  to_host(old.params["coef"]).astype(np.float64), knots, old.k, layer.k)
        layer.set_knots(knots)
        layer.params["coef"][...] = layer.backend.asarray(coef, layer.dtype)


class Activations(list):
    """forward_all's [h_0, ..., y], with `factors`: {level: the (B, n_factors) outputs of the
    layer feeding a level with multiplication nodes, before their products}, and `network_out`:
    the network's outputs before output_scaling (y itself without one)."""

    def __init__(self, values):
        super().__init__(values)
        self.factors = {}
        self.network_out = None


def _scaling_lists(scaling):
    return None if scaling is None else [scaling[0].tolist(), scaling[1].tolist()]
