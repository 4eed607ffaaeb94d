"""Data-parallel training over MPI (mpi4py): every rank holds a shard, every rank takes the same step.

    from mpi4py import MPI
    from kanarray import KAN, create_dataset
    from kanarray.training.distributed import shard

    comm = MPI.COMM_WORLD
    full = create_dataset(f, n_var=2, train_num=100_000)      # or: read only this rank's rows
    model = KAN(width=[2, 5, 1], grid=5, seed=0)
    model.fit(shard(full, comm), opt="lbfgs", steps=50, comm=comm, checkpoint="model.npz")

launched with `mpiexec -n 4 python train.py` (or `srun python train.py` under Slurm).

What is global and what is local
--------------------------------
* The loss is the mean over ALL rows of all ranks. Each rank evaluates the sum of squared errors
  over its rows and the gradient of that sum; one Allreduce (SUM) of one buffer
  [grad_sum..., loss_sum, error_flag] per evaluation gives every rank the same global loss and
  gradient, so every rank makes the same optimizer decisions (the L-BFGS line search included)
  and holds identical parameters. The global row count is reduced once, at the start.
* Mini-batches are drawn over the global row index space from the same seed on every rank; each
  rank uses the drawn rows it owns (rows are numbered rank by rank, in rank order). The union is
  exactly the batch a single process holding all the data draws with that seed.
* Grid updates gather the layer activations of every rank (Allgatherv) and compute the knots and
  the coefficient refit from the union, identically on every rank.
* Logged RMSEs (train and test) are global. Rank 0 alone prints, warns and writes checkpoints.
* At the start, rank 0's parameters, knots and masks are broadcast to all ranks, and the
  training arguments, model configuration and symbolic edge functions are checked to agree.

Failure behaviour
-----------------
An error on one rank is raised on every rank at the next collective (kanarray.training.collectives).
A non-finite loss is already global: every rank stops at the same step, restores the same last
good parameters, and the last checkpoint is left as it was.

GPUs
----
With device="cuda" the reduction buffer is a CuPy array. It goes to MPI directly when the MPI
library is CUDA-aware and the user says so (cuda_aware=True, or KANARRAY_MPI_CUDA_AWARE=1), and is
staged through host memory otherwise. `select_gpu(comm)` binds one GPU per rank from the
node-local rank; call it before building the model. Grid-update samples always travel on the
host (the refit runs there anyway).
"""
import os

import numpy as np

from . import losses, regularize
from .collectives import CollectiveError, Context, DistributedError, mpi
from .objective import DATASET_KEYS, Workspace, check_dataset, check_loss, data_loss, squared_error
from .regularize import Reduction, RegTape

__all__ = ["Context", "DistributedError", "MPIObjective", "launched_world", "local_rank", "mpi",
           "select_gpu", "shard", "shard_bounds"]


# ---------------------------------------------------------------------------- data
def shard_bounds(n_rows, size, rank):
    """Rows [lo, hi) of rank `rank` out of `size` for n_rows rows: contiguous, sizes differ by <= 1."""
    return n_rows * rank // size, n_rows * (rank + 1) // size


def shard(dataset, comm):
    """This rank's contiguous block of every array of a full dataset (train and test alike).

    Rank r of n gets rows [N r // n, N (r+1) // n), so the shards, concatenated in rank order,
    are the full dataset. Every rank needs at least one training and one test row.
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    if not isinstance(dataset, dict):
        raise TypeError(f"dataset must be a dict with keys {DATASET_KEYS}, got {type(dataset).__name__}")
    out = dict(dataset)
    for key in DATASET_KEYS:
        if key not in dataset:
            continue
        n_rows = len(dataset[key])
        if n_rows < size:
            raise ValueError(f"dataset[{key!r}] has {n_rows} rows, fewer than the {size} ranks")
        lo, hi = shard_bounds(n_rows, size, rank)
        out[key] = dataset[key][lo:hi]
    return out


LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE")


def launched_world():
    """MPI.COMM_WORLD when this process was started as one of several MPI ranks (mpiexec, srun),
    else None. The launcher's environment is looked at first, so a plain run never loads MPI."""
    if not any(name in os.environ for name in LAUNCHER_VARIABLES):
        return None
    comm = mpi().COMM_WORLD
    return comm if comm.Get_size() > 1 else None


