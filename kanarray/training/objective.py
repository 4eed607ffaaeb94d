"""What training minimises: one evaluation of loss and gradient, and the objective around it.

    ev = evaluate(model, x, y, loss="mse", reg=None)      # -> Evaluation
    ev.loss, ev.grad                                      # data loss + lamb * reg; its gradient
                                                          # (a new flat array, aligned with params)

`evaluate` is the only place a loss and its gradient are computed: forward through the layers,
the data loss and its dL/dpred, the regulariser, the backward pass, and the sums over rows
combined by `ranks` (one process: as they are; MPI ranks: kanarray.training.distributed adds
them up over every rank). dL/dx comes back only where asked (need_dx). It evaluates at a given
flat parameter vector (`point`, copied into a workspace) or at the model's own parameters; the
model is never written.

An Objective is evaluate bound to a dataset, with what the training loop needs around it
(kanarray.training.loop.fit never asks where the rows live):

    n_rows                    training rows the loop draws its batches from (every rank's)
    is_root                   whether this process prints, warns and writes files
    select(rows)              the batch of the next evaluations: sorted row ids, or None = all
    value_and_grad(point)     -> Evaluation at the flat parameter vector `point` on the batch
    step_metrics(ev)          {"train_loss", "test_loss", ...}: what the history records
    update_grid(margin)       move the grids to the batch's activations (range widened by margin cells)
    run(fn, *args)            call user code (callback, checkpoint); its errors reach the loop
    run_on_root(fn, *args)    the same, on the root process only
    finish()                  -> dict of statistics, after the last step
"""
from typing import NamedTuple

import numpy as np

from . import losses
from .collectives import CollectiveError
from . import exact
from .regularize import RegState, coef_value_and_grads, magnitude_value
from ..core.workspace import Workspace

DATASET_KEYS = ("train_input", "train_label", "test_input", "test_label")
BUILT_IN_LOSSES = ("mse", "ce")


def check_loss(loss):
    """"mse" (mean squared error), "ce" (softmax cross-entropy over integer class labels) or a
    callable loss_fn(pred, y) -> (loss, dloss/dpred)."""
    if loss in BUILT_IN_LOSSES or callable(loss):
        return loss
    raise ValueError(f"loss must be one of {BUILT_IN_LOSSES} or a callable (pred, y) -> "
                     f"(loss, dloss/dpred), got {loss!r}")


def check_dataset(model, dataset, loss="mse"):
    """(x_train, y_train, x_test, y_test) of a dataset dict, validated, on the model's device.
    With loss "ce" the labels are integer class ids (N,) in [0, width[-1])."""
    if not isinstance(dataset, dict):
        raise TypeError(f"dataset must be a dict with keys {DATASET_KEYS}, got {type(dataset).__name__}")
    missing = [key for key in DATASET_KEYS if key not in dataset]
    if missing:
        raise ValueError(f"dataset is missing {missing}; expected keys {DATASET_KEYS}")
    labels = model.as_classes if loss == "ce" else model.as_labels
    x_train = model.as_batch(dataset["train_input"], "dataset['train_input']")
    y_train = labels(dataset["train_label"], x_train.shape[0], "dataset['train_label']")
    x_test = model.as_batch(dataset["test_input"], "dataset['test_input']")
    y_test = labels(dataset["test_label"], x_test.shape[0], "dataset['test_label']")
    return x_train, y_train, x_test, y_test


def custom_loss(loss_fn, pred, y):
    """loss_fn(pred, y) -> (loss, dloss/dpred), its answer checked: a real scalar and an array
    of pred's shape (a wrong shape would make a kernel read past the end of the array)."""
    answer = loss_fn(pred, y)
    if not isinstance(answer, tuple) or len(answer) != 2:
        raise TypeError(f"loss_fn must return a tuple (loss, dloss/dpred), got {type(answer).__name__}"
                        + (f" of length {len(answer)}" if isinstance(answer, tuple) else ""))
    loss, g = answer
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        raise TypeError(f"loss_fn's loss must be a real scalar, got {type(loss).__name__}") from None
    if getattr(g, "shape", None) != pred.shape:
        raise ValueError(f"loss_fn's gradient must have the predictions' shape {tuple(pred.shape)}, "
                         f"got {getattr(g, 'shape', type(g).__name__)}")
    return loss, g


