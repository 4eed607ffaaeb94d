"""Data-parallel training over MPI (mpi4py): every rank holds a shard, every rank takes the same step.

    from mpi4py import MPI
    from kanarray import KAN, create_dataset
    from kanarray.training.distributed import shard

    comm = MPI.COMM_WORLD
    full = create_dataset(f, n_var=2, train_num=100_000, test_num=10_000)  # or: read only this rank's rows
    model = KAN(width=[2, 5, 1], grid=5, seed=0)
    model.fit(shard(full, comm, block_rows=2048), opt="lbfgs", steps=50, comm=comm,
              block_rows=2048, checkpoint="model.npz")

launched with `mpiexec -n 4 python train.py` (or `srun python train.py` under Slurm).

What is global and what is local
--------------------------------
* The loss is the mean over ALL rows of all ranks. Rows are numbered rank by rank and cut into
  blocks of `block_rows` global rows; each rank holds whole blocks (shard cuts them so) and
  evaluates each of its blocks as a batch of its own, in the same code as a single process
  (kanarray.training.objective.evaluate). The blocks' partial losses and gradients are added
  exactly (kanarray.training.exact: one Allreduce(MAX) of the columns' exponents, one
  Allreduce(SUM) of int64 fixed-point sums), so every rank gets the same global loss and
  gradient, and the same bits as one process holding every row: every rank makes the same
  optimizer decisions (the L-BFGS line search included), whatever the number of ranks.
* Mini-batches are drawn over the global row index space from the same seed on every rank; each
  rank uses the drawn rows it owns, cut at the same block boundaries. The union is exactly the
  batch a single process holding all the data draws with that seed.
* Grid updates gather the layer activations of every rank (Allgatherv, in rank order: the rows
  of one process) and compute the knots and the coefficient refit from them, identically on
  every rank.
* Logged losses (train and test) and the regulariser's edge magnitudes are exact sums too.
  Rank 0 alone prints, warns and writes checkpoints.
* At the start, rank 0's parameters, knots and masks are broadcast to all ranks, and the
  training arguments, model configuration and symbolic edge functions are checked to agree.
* Pruning, symbolic fits and fit_constants decide on decision_rows: the same sample of the
  global rows on every rank, whatever the number of ranks.

Failure behaviour
-----------------
An error on one rank is raised on every rank at the next collective (kanarray.training.collectives).
A non-finite loss is already global: every rank stops at the same step, restores the same last
good parameters, and the last checkpoint is left as it was.

GPUs
----
With device="cuda" each block's gradient is copied to the host for the exact sum (the
reductions run on host buffers); parameters and knots are broadcast from device memory directly
when the MPI library is CUDA-aware and the user says so (cuda_aware=True, or
KANARRAY_MPI_CUDA_AWARE=1), and staged through host memory otherwise. `select_gpu(comm)` binds
one GPU per rank from the node-local rank; call it before building the model.
"""
import os

import numpy as np

from .collectives import Context, DistributedError, mpi
from .objective import DATASET_KEYS
from .exact import BLOCK_ROWS, check_block_rows, exact_sum, n_blocks_of
from ..core.metrics import mean_and_std

__all__ = ["Context", "DistributedError", "MPIRanks", "check_comm", "column_stats", "decision_rows",
           "launched_world", "local_rank", "mpi", "select_gpu", "shard", "shard_bounds"]

DECISION_ROWS = 10_000  # at most this many rows, from every rank, for pruning and symbolic fits


