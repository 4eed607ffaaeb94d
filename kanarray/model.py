"""kanarray.KAN: the public face of a Kolmogorov–Arnold Network, and kanarray.load.

    model = KAN(width=[2, 5, 1], grid=5, k=3)
    y = model(x)                          # (B, 2) -> (B, 1)
    mse, grad = model.loss_and_grad(x, y) # grad: flat, aligned with model.params
    model.fit(dataset, opt="lbfgs", steps=50)
    model = model.refine(10)              # grid extension

The machinery is kanarray.core.network.Network; this class validates what users pass and hands the
work to the modules that do it (objective and train, prune, symbolic, formula, plot, io).
Conventions follow the reference implementation (pykan) where its users rely on them. Operations
that change a model's shape (refine, prune, prune_node, prune_input) return a new model and leave
this one as it was; operations that change values within the shape (fit, update_grid, prune_edge,
fix_symbolic, auto_symbolic) act in place. Learned or derived state carries a trailing underscore
(scikit-learn's convention): cache_data_ (the default data of attribute and pruning: the last fit's
training inputs, every s-th of every rank's for at most 10,000, distributed.decision_rows), edge_scores_, node_scores_, feature_score_ (set by attribute).
"""
import os
import warnings

import numpy as np

from .symbolic import edges as symbolic, formula as formulalib
from .io import checkpoint as io, mlp as mlplib
from .analysis import plot as plotlib, prune as prunelib
from .training import loop
from .core.backend import return_like
from .kernels import cpu as cpu_kernels
from .core.checks import check_int
from .training.distributed import MPIRanks, check_comm, column_stats, decision_rows
from .core.layer import GROUPS
from .core.metrics import r2_score
from .core.jet import check_pairs, forward_jet
from .core.network import Network, check_scaling, range_to_grid
from .core.workspace import Workspace
from .training.objective import Objective, check_loss, evaluate
from .training.exact import BLOCK_ROWS
from .training.lbfgs import HISTORY_SIZE
from .training.options import fit_options
from .training.regularize import Regularization
from .funcs.library import LIBRARY

OUTSIDE_WARN_SHARE = 0.1  # warn when more than this share of a layer's inputs is off its grid
RENAMED = {"cache_data": "cache_data_", "edge_scores": "edge_scores_",
           "node_scores": "node_scores_", "feature_score": "feature_score_"}