def data_loss(loss, pred, y, n_rows=None):
    """This process's part of the data loss over n_rows rows of every process (default: pred's
    rows) and its gradient dpart/dpred: the parts of all processes sum to the loss.

    "mse": the sum of squared errors over pred's entries / (n_rows width); "ce" and a callable
    loss_fn (check_loss): their mean over pred's rows, weighted by rows / n_rows.
    """
    rows = int(pred.shape[0])
    n_rows = rows if n_rows is None else n_rows
    if loss == "mse":
        sse, residual = losses.squared_error(pred, y)
        size = n_rows * pred.shape[1]
        return sse / size, residual * (2.0 / size)
    if rows == 0:
        return 0.0, pred * 0.0
    value, g = losses.cross_entropy(pred, y) if loss == "ce" else custom_loss(loss, pred, y)
    if rows == n_rows:
        return value, g
    return value * (rows / n_rows), g * (rows / n_rows)


class Evaluation(NamedTuple):
    """One evaluation over every row of every process: loss = the data term + lamb * reg, grad
    its gradient (a new flat array aligned with the model's params), data_loss the data loss in
    the labels' own units, reg the regulariser's value (not times lamb; 0 without one), dx
    dL/dx of the raw inputs (B, width[0]) when asked for.

    With the mean squared error and an output scaling (KAN.set_scaling) the data term compares
    the network's standardised outputs with the standardised labels, so that training does not
    depend on the labels' units (Adam's eps, L-BFGS's first step and lamb's weight against the
    data are not scale-free); data_loss is the same fit's MSE in raw units."""

    loss: float
    grad: object
    data_loss: float
    reg: float
    dx: object = None


class OneProcess:
    """The ranks of a run in one process: sums over rows are this process's, as they are."""

    is_root = True
    collective = False
    gather_rows = None

    def agree(self, model, options):
        pass

    def run(self, fn, *args):
        return fn(*args)

    run_on_root = run

    def rows(self, n_local):
        """(rows of every process, offset of this process's first row)."""
        return n_local, 0

    def share_model(self, model):
        pass

    def sum(self, values):
        """A small host vector of integers (counts) summed over processes -> float64 NumPy array."""
        return np.asarray(values, dtype=np.float64)

    def exact_sum(self, partials, n_blocks):
        """Block partials (blocks, P) summed exactly over blocks and processes (kanarray.training.exact)."""
        return exact.exact_sum(partials, n_blocks)

    def fail(self, exc):
        raise exc

    def finish(self, model):
        return {}


ONE_PROCESS = OneProcess()


