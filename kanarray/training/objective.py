"""What the training loop minimises: a model's loss and gradient on its training data.

An objective is a small object with one job, evaluating the loss at a parameter vector, plus
what the loop needs around that (kanarray.training.loop.fit never asks how the numbers are made):

    n_rows                    training rows the loop draws its batches from
    is_root                   whether this process prints, warns and writes files
    select(rows)              the batch of the next evaluations: sorted row ids, or None = all
    value_and_grad(params)    -> (loss, grad): loss at params on the batch, grad a new flat array
    regularizer_value()       the regulariser's value (not times lamb) on the batch
    step_metrics(data_loss)   {"train_loss", "test_loss", ...}: what the history records
    update_grid(margin)       move the grids to the batch's activations (range widened by margin cells)
    run(fn, *args)            call user code (callback, checkpoint); its errors reach the loop
    run_on_root(fn, *args)    the same, on the root process only
    finish()                  -> dict of statistics, after the last step

LocalObjective is the one for data in this process; kanarray.training.distributed.MPIObjective is the
same interface over the rows of every MPI rank.
"""
import numpy as np

from . import losses, regularize

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


def squared_error(pred, y):
    """(sum of squared errors, residual pred - y) of predictions against labels, both (B, O)."""
    residual = pred - y
    return float((residual * residual).sum()), residual


def rmse(pred, y):
    """Root mean squared error over every entry of (B, O) predictions and labels."""
    sse, _ = squared_error(pred, y)
    return float(np.sqrt(sse / max(pred.size, 1)))


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


def data_loss(loss, pred, y):
    """(loss, dloss/dpred) of predictions (B, O): loss "mse", "ce" or a callable (check_loss)."""
    if loss == "mse":
        sse, residual = squared_error(pred, y)
        return sse / residual.size, residual * (2.0 / residual.size)
    if loss == "ce":
        return losses.cross_entropy(pred, y)
    return custom_loss(loss, pred, y)


def loss_and_grad(model, x, y, loss="mse", reg=None, workspace=None, input_grad=True):
    """(loss, dL/dx, regulariser value) at device inputs x, labels y; the parameter gradient is
    left in model.grad. loss: "mse" (default), "ce" or loss_fn(pred, y) -> (loss, dloss/dpred);
    reg: a kanarray.training.regularize.Regularization (loss += reg.lamb * its value when active).
    workspace: a Workspace of preallocated activation buffers for this batch size.
    input_grad=False: dL/dx is not wanted (training), and may come back as None."""
    if workspace is None:
        acts = model.forward_all(x)
    else:
        current = workspace.first_tape_current(model)
        acts = model.forward_all(x, workspace.acts, workspace.tapes, current)
        if not current:
            workspace.first_tape_filled(model)
    tape = regularize.tape(model, acts, reg, tapes=None if workspace is None else workspace.tapes)
    loss, g = data_loss("mse" if loss is None else loss, acts[-1], y)
    reg_value = 0.0 if tape is None else tape.value
    if tape is not None:
        loss += reg.lamb * reg_value
    dx = model.backward(acts, model.backend.asarray(g, model.np_dtype), tape,
                        None if workspace is None else workspace.dx,
                        None if workspace is None else workspace.tapes, input_grad)
    return loss, dx, reg_value