class KAN(Network):
    """A Kolmogorov–Arnold Network.

    width       layer widths, e.g. [2, 5, 1]: inputs, hidden nodes, outputs; a hidden level may
                be a pair [n_sum, n_mult] of sum and multiplication nodes (KAN 2.0, pykan's
                convention: [2, [5, 2], 1]; kanarray.core.nodes)
    mult_arity  factors of every multiplication node: an int (default 2), or one entry per
                level, each an int or a list with one int per mult node of the level
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
    input_ids   original index of every input (kept by prune_input)
    input_scaling, output_scaling
                None, or affine maps (shift, scale) between the user's units and the network's:
                raw inputs enter as (x - shift) / scale, outputs leave as y * scale + shift
                (set_scaling fits them to data)
    """

    def __init__(self, width=(2, 5, 1), grid=5, k=3, grid_range=(-1, 1), base_fun="silu",
                 grid_eps=0.02, seed=0, dtype="float64", device="cpu", noise_scale=0.5, path="auto",
                 input_ids=None, input_scaling=None, output_scaling=None, mult_arity=2):
        super().__init__(width, grid, k, grid_range, base_fun, grid_eps, seed, dtype, device,
                         noise_scale, path, input_ids, input_scaling, output_scaling, mult_arity)
        self.cache_data_ = None
        self.edge_scores_ = self.node_scores_ = self.feature_score_ = None
        self.metadata_ = {}  # what kanarray.load read beside the model (KAN.save's metadata)
        self._workspace = None  # loss_and_grad's buffers, kept for the next call of its size

    def __getattr__(self, name):
        if name in RENAMED:  # only reached for names that are not attributes any more
            warnings.warn(f"KAN.{name} is now KAN.{RENAMED[name]} (learned state carries a "
                          "trailing underscore); the old name goes away in the next release",
                          DeprecationWarning, stacklevel=2)
            return getattr(self, RENAMED[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ predictions
    def __call__(self, x):
        """Outputs (B, width[-1]) for inputs x (B, width[0]), on the kind of array given."""
        acts = self.forward_all(self.as_batch(x))
        if not bool(self.backend.xp.isfinite(acts[-1]).all()):
            raise ValueError(f"the outputs overflowed to Inf/NaN: x holds values too large for this "
                             f"model (largest |x| = {float(abs(acts[0]).max()):.3g} after scaling)")
        self._warn_outside(acts)
        return return_like(acts[-1], x, self.backend)

    predict = __call__

    def derivatives(self, x, second=()):
        """Exact Jet(u (B, O), du/dx (B, O, D), d2u/dx_a dx_b (B, O, P)) per pair (a, b) of `second`."""
        return forward_jet(self, self.as_batch(x), check_pairs(second, self.width[0]))[0]

    def score(self, x, y):
        """Coefficient of determination R^2 of the predictions (over all outputs); needs >= 2 rows."""
        pred = self.backend.to_numpy(self.forward_all(self.as_batch(x))[-1]).astype(np.float64)
        y = self.backend.to_numpy(self.as_labels(y, pred.shape[0])).astype(np.float64)
        if y.shape[0] < 2:
            raise ValueError("score needs at least 2 rows: R^2 is undefined for one")
        return r2_score(pred, y)

    def _warn_outside(self, acts):
        for l, (layer, x) in enumerate(zip(self.layers, acts)):
            share = layer.outside_share(x)
            if share > OUTSIDE_WARN_SHARE:
                warnings.warn(f"layer {l}: {share:.0%} of its inputs fall outside its grid, where "
                              "the spline part is zero; consider model.update_grid(x)", stacklevel=3)

    def loss_and_grad(self, x, y, need_dx=False, reg=None):
        """Mean squared error and its gradient through every layer (the hand-derived backward).

        x (B, width[0]), y (B, width[-1]) -> (mse, grad) with grad a new flat array aligned
        with model.params; with need_dx=True also dL/dx (B, width[0]). With reg (a
        kanarray.training.regularize.Regularization) the loss is mse + reg.lamb * regulariser.
        """
        if reg is not None and not isinstance(reg, Regularization):
            raise TypeError(f"reg must be a kanarray.training.regularize.Regularization or None, got "
                            f"{type(reg).__name__}")
        xd = self.as_batch(x)
        yd = self.as_labels(y, xd.shape[0])
        if self._workspace is None or self._workspace.n_rows != xd.shape[0]:
            self._workspace = Workspace(self, xd.shape[0])
        self._workspace.new_rows()  # other rows than last time, maybe
        ev = evaluate(self, xd, yd, reg=reg if reg is not None and reg.active else None,
                      workspaces=[self._workspace], need_dx=need_dx)
        return (ev.loss, ev.grad, return_like(ev.dx, x, self.backend)) if need_dx else (ev.loss, ev.grad)

    def set_scaling(self, x, y=None, comm=None):
        """Fit the affine maps to raw data, so data in any units train like data in the grid range.

        Every input column's [min, max] maps onto grid_range (a constant column onto its middle);
        with regression labels y, the outputs are standardised (labels of mean 0, std 1 for the
        network). model(x) takes raw inputs and gives raw outputs; formulas read in the raw
        variables. Changes no parameter: call it before fit. Returns self. comm (MPI): x, y are
        this rank's rows; the statistics are every rank's (the same bits for any rank count).
        """
        xh = self.backend.to_numpy(self.as_batch(x))
        low, high, moments = column_stats(comm, xh, None if y is None else
                                          self.backend.to_numpy(self.as_labels(y, xh.shape[0])))
        inputs, output = range_to_grid(low, high, self.grid_range), None
        if moments is not None:
            mean, std = moments
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
                raise ValueError("y spans more than the largest float: rescale it before fitting")
            output = (mean, np.where(std > 0, std, 1.0))
        try:
            check_scaling(inputs, self.width[0], "x's scaling", self.np_dtype)
            check_scaling(output, self.width[-1], "y's scaling", self.np_dtype)
        except ValueError as exc:
            raise ValueError(f"set_scaling: {exc} (x or y spans more or less than the model's "
                             f"{self.dtype} can map onto its grid)") from None
        self.input_scaling, self.output_scaling = inputs, output  # both checked: nothing half-set
        return self

    # ------------------------------------------------------------------ grids
    def update_grid(self, x):
        """Move every layer's knots to fit the samples x (quantile/uniform mix by grid_eps);
        coefficients are refit by least squares so that each edge keeps its shape."""
        xd = self.as_batch(x)
        saved = self.snapshot()
        try:
            self.regrid(xd)
        except BaseException:
            self.restore(saved)
            raise

    def refine(self, new_grid, x=None):
        """A new model with new_grid intervals whose splines are least-squares fits of these.

        With samples x, each layer's new knots follow the samples as in update_grid. Without,
        they subdivide the current knots (kanarray.core.grid.subdivide_knots): when new_grid is a
        multiple of the current grid every old knot is kept and the fit is exact.
        """
        new = self.refined(check_int(new_grid, "new_grid", 1), None if x is None else self.as_batch(x))
        new.cache_data_ = self.cache_data_
        return new

    # ------------------------------------------------------------------ training
    def fit(self, dataset, opt="lbfgs", steps=100, lr=None, batch=-1, update_grid=True,
            grid_update_num=10, start_grid_update_step=-1, stop_grid_update_step=50, loss_fn=None,
            seed=0, log=None, callback=None, lbfgs_iters=20, comm=None, cuda_aware=None,
            checkpoint=None, lamb=0.0, lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.0,
            lamb_coefdiff=0.0, loss="mse", threads=None, restarts=0, grid_margin=0.0,
            lbfgs_history=HISTORY_SIZE, grid_schedule=None, reg=None, resume=False,
            block_rows=BLOCK_ROWS):
        """Train in place on `dataset`; return the history.

        dataset     dict of train_input (N, width[0]), train_label (N, width[-1]) and the same for test
        opt         "lbfgs" or "adam" (any case: pykan's "LBFGS" and "Adam" too), or an optimizer
                    with its options: kanarray.LBFGS(lr, history, iters) or kanarray.Adam(lr, b1,
                    b2, eps) (then lr, lbfgs_iters and lbfgs_history are not used)
        steps       outer steps; an L-BFGS step runs up to lbfgs_iters iterations
        lbfgs_history curvature pairs L-BFGS keeps (10, pykan's; more fits ill-conditioned nets)
        lr          L-BFGS step scale (default 1.0) or Adam learning rate (default 1e-2)
        batch       rows per step drawn at random without replacement; -1 = the whole training set
        update_grid, grid_update_num, start_grid_update_step, stop_grid_update_step
                    grid updates from the step's batch every stop_grid_update_step // grid_update_num
                    steps while start_grid_update_step <= step < stop_grid_update_step
        grid_margin the knots of those updates span the samples' range widened by grid_margin mean
                    cells ((max - min) / grid) on each side (>= 0; 0: the end knots on the extreme
                    samples, as in pykan; wider costs the fine grids accuracy, README)
        grid_schedule all five as one kanarray.GridSchedule(update, num, start, stop, margin)
                    (then those keywords are not used)
        loss_fn     loss_fn(pred, label) -> (loss, dloss/dpred), replacing `loss`
        loss        "mse" (mean squared error, default) or "ce" (softmax cross-entropy: labels are
                    integer class ids (N,) in [0, width[-1]), the outputs are logits)
        seed        seed of the batch draws
        log         None: one progress line updated in place when stdout is a terminal (quiet
                    otherwise); 0: silent; n: print a line every n steps
        callback    callback(step, model, results) after every step
        comm        an mpi4py communicator: data-parallel training, `dataset` is this rank's shard
                    (kanarray.training.distributed.shard); loss, gradient, batches, grid updates and logged
                    RMSEs are global and every rank ends with identical parameters
        block_rows  rows per block of the exact sums over rows (kanarray.training.exact): 1 process
                    and N ranks holding whole blocks (shard(..., block_rows)) give the same bits
        cuda_aware  with comm and device="cuda": hand CuPy buffers to MPI directly (default: the
                    KANARRAY_MPI_CUDA_AWARE env var), else stage them through host memory
        checkpoint  path rewritten atomically (model.save) after every good step; with comm,
                    by rank 0 only
        lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff
                    sparsity regularisation: the objective is loss + lamb * reg, with reg the L1 and
                    entropy of the edge magnitudes and the coefficient L1 and smoothness terms
                    weighted by the other four (kanarray.training.regularize; pykan's names and defaults)
        reg         all five as one kanarray.Regularization (then those keywords are not used)
        threads     cap on the CPU kernels' threads while fitting (None: all of Numba's threads;
                    with comm: 1, one thread per rank, so that ranks sharing a node do not
                    oversubscribe its cores). Results are bit-identical for any thread count.
        restarts    also train from this many fresh initialisations (seeds drawn from the model's
                    seed and the restart number) and keep whichever of them and the model's own
                    start ends with the lowest test loss (the test split is then a validation split:
                    score on other data; loop.fit_restarts; history: "restart_test_loss", "restart")
        resume      with checkpoint: when that file holds a fit still running (one that was interrupted),
                    put its model back and go on from the step after the last saved one, with the
                    optimizer's state, the batch draws and the history as they were: the same bits
                    as a fit never interrupted (same model and options). Without the file: a fresh fit

        -> {"train_loss", "test_loss": RMSE per step (train on the step's batch, test on the whole
           test set; with loss="ce" the cross-entropies, plus "train_accuracy" and
           "test_accuracy"), "n_evals": loss evaluations per step, "evals_per_second",
           "seconds": wall time, "stopped": None or the reason training stopped early,
           "reg": the regulariser's value (not times lamb) per step on the step's batch}
        With lamb > 0, train_loss is the RMSE of the data term alone. Sets cache_data_.
        """
        options = fit_options(opt, steps, lr, batch, update_grid, grid_update_num,
                              start_grid_update_step, stop_grid_update_step, seed, log, callback,
                              lbfgs_iters, checkpoint, grid_margin, lbfgs_history, grid_schedule)
        if threads is not None:
            check_int(threads, "threads", 1)
        restarts = check_int(restarts, "restarts", 0)
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be True or False, got {resume!r}")
        if resume and (checkpoint is None or restarts):
            raise ValueError("resume=True goes on from a checkpoint: give checkpoint=path, and "
                             "no restarts (a fit with restarts is not resumable)")
        if loss_fn is not None:
            if not callable(loss_fn):
                raise TypeError(f"loss_fn must be callable(pred, label) -> (loss, dloss/dpred) or "
                                f"None, got {type(loss_fn).__name__}")
            if loss != "mse":
                raise ValueError(f"give loss_fn or loss, not both (got loss={loss!r})")
            loss = loss_fn
        loss = check_loss(loss)
        if reg is None:
            reg = Regularization(lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)
        elif not isinstance(reg, Regularization):
            raise TypeError(f"reg must be a kanarray.training.regularize.Regularization or None, got "
                            f"{type(reg).__name__}")
        check_comm(comm)
        if comm is None:
            objective = Objective(self, dataset, loss, reg, block_rows=block_rows)
        else:  # every rank checks that the others train the same model with the same arguments
            agreed = (options.agreed(), loss if isinstance(loss, str) else "callable", reg)
            objective = Objective(self, dataset, loss, reg, MPIRanks(comm, self.backend.xp, cuda_aware),
                                  agreed, block_rows)
        self.cache_data_ = self.as_batch(decision_rows(comm, [self.backend.to_numpy(objective.x_train)])[0])
        resumed = objective.run(self._resumed, checkpoint, objective, options) if resume else None
        with cpu_kernels.thread_limit(1 if threads is None and comm is not None else threads):
            if restarts:
                return loop.fit_restarts(self, objective, options, restarts,
                                          lambda r: self.fresh_start(r).snapshot())
            return loop.fit(self, objective, options, resumed)

    def _resumed(self, path, objective, options):
        """Put back the model of a running fit's checkpoint `path` -> its training state, or
        None when there is no such file. Everything is checked before the model changes."""
        if not os.path.exists(path):
            return None
        config, arrays, _, training = io.read(path)
        if training is None:
            raise ValueError(f"resume: {path} holds a model, not a fit in progress")
        if {**config, "device": self.device} != self.config():
            raise ValueError(f"resume: {path} holds another model ({config}); build the same one "
                             "to go on with it")
        loop.check_resumable(training[0], objective, options)
        saved = from_state({**config, "device": self.device}, arrays, path)
        self.params = saved.params
        for layer, source in zip(self.layers, saved.layers):
            for group in GROUPS:
                if group.name == "symbolic_fun":
                    layer.symbolic_fun = source.symbolic_fun.copy()
                elif not group.trained:
                    getattr(layer, group.name)[...] = getattr(source, group.name)
        return training

    def fresh_start(self, restart):
        """A new initialisation (same config, seed drawn from self.seed and `restart` >= 1)."""
        seed = int(np.random.SeedSequence([self.seed, restart]).generate_state(1)[0])
        return self.derived(seed=seed)

    # ------------------------------------------------------------------ attribution and pruning
    def attribute(self, x=None):
        """Node and edge importance scores on inputs x (default: cache_data_); see
        kanarray.analysis.prune.attribute. Sets edge_scores_, node_scores_, feature_score_; returns self."""
        return prunelib.attribute(self, x)

    def prune_node(self, threshold=1e-2, x=None):
        """A new model without the hidden nodes scoring below threshold (kanarray.analysis.prune)."""
        return prunelib.prune_node(self, threshold, x)

    def prune_edge(self, threshold=3e-2, x=None):
        """Mask (in place) the edges scoring below threshold; returns self (kanarray.analysis.prune)."""
        return prunelib.prune_edge(self, threshold, x)

    def prune(self, node_th=1e-2, edge_th=3e-2, x=None):
        """A new, smaller model: weak hidden nodes removed, weak edges masked (kanarray.analysis.prune)."""
        return prunelib.prune(self, node_th, edge_th, x)

    def prune_input(self, threshold=1e-2, active_inputs=None, x=None):
        """A new model without the inputs scoring below threshold, or keeping active_inputs;
        it takes x[:, new.input_ids] of the original data (kanarray.analysis.prune)."""
        return prunelib.prune_input(self, threshold, active_inputs, x)

    # ------------------------------------------------------------------ symbolic edges and plot
    # c * f(a*x + b) + d on chosen edges; conventions and details in kanarray.symbolic.edges
    def fix_symbolic(self, l, i, j, name, fit_params=True, a_range=(-10, 10), b_range=(-10, 10),
                     x=None, verbose=False):
        """Fix edge (l, i, j) to c f(a x + b) + d, fitted to its curve; returns the fit's R^2."""
        return symbolic.fix_symbolic(self, l, i, j, name, fit_params, a_range, b_range, x, verbose)

    def unfix_symbolic(self, l, i, j):
        """Return edge (l, i, j) to its spline."""
        symbolic.unfix_symbolic(self, l, i, j)

    def suggest_symbolic(self, l, i, j, topk=5, lib=None, x=None, weight_simple=0.8,
                         r2_threshold=0.0, verbose=True):
        """Library functions ranked for edge (l, i, j): [(name, r2, complexity, score, params)]."""
        return symbolic.suggest_symbolic(self, l, i, j, topk, lib, x, weight_simple, r2_threshold,
                                         verbose)

    def auto_symbolic(self, lib=None, r2_threshold=0.99, weight_simple=0.8, x=None, verbose=1,
                      layers=None):
        """Fix every live edge (of `layers`, default all) to its best library function; returns
        {(l, i, j): (name, r2)} (name "" where no candidate reached r2_threshold and the edge
        stays a spline)."""
        return symbolic.auto_symbolic(self, lib, r2_threshold, weight_simple, x, verbose, layers)

    def fit_constants(self, x, y):
        """Levenberg–Marquardt fit of the constants of an all-symbolic model (after auto_symbolic);
        returns the RMSE on (x, y). See kanarray.symbolic.edges.fit_constants."""
        return symbolic.fit_constants(self, x, y)

    def symbolic_formula(self, var_names=None, simplify=False, normalize=True, allow_splines=False):
        """One formula per output (sympy expressions, or strings without sympy); kanarray.symbolic.formula."""
        return formulalib.symbolic_formula(self, var_names, simplify, normalize, allow_splines)

    def plot(self, path, x=None, **kwargs):
        """Draw the network with every edge's learned curve to `path` (needs matplotlib)."""
        return plotlib.plot(self, path, x=x, **kwargs)

    def to_mlp(self):
        """The ReLU MLP equal to this piecewise-linear KAN (k=1, base_fun "identity" or
        "zero", no multiplication nodes or library functions): kanarray.io.mlp."""
        return mlplib.to_mlp(self)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path, metadata=None, training=None):
        """Write the model to `path` (.npz with JSON metadata, atomically); see kanarray.load.
        metadata: a JSON-serialisable dict kept beside the model (kanarray.load sets it as
        metadata_), e.g. the column names of the data. training: the state of a fit still
        running, which fit's checkpoints keep so that fit(resume=True) can go on from it."""
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        io.write(path, self.config(), self.state_arrays(),
                 None if metadata is None else _json(metadata), training)

    def state_arrays(self):
        """Everything but the config, as named host arrays: what a checkpoint stores and
        from_state reads (parameters, and per layer knots, masks and symbolic function names)."""
        arrays = {"params": self.backend.to_numpy(self.params)}
        for l, layer in enumerate(self.layers):
            for group in GROUPS:
                if not group.trained:
                    value = getattr(layer, group.name)
                    arrays[f"{group.name}_{l}"] = (np.asarray(value, dtype=str) if group.name == "symbolic_fun"
                                                   else self.backend.to_numpy(value))
        return arrays

    def __repr__(self):
        return (f"KAN(width={self.width}, grid={self.grid}, k={self.k}, dtype={self.dtype!r}, "
                f"device={self.device!r}, num_params={self.num_params})")


def _json(value, where="metadata"):
    """value with NumPy scalars made Python ones, checked to be JSON: dicts with string keys,
    lists, tuples, strings, finite or not numbers, booleans and None."""
    if isinstance(value, np.generic) and value.shape == ():
        value = value.item()
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where} keys must be strings, got {bad[0]!r}")
        return {k: _json(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{where} must hold only JSON values (dicts, lists, strings, numbers, "
                    f"booleans, None), got {type(value).__name__}")


def _checked(path, l, name, array, shape, dtype_kind):
    if array.shape != shape or array.dtype.kind not in dtype_kind:
        raise io.CheckpointError(f"{path!r} does not describe a consistent model: {name} of layer "
                                 f"{l} has shape {array.shape} and dtype {array.dtype}, expected {shape}")
    return array


def load(path, device=None):
    """Load a model saved by KAN.save; device overrides the saved device ("cpu" or "cuda").

    Every value is validated (finite parameters, strictly increasing knots, masks in {0, 1},
    symbolic masks in [0, 1] and known function names); a file that fails raises a ValueError
    (io.CheckpointError) saying what is wrong. The model's metadata_ is the saved metadata.
    """
    config, arrays, metadata, _ = io.read(path)
    if device is not None:
        config["device"] = device
    model = from_state(config, arrays, str(path))
    model.metadata_ = metadata
    return model


def from_state(config, arrays, path="the state"):
    """A KAN from its config() and state_arrays(), every value validated (see load)."""
    try:
        model = KAN(**config)
    except (TypeError, ValueError, MemoryError) as exc:
        raise io.CheckpointError(f"{path!r} is not a readable kanarray checkpoint: its config "
                                 f"does not describe a model: {exc}") from None
    if "params" not in arrays or arrays["params"].shape != model.params.shape:
        raise io.CheckpointError(f"{path!r} does not describe a consistent model: params missing "
                                 f"or not of shape {model.params.shape}")
    if arrays["params"].dtype.kind != "f" or not np.all(np.isfinite(arrays["params"])):
        raise io.CheckpointError(f"{path!r} holds parameters that are not finite floats")
    model.params = arrays["params"]
    for l, layer in enumerate(model.layers):
        try:
            state = {group.name: _checked(path, l, group.name, arrays[f"{group.name}_{l}"],
                                          layer.shape(group), "U" if group.name == "symbolic_fun" else "f")
                     for group in GROUPS if not group.trained}
        except KeyError as exc:
            raise io.CheckpointError(f"{path!r} does not describe a consistent model: array "
                                     f"{exc} is missing") from None
        knots, mask, sym, names = (state[name] for name in ("knots", "mask", "symbolic_mask", "symbolic_fun"))
        if not (np.all(np.isfinite(knots)) and np.all(np.diff(knots, axis=1) > 0)):
            raise io.CheckpointError(f"{path!r}: layer {l} knots are not finite and strictly increasing")
        if not np.all((mask == 0) | (mask == 1)):
            raise io.CheckpointError(f"{path!r}: layer {l} mask holds values other than 0 and 1")
        if not np.all((sym >= 0) & (sym <= 1)) or np.any((sym != 0) & (names == "")):
            raise io.CheckpointError(f"{path!r}: layer {l} symbolic_mask must lie in [0, 1] and be "
                                     "0 on edges without a function")
        unknown = sorted({str(n) for n in names.ravel() if n and n not in LIBRARY})
        if unknown:
            raise io.CheckpointError(f"{path!r}: layer {l} uses symbolic functions {unknown} that "
                                     "are not in the library; register them with "
                                     "kanarray.funcs.library.add_symbolic before loading")
        try:
            layer.set_knots(knots)
        except ValueError as exc:
            raise io.CheckpointError(f"{path!r}: layer {l}: {exc}") from None
        layer.mask[...] = layer.backend.asarray(mask, layer.dtype)
        layer.symbolic_mask[...] = layer.backend.asarray(sym, layer.dtype)
        layer.symbolic_fun = names.copy()
    return model