def evaluate(model, x, y, loss="mse", reg=None, point=None, workspaces=None, need_dx=False,
             ranks=ONE_PROCESS, n_rows=None, blocks=None, n_blocks=1):
    """Loss and gradient of `model` on device rows x, labels y -> Evaluation.

    loss: "mse", "ce" or loss_fn(pred, y) -> (loss, dloss/dpred) (check_loss); reg: an active
    kanarray.training.regularize.Regularization or None. point: the flat parameter vector to
    evaluate at (default: the model's params). need_dx: also dL/dx of the raw inputs.

    Sums over rows (kanarray.training.exact): `blocks` [(lo, hi)] are the runs of x's rows that
    each make one block of global rows (default: one block, all of x); every block is evaluated
    as a batch of its own and the blocks' partial loss and gradient are summed exactly over the
    blocks and over `ranks` (default: this process alone), whose blocks number n_blocks at most.
    workspaces: one kanarray.core.workspace.Workspace per block (training: its buffers and basis
    tapes are reused, and `point` is copied into it) or None. n_rows: the batch's rows over
    every process (default: x's).
    """
    xp, dtype, P = model.backend.xp, model.np_dtype, model.num_params
    n_rows = int(x.shape[0]) if n_rows is None else n_rows
    blocks = [(0, int(x.shape[0]))] if blocks is None else blocks
    magnitudes = reg is not None and reg.uses_activations
    standardised = loss == "mse" and model.output_scaling is not None
    partials = np.zeros((len(blocks), P + 2))  # per block: gradient, data term, raw data loss
    passes, failed = [], False
    try:  # forward, block by block
        for j, (lo, hi) in enumerate(blocks):
            ws = None if workspaces is None else workspaces[j]
            if ws is None:
                params = None if point is None else model.views(point)
                grad = xp.empty(P, dtype=dtype)
                grads = model.views(grad)
            else:
                params = ws.load(model.params if point is None else point)
                grad, grads = ws.grad, ws.grads
            acts = model.forward_all(x[lo:hi], params, ws)
            state = None if reg is None else RegState(model, acts, reg, params, grads,
                                                      None if ws is None else ws.tapes,
                                                      totals=False, coef=False)
            passes.append((lo, hi, acts, params, grads, grad, ws, state))
    except Exception as exc:  # noqa: BLE001 - one process re-raises; MPI ranks raise it on all
        failed = _fail(ranks, exc)
    if magnitudes:  # the edge magnitudes over every row: collective under MPI
        shapes = [(layer.in_dim, layer.out_dim) for layer in model.layers]
        sums = np.zeros((0 if failed else len(passes), sum(i * o for i, o in shapes)))
        for j, (*_, state) in enumerate([] if failed else passes):
            sums[j] = np.concatenate([model.backend.to_numpy(s).astype(np.float64).ravel()
                                      for s in state.sums])
        totals = np.split(ranks.exact_sum(sums, n_blocks), np.cumsum([i * o for i, o in shapes])[:-1])
        totals = [xp.asarray(t.reshape(shape), dtype=dtype) for t, shape in zip(totals, shapes)]
    dxs = []
    try:  # data loss and backward, block by block
        for j, (lo, hi, acts, params, grads, grad, ws, state) in enumerate([] if failed else passes):
            if magnitudes:
                state.set_totals(totals, n_rows)
            if standardised:
                part, g = data_loss(loss, acts.network_out, model.standardise(y[lo:hi]), n_rows)
                raw = losses.squared_error(acts[-1], y[lo:hi])[0] / (n_rows * y.shape[1])
            else:
                part, g = data_loss(loss, acts[-1], y[lo:hi], n_rows)
                raw = part
            dx = model.backward(acts, model.backend.asarray(g, dtype), grads, params, ws, state,
                                need_dx, raw=not standardised)
            partials[j, :P] = model.backend.to_numpy(grad)
            partials[j, P:] = part, raw
            if need_dx:
                dxs.append(dx if ws is None else dx.copy())  # ws's buffer is the next evaluation's
    except Exception as exc:  # noqa: BLE001
        failed = _fail(ranks, exc)
    total = ranks.exact_sum(partials[:0] if failed else partials, n_blocks)
    grad = xp.asarray(total[:P], dtype=dtype)
    reg_value = 0.0
    if reg is not None:
        coef_value, dcoef = coef_value_and_grads(model, reg, None if point is None else model.views(point))
        for grads_l, dcoef_l in zip(model.views(grad), dcoef):
            if dcoef_l is not None:
                grads_l["coef"] += reg.lamb * dcoef_l
        reg_value = coef_value + (magnitude_value(xp, totals, n_rows, reg)[0] if magnitudes else 0.0)
    part, raw = float(total[P]), float(total[P + 1])
    dx = None if not need_dx else xp.concatenate(dxs) if len(dxs) > 1 else dxs[0]
    return Evaluation(part if reg is None else part + reg.lamb * reg_value, grad, raw, reg_value, dx)


def _fail(ranks, exc):
    """Record an error of this process's evaluation: one process raises it; an MPI rank goes
    on to meet the others at the next sum, which raises it on every rank."""
    if not ranks.collective or isinstance(exc, CollectiveError):
        raise exc
    ranks.fail(exc)
    return True