# ---------------------------------------------------------------------------- devices
def local_rank(comm):
    """Rank of this process among the ranks on its node (COMM_TYPE_SHARED)."""
    MPI = mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_rank()
    finally:
        node.Free()


def select_gpu(comm):
    """Make GPU (node-local rank % GPUs on the node) current for CuPy and Numba; return its id.

    Call once per rank before creating a model with device="cuda". Under a launcher that
    already restricts each rank to one GPU (CUDA_VISIBLE_DEVICES per rank), this picks device 0.
    """
    import cupy

    n_gpus = cupy.cuda.runtime.getDeviceCount()
    if n_gpus == 0:
        raise RuntimeError("select_gpu: no NVIDIA GPU is visible on this node")
    device = local_rank(comm) % n_gpus
    cupy.cuda.Device(device).use()
    try:
        from numba import cuda

        cuda.select_device(device)
    except ImportError:
        pass
    return device


# ---------------------------------------------------------------------------- the objective
class MPIObjective:
    """The loss of `model` over the rows of every rank: kanarray.training.objective's interface, collective.

    dataset is this rank's shard; loss and reg as in kanarray.training.objective.LocalObjective.
    Construction is collective: it checks that the model and `agree_on` (the fit arguments) are
    the same on every rank, validates every shard (an error on one rank is raised on all),
    counts rows and broadcasts rank 0's parameters, knots and masks.
    """

    def __init__(self, model, dataset, comm, loss="mse", reg=None, cuda_aware=None, agree_on=None):
        self.ctx = ctx = Context(comm, model.backend.xp, cuda_aware)
        self.model = model
        self.is_root = ctx.is_root
        self.loss = check_loss(loss)
        self.reg = reg if reg is not None and reg.active else None
        symbolic = [layer.symbolic_fun.tolist() for layer in model.layers]
        ctx.same_everywhere("model configurations / parameter counts / symbolic edges / fit "
                            "arguments", (model.config(), model.num_params, symbolic, agree_on))
        data = ctx.run(check_dataset, model, dataset, self.loss)
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.n_local = int(self.x_train.shape[0])
        self.n_rows, self.offset = ctx.rows(self.n_local)
        ctx.bcast_(model.params)
        for layer in model.layers:
            ctx.bcast_(layer.knots)
            ctx.bcast_(layer.mask)
            ctx.bcast_(layer.symbolic_mask)
        self._workspaces = {}
        self.select(None)

    def select(self, rows):
        """rows: sorted global row ids of the batch (every rank draws the same); this rank uses
        those it owns (rows are numbered rank by rank, in rank order)."""
        if rows is None:
            self.xb, self.yb, self.n_batch = self.x_train, self.y_train, self.n_rows
        else:
            lo, hi = np.searchsorted(rows, [self.offset, self.offset + self.n_local])
            index = self.model.backend.xp.asarray(rows[lo:hi] - self.offset)
            self.xb, self.yb, self.n_batch = self.x_train[index], self.y_train[index], len(rows)
        n = int(self.xb.shape[0])
        if n not in self._workspaces:
            self._workspaces[n] = Workspace(self.model, n)
        self._workspace = self._workspaces[n]
        self._workspace.new_rows()

    def _reduction(self, norm):
        return Reduction(sum=self.ctx.allreduce_sum, n_rows=self.n_batch, grad_scale=norm,
                         owns_shared=self.is_root)

    def value_and_grad(self, params):
        """Global loss and gradient: each rank sums over its rows, one Allreduce adds them up."""
        model, ctx, reg = self.model, self.ctx, self.reg
        model.params[...] = params
        rows = int(self.xb.shape[0])
        # the sum of squared errors is normalised by all elements; the other losses are means over
        # the local rows: weighted by them, normalised by all rows
        norm = float(self.n_batch * (model.width[-1] if self.loss == "mse" else 1))
        tape = None
        try:
            current = self._workspace.first_tape_current(model)
            acts = model.forward_all(self.xb, self._workspace.acts, self._workspace.tapes, current)
            if not current:
                self._workspace.first_tape_filled(model)
            if reg is not None:  # collective: every rank gets here, or meets the others below
                tape = RegTape(model, acts, reg, reduction=self._reduction(norm), tapes=self._workspace.tapes)
            pred = acts[-1]
            if self.loss == "mse":
                loss_sum, residual = squared_error(pred, self.yb)
                g = 2.0 * residual
            elif rows == 0:
                loss_sum, g = 0.0, pred * 0.0
            else:
                loss, g = data_loss(self.loss, pred, self.yb)
                loss_sum, g = loss * rows, g * rows
            model.backward(acts, model.backend.asarray(g, model.np_dtype), tape, self._workspace.dx,
                           self._workspace.tapes, input_grad=False)
            grad_sum = model.grad
        except Exception as exc:  # noqa: BLE001 - raised on every rank by the reduction
            if isinstance(exc, CollectiveError):
                raise
            ctx.fail(exc)
            if tape is None and reg is not None and reg.uses_activations:
                # the other ranks wait in the regulariser's reduction: meet them there (it raises)
                ctx.allreduce_sum(np.zeros(sum(l.in_dim * l.out_dim for l in model.layers)))
            loss_sum, grad_sum = 0.0, model.backend.xp.zeros_like(model.grad)
        loss, grad = ctx.loss_and_grad(loss_sum, grad_sum, norm)
        if tape is not None:
            loss += reg.lamb * tape.value  # global and the same on every rank: added once
        return loss, grad

    def regularizer_value(self):
        return regularize.value(self.model, self.xb, self.reg, self._reduction(1.0))

    def step_metrics(self, data_loss_value):
        """kanarray.training.objective.step_metrics over the rows of every rank (test rows and, for "ce",
        the accuracy of the batch's rows); collective."""
        test_pred = self.model.forward_all(self.x_test)[-1]
        if self.loss != "ce":
            sse, residual = squared_error(test_pred, self.y_test)
            total, count = self.ctx.allreduce_sum([sse, residual.size])
            return {"train_loss": float(np.sqrt(max(data_loss_value, 0.0))),
                    "test_loss": float(np.sqrt(total / count))}
        sums = [0.0, 0.0, 0.0, float(self.xb.shape[0]), float(self.y_test.shape[0])]
        if self.y_test.shape[0]:
            sums[0] = losses.cross_entropy(test_pred, self.y_test)[0] * self.y_test.shape[0]
            sums[2] = losses.accuracy(test_pred, self.y_test) * self.y_test.shape[0]
        if self.xb.shape[0]:
            sums[1] = losses.accuracy(self.model.forward_all(self.xb)[-1], self.yb) * self.xb.shape[0]
        ce, train_hits, test_hits, n_train, n_test = self.ctx.allreduce_sum(sums)
        return {"train_loss": data_loss_value, "test_loss": ce / n_test,
                "train_accuracy": train_hits / n_train, "test_accuracy": test_hits / n_test}

    def update_grid(self, margin=0.0):
        self.model.regrid(self.xb, gather=self.ctx.gather_rows, margin=margin)

    def run(self, fn, *args):
        return self.ctx.run(fn, *args)

    def run_on_root(self, fn, *args):
        """fn(*args) on rank 0 alone; a failure there is raised on every rank."""
        if self.is_root:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001
                self.ctx.fail(exc)
        self.ctx.check()

    def finish(self):
        """Surface pending errors, check the ranks' parameters are identical; -> {"comm": stats}."""
        self.ctx.check()
        if not self.ctx.params_digest_agree(self.model.params):
            raise DistributedError("the ranks' parameters differ after training (non-deterministic "
                                   "reduction in the MPI library?)")
        return {"comm": dict(self.ctx.stats)}