class Workspace:
    """Preallocated buffers of every layer for one batch size: outputs, input gradients and,
    on the CPU, the basis tapes that let backward reuse forward's spans and bases.

    The first layer's input is the batch itself, the same rows at every evaluation until the
    objective selects others (new_rows()): its tape is kept while the first layer's knots and
    the input scaling stay what they were when it was filled (first_tape_current).
    """

    def __init__(self, model, n_rows):
        xp, dtype = model.backend.xp, model.np_dtype
        self.n_rows = n_rows
        self.acts = [xp.empty((n_rows, layer.out_dim), dtype=dtype) for layer in model.layers]
        self.dx = [xp.empty((n_rows, layer.in_dim), dtype=dtype) for layer in model.layers]
        kernels = model.backend.kernels
        self.tapes = None if model.backend.device != "cpu" else [
            kernels.new_basis_tape(n_rows, layer.in_dim, layer.knots.shape[1], layer.k, dtype)
            for layer in model.layers]
        self._first_key = None

    def new_rows(self):
        """The batch changed: the first layer's tape no longer holds it."""
        self._first_key = None

    def first_tape_current(self, model):
        """True when tapes[0] holds the first layer's basis of this batch, so forward may skip
        filling it."""
        return self._first_key is not None and self._first_key == self._key_of(model)

    def first_tape_filled(self, model):
        """Record that forward filled tapes[0] for this batch at the model's current knots."""
        if self.tapes is not None:
            self._first_key = self._key_of(model)

    @staticmethod
    def _key_of(model):
        """What the first layer's tape depends on besides the rows: its knots and the input map,
        as (shape, dtype, bytes) of each (equal bytes: the same tape; a byte compare costs a
        fraction of np.array_equal's per-call overhead, which was 2% of a small evaluation)."""
        shift, scale = model.input_scaling if model.input_scaling is not None else (np.zeros(0), np.zeros(0))
        return tuple((a.shape, a.dtype.str, a.tobytes()) for a in (model.layers[0].knots, shift, scale))


def step_metrics(loss, data_loss_value, test_pred, y_test, train_pred=None, y_train=None):
    """What the history records for one step, from this process's rows (LocalObjective).

    mse and custom losses: train_loss = sqrt(data loss) (the RMSE for mse), test_loss = test
    RMSE. "ce": train_loss = the cross-entropy, test_loss = the test cross-entropy, and the
    accuracies train_accuracy and test_accuracy.
    """
    if loss != "ce":
        return {"train_loss": float(np.sqrt(max(data_loss_value, 0.0))),
                "test_loss": rmse(test_pred, y_test)}
    return {"train_loss": data_loss_value, "test_loss": losses.cross_entropy(test_pred, y_test)[0],
            "train_accuracy": losses.accuracy(train_pred, y_train),
            "test_accuracy": losses.accuracy(test_pred, y_test)}


class LocalObjective:
    """The loss of `model` on `dataset` in this process (see the module docstring).

    loss: "mse", "ce" or loss_fn(pred, y) -> (loss, dloss/dpred) (check_loss);
    reg: a kanarray.training.regularize.Regularization or None.
    """

    is_root = True

    def __init__(self, model, dataset, loss="mse", reg=None):
        self.model = model
        self.loss = check_loss(loss)
        self.x_train, self.y_train, self.x_test, self.y_test = check_dataset(model, dataset, loss)
        self.n_rows = int(self.x_train.shape[0])
        self.reg = reg if reg is not None and reg.active else None
        self._workspaces = {}
        self.select(None)

    def select(self, rows):
        if rows is None:
            self.xb, self.yb = self.x_train, self.y_train
        else:
            index = self.model.backend.xp.asarray(rows)
            self.xb, self.yb = self.x_train[index], self.y_train[index]
        n = int(self.xb.shape[0])
        if n not in self._workspaces:
            self._workspaces[n] = Workspace(self.model, n)
        self._workspace = self._workspaces[n]
        self._workspace.new_rows()

    def value_and_grad(self, params):
        self.model.params[...] = params
        loss, _, _ = loss_and_grad(self.model, self.xb, self.yb, self.loss, self.reg,
                                   self._workspace, input_grad=False)
        return loss, self.model.grad.copy()

    def regularizer_value(self):
        return regularize.value(self.model, self.xb, self.reg)

    def step_metrics(self, data_loss_value):
        train_pred = self.model.forward_all(self.xb)[-1] if self.loss == "ce" else None
        return step_metrics(self.loss, data_loss_value, self.model.forward_all(self.x_test)[-1],
                            self.y_test, train_pred, self.yb)

    def update_grid(self, margin=0.0):
        self.model.regrid(self.xb, margin=margin)

    def run(self, fn, *args):
        return fn(*args)

    run_on_root = run

    def finish(self):
        return {}