class Objective:
    """The loss of `model` on `dataset` (see the module docstring), over the rows of `ranks`.

    loss: "mse", "ce" or loss_fn(pred, y) -> (loss, dloss/dpred) (check_loss); reg: a
    kanarray.training.regularize.Regularization or None; ranks: ONE_PROCESS, or
    kanarray.training.distributed.MPIRanks for data-parallel training (then dataset is this
    rank's shard, and construction is collective: the model and `options` are checked to agree
    on every rank, every shard is validated and rank 0's model is sent to all).

    block_rows: sums over rows are formed per block of block_rows global rows and added exactly
    (kanarray.training.exact), so the result does not depend on how the rows are spread over
    processes, provided each process holds whole blocks: its shard of training rows starts at a
    multiple of block_rows (kanarray.training.distributed.shard cuts them so). Test sums are
    exact sums of per-row terms, whatever the shards of test rows.
    """

    MAX_WORKSPACES = 64  # mini-batches make blocks of many sizes: drop the cached buffers past this

    def __init__(self, model, dataset, loss="mse", reg=None, ranks=ONE_PROCESS, options=None,
                 block_rows=exact.BLOCK_ROWS):
        self.model = model
        self.ranks = ranks
        self.is_root = ranks.is_root
        self.loss = check_loss(loss)
        self.reg = reg if reg is not None and reg.active else None
        self.block_rows = exact.check_block_rows(block_rows)
        ranks.agree(model, (options, self.block_rows))
        self.x_train, self.y_train, self.x_test, self.y_test = ranks.run(check_dataset, model,
                                                                         dataset, self.loss)
        self.n_local = int(self.x_train.shape[0])
        self.n_rows, self.offset = ranks.rows(self.n_local)
        self.n_test = ranks.rows(int(self.x_test.shape[0]))[0]
        ranks.run(self._check_whole_blocks, self.offset)
        self.n_blocks = exact.n_blocks_of(self.n_rows, self.block_rows)
        exact.n_blocks_of(self.n_test, 1)  # test sums are per row: at most MAX_BLOCKS rows
        ranks.share_model(model)
        self._workspaces = {}
        self.select(None)

    def _check_whole_blocks(self, offset):
        if offset % self.block_rows:
            raise ValueError(f"this process's training rows start at global row {offset}, not at a "
                             f"multiple of block_rows={self.block_rows}: every process must hold "
                             "whole blocks (kanarray.training.distributed.shard with the same "
                             "block_rows cuts the data so)")

    def select(self, rows):
        """rows: sorted global row ids of the batch (every rank draws the same), or None for all;
        this process uses those it owns (rows are numbered rank by rank, in rank order)."""
        if rows is None:
            self.xb, self.yb, self.n_batch = self.x_train, self.y_train, self.n_rows
            ids = self.offset + np.arange(self.n_local)
        else:
            lo, hi = np.searchsorted(rows, [self.offset, self.offset + self.n_local])
            ids = rows[lo:hi]
            index = self.model.backend.xp.asarray(ids - self.offset)
            self.xb, self.yb, self.n_batch = self.x_train[index], self.y_train[index], len(rows)
        self.blocks = exact.row_blocks(ids, self.block_rows)
        if len(self._workspaces) > self.MAX_WORKSPACES:
            self._workspaces.clear()
        self._workspace = []
        for j, (lo, hi) in enumerate(self.blocks):  # one per block: all are alive at once
            key = (j, hi - lo)
            if key not in self._workspaces:
                self._workspaces[key] = Workspace(self.model, hi - lo)
            self._workspaces[key].new_rows()
            self._workspace.append(self._workspaces[key])

    def value_and_grad(self, point):
        return evaluate(self.model, self.xb, self.yb, self.loss, self.reg, point, self._workspace,
                        ranks=self.ranks, n_rows=self.n_batch, blocks=self.blocks,
                        n_blocks=self.n_blocks)

    def step_metrics(self, ev):
        """What the history records for a step whose accepted evaluation is ev, over the rows of
        every process: mse and custom losses: train_loss = sqrt(data loss) (the RMSE for mse),
        test_loss = test RMSE; "ce": train_loss = the cross-entropy, test_loss = the test
        cross-entropy, and the accuracies train_accuracy and test_accuracy. The test sums are
        exact sums of per-row terms (every row a block), the same bits for any spread of rows."""
        model, y_test = self.model, self.y_test
        test_pred = model.forward_all(self.x_test)[-1]
        per_row = losses.row_cross_entropies if self.loss == "ce" else losses.row_squared_errors
        test_sum = float(self.ranks.exact_sum(per_row(test_pred, y_test)[:, None], self.n_test)[0])
        if self.loss != "ce":
            count = self.ranks.sum([y_test.size])[0]
            return {"train_loss": float(np.sqrt(max(ev.data_loss, 0.0))),
                    "test_loss": float(np.sqrt(test_sum / max(count, 1.0)))}
        n_train, n_test = int(self.xb.shape[0]), int(y_test.shape[0])
        counts = [0.0, 0.0, float(n_train), float(n_test)]
        if n_test:
            counts[1] = losses.hits(test_pred, y_test)
        if n_train:
            counts[0] = losses.hits(model.forward_all(self.xb)[-1], self.yb)
        train_hits, test_hits, n_train, n_test = self.ranks.sum(counts)  # integers: exact in any order
        return {"train_loss": ev.data_loss, "test_loss": float(test_sum / n_test),
                "train_accuracy": float(train_hits / n_train), "test_accuracy": float(test_hits / n_test)}

    def update_grid(self, margin=0.0):
        self.model.regrid(self.xb, self.ranks.gather_rows, margin,
                          self.ranks.fail if self.ranks.collective else None)

    def run(self, fn, *args):
        return self.ranks.run(fn, *args)

    def run_on_root(self, fn, *args):
        return self.ranks.run_on_root(fn, *args)

    def finish(self):
        return self.ranks.finish(self.model)