# ---------------------------------------------------------------------------- data
def shard_bounds(n_rows, size, rank, block_rows=BLOCK_ROWS):
    """Rows [lo, hi) of rank `rank` out of `size` for n_rows rows: contiguous runs of whole
    blocks of block_rows rows (kanarray.training.exact), the blocks shared out as evenly as
    they go (rank r gets blocks [n r // size, n (r+1) // size) of the n blocks)."""
    check_block_rows(block_rows)
    n_blocks = -(-n_rows // block_rows)
    if n_blocks < size:
        raise ValueError(f"{n_rows} rows make {n_blocks} block(s) of block_rows={block_rows}, fewer "
                         f"than the {size} ranks: every rank needs a block; pass a smaller "
                         "block_rows (the same to fit)")
    return (min(n_rows, n_blocks * rank // size * block_rows),
            min(n_rows, n_blocks * (rank + 1) // size * block_rows))


def shard(dataset, comm, block_rows=BLOCK_ROWS):
    """This rank's contiguous run of every array of a full dataset.

    Training rows come in whole blocks of block_rows rows (shard_bounds), test rows in even
    runs; concatenated in rank order the shards are the full dataset, and fit(..., comm=comm,
    block_rows=block_rows) then gives the same bits as one process fitting the full dataset.
    Every rank needs at least one block of training rows and one test row.
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    if not isinstance(dataset, dict):
        raise TypeError(f"dataset must be a dict with keys {DATASET_KEYS}, got {type(dataset).__name__}")
    out = dict(dataset)
    for key in DATASET_KEYS:
        if key not in dataset:
            continue
        try:
            lo, hi = shard_bounds(len(dataset[key]), size, rank,
                                  block_rows if key.startswith("train") else 1)
        except ValueError as exc:
            raise ValueError(f"dataset[{key!r}]: {exc}") from None
        out[key] = dataset[key][lo:hi]
    return out


def decision_rows(comm, arrays, max_rows=DECISION_ROWS):
    """The same rows of every rank's data on every rank, for decisions that must use all of it
    (pruning, symbolic fits, fit_constants): of the global rows (this rank's `arrays`, all of
    equal length, numbered rank by rank) every s-th one, s = ceil(global rows / max_rows), in
    global order. The rows chosen depend on the global row numbers only, so 1 or N ranks get the
    same sample (comm None: this process holds every row). Collective; errors on one rank are
    raised on all. -> list of host arrays."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    n_local = len(arrays[0])
    if comm is None:
        stride = max(1, -(-n_local // max_rows))
        return [a[::stride] for a in arrays]
    ctx = Context(comm)
    total, offset = ctx.rows(n_local)
    stride = max(1, -(-total // max_rows))
    first = (-offset) % stride  # the first local row whose global number is a multiple of stride
    return [ctx.gather_rows(a[first::stride].reshape(-1, int(np.prod(a.shape[1:], dtype=int))))
            .reshape(-1, *a.shape[1:]) for a in arrays]


def check_comm(comm):
    """comm: an mpi4py communicator or None, else a TypeError."""
    if comm is not None and not all(hasattr(comm, m) for m in ("Get_rank", "Get_size", "Allreduce")):
        raise TypeError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD) or None, "
                        f"got {type(comm).__name__}")
    return comm


def column_stats(comm, x, y=None):
    """Over the rows of every rank (comm None: x and y hold every row): the per-column min and
    max of x (N, I) and, for y (N, C), the per-column (mean, std) or None -> (low, high, moments).
    The sums over rows are exact sums of per-row terms (kanarray.training.exact), so the bits
    do not depend on the number of ranks. Collective."""
    check_comm(comm)
    x = np.asarray(x, dtype=np.float64)
    MPI = None if comm is None else mpi()

    def total(values, op="SUM"):
        values = np.array(values, dtype=np.float64)
        if comm is not None:
            comm.Allreduce(MPI.IN_PLACE, values, op=getattr(MPI, op))
        return values

    low, high = total(x.min(axis=0, initial=np.inf), "MIN"), total(x.max(axis=0, initial=-np.inf), "MAX")
    if y is None:
        return low, high, None
    y = np.asarray(y, dtype=np.float64)
    ctx = None if comm is None else Context(comm)
    n_rows = len(y) if ctx is None else ctx.rows(len(y))[0]
    add = exact_sum if ctx is None else ctx.exact_sum

    def sum_rows(values):  # every row its own block of the exact sum
        return add(values, n_blocks_of(n_rows, 1))

    return low, high, mean_and_std(y, total, sum_rows)


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


# ---------------------------------------------------------------------------- the ranks
class MPIRanks:
    """The ranks of a data-parallel run over `comm`, as kanarray.training.objective.Objective
    sees them: the blocks' partial sums are added exactly over every rank (exact_sum: for the
    loss and gradient, and for the regulariser's magnitudes), and every method is collective
    (an error on one rank is raised on all, kanarray.training.collectives).

        objective = Objective(model, shard(dataset, comm), ranks=MPIRanks(comm), options=...)
    """

    collective = True

    def __init__(self, comm, xp=np, cuda_aware=None):
        self.ctx = Context(comm, xp, cuda_aware)
        self.is_root = self.ctx.is_root
        self.gather_rows = self.ctx.gather_rows

    def agree(self, model, options):
        """Raise on every rank unless the model (configuration, parameter count, symbolic
        edges) and the fit options are the same on every rank."""
        symbolic = [layer.symbolic_fun.tolist() for layer in model.layers]
        self.ctx.same_everywhere("model configurations / parameter counts / symbolic edges / fit "
                                 "arguments", (model.config(), model.num_params, symbolic, options))

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

    def rows(self, n_local):
        return self.ctx.rows(n_local)

    def share_model(self, model):
        """Rank 0's parameters, knots and masks on every rank."""
        self.ctx.bcast_(model.params)
        for layer in model.layers:
            self.ctx.bcast_(layer.knots)
            self.ctx.bcast_(layer.mask)
            self.ctx.bcast_(layer.symbolic_mask)

    def sum(self, values):
        return self.ctx.allreduce_sum(values)

    def exact_sum(self, partials, n_blocks):
        return self.ctx.exact_sum(partials, n_blocks)

    def fail(self, exc):
        self.ctx.fail(exc)

    def finish(self, model):
        """Surface pending errors, check the ranks' parameters are identical; -> {"comm": stats}."""
        self.ctx.check()
        if not self.ctx.params_digest_agree(model.params):
            raise DistributedError("the ranks' parameters differ after training (non-deterministic "
                                   "reduction in the MPI library?)")
        return {"comm": dict(self.ctx.stats)}
