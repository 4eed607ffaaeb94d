"""Data-parallel training over MPI (mpi4py): every rank holds a shard, every rank takes the same step.

    from mpi4py import MPI
    from kanarray import KAN, create_dataset
    from kanarray.distributed import shard

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
Every collective carries an error flag. A rank that fails (invalid data in its shard, an
exception in a loss evaluation, a callback or a checkpoint write) raises the error on EVERY rank
at the next collective, with the same type and message ("rank r of n: ..."), instead of leaving
the others waiting forever. A non-finite loss is already global: every rank stops at the same
step, restores the same last good parameters, and the last checkpoint is left as it was.

GPUs
----
With device="cuda" the reduction buffer is a CuPy array. It goes to MPI directly when the MPI
library is CUDA-aware and the user says so (cuda_aware=True, or KANARRAY_MPI_CUDA_AWARE=1), and is
staged through host memory otherwise. `select_gpu(comm)` binds one GPU per rank from the
node-local rank; call it before building the model. Grid-update samples always travel on the
host (the refit runs there anyway).
"""
import os
import time
import zlib

import numpy as np

from . import regularize
from .arrays import is_cupy_array
from .objective import DATASET_KEYS, check_dataset, custom_loss, squared_error
from .regularize import Reduction, RegTape

ENV_CUDA_AWARE = "KANARRAY_MPI_CUDA_AWARE"
# Exception types re-raised as themselves on every rank; anything else becomes DistributedError.
_SAME_TYPE = {cls.__name__: cls for cls in (ValueError, TypeError, FloatingPointError,
                                            ZeroDivisionError, OverflowError, MemoryError,
                                            OSError, KeyError, IndexError, NotImplementedError)}


class DistributedError(RuntimeError):
    """An error raised on one rank, re-raised on every rank."""


class _CollectiveError(Exception):
    """Mixin marking an error that every rank raises at the same collective."""


def mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("distributed training needs mpi4py and an MPI library: "
                          f"pip install 'kanarray[mpi]' ({exc})") from None
    return MPI


def _env_flag(name):
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no", "off")


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


# ---------------------------------------------------------------------------- collectives
class Context:
    """The collective operations of one training run over `comm`.

    Every method is collective: all ranks call the same methods in the same order. Each one
    carries this rank's error flag, so an error recorded with `fail` on any rank is raised on
    every rank by the next collective (see `_raise_collectively`).

    xp          numpy or cupy: where the model's arrays (the gradient buffer) live
    cuda_aware  pass CuPy buffers to MPI directly (None: the KANARRAY_MPI_CUDA_AWARE env var);
                otherwise they are staged through host memory. NumPy buffers go directly,
                unless staged=True (used to test the staging path without a GPU).
    """

    def __init__(self, comm, xp=np, cuda_aware=None, staged=False):
        self.MPI = mpi()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.is_root = self.rank == 0
        self.xp = xp
        self.cuda_aware = _env_flag(ENV_CUDA_AWARE) if cuda_aware is None else bool(cuda_aware)
        self.stage_host_buffers = bool(staged)
        self._pending = None
        self.stats = {"allreduce_calls": 0, "allreduce_seconds": 0.0,
                      "gather_calls": 0, "gather_seconds": 0.0}

    # -- errors ---------------------------------------------------------------
    def fail(self, exc):
        """Record an error of this rank; the next collective raises it on every rank."""
        if self._pending is None:
            self._pending = exc

    def _raise_collectively(self):
        mine = None
        if self._pending is not None:
            mine = (type(self._pending).__name__, str(self._pending))
        everyone = self.comm.allgather(mine)
        failed = [(r, m) for r, m in enumerate(everyone) if m is not None]
        rank, (name, message) = failed[0]
        text = f"rank {rank} of {self.size}: {message}"
        if len(failed) > 1:
            text += f" (ranks {[r for r, _ in failed]} failed)"
        cls = _SAME_TYPE.get(name, DistributedError)
        error = type(cls.__name__, (cls, _CollectiveError), {"__module__": cls.__module__})(text)
        error.rank = rank
        error.collective = True  # raised on every rank alike
        if self._pending is not None:
            raise error from self._pending
        raise error

    def check(self):
        """Collective: raise on every rank if any rank has a pending error."""
        self._timed_allreduce(np.array([0.0 if self._pending is None else 1.0]))

    def run(self, fn, *args):
        """fn(*args) on every rank; if it raises on any rank, every rank raises that error."""
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - re-raised collectively just below
            self.fail(exc)
            result = None
        self.check()
        return result

    # -- reductions -----------------------------------------------------------
    def _timed_allreduce(self, buf):
        """In-place SUM over ranks of a 1-D buffer whose last slot is the error flag."""
        if self._pending is not None:
            buf[-1] = 1.0
        start = time.perf_counter()
        if self._direct(buf):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        else:
            host = self._to_host(buf)
            self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
            self._from_host(buf, host)
        self.stats["allreduce_calls"] += 1
        self.stats["allreduce_seconds"] += time.perf_counter() - start
        if float(buf[-1]) != 0.0:
            self._raise_collectively()
        return buf

    def _direct(self, buf):
        """True: hand `buf` to MPI as it is; False: stage it through a host copy."""
        if is_cupy_array(buf):
            if self.cuda_aware:  # MPI reads the device memory: the writes to it must be done
                self.xp.cuda.get_current_stream().synchronize()
            return self.cuda_aware
        return not self.stage_host_buffers

    def _to_host(self, array):
        if is_cupy_array(array):
            return self.xp.asnumpy(array)  # device -> host (synchronises)
        return np.array(array)  # a copy, as a device-to-host transfer would make

    def _from_host(self, array, host):
        array[...] = self.xp.asarray(host) if is_cupy_array(array) else host

    def allreduce_sum(self, values):
        """Sum over ranks of a small host vector of floats -> float64 NumPy array."""
        buf = np.zeros(len(values) + 1)
        buf[:-1] = values
        return self._timed_allreduce(buf)[:-1]

    def loss_and_grad(self, loss_sum, grad_sum, norm):
        """Global (loss_sum / norm, grad_sum / norm): one Allreduce of [grad, loss, flag]."""
        n = grad_sum.shape[0]
        buf = self.xp.empty(n + 2, dtype=grad_sum.dtype)
        buf[:n] = grad_sum
        buf[n] = loss_sum
        buf[n + 1] = 0.0
        self._timed_allreduce(buf)
        return float(buf[n]) / norm, buf[:n] / norm

    def rows(self, n_local):
        """(global row count, offset of this rank's first row) for n_local rows on this rank."""
        counts = self.allgather_ints([n_local])[:, 0]
        return int(counts.sum()), int(counts[:self.rank].sum())

    def allgather_ints(self, values):
        """(size, len(values)) int64 array of every rank's values; also carries the error flag."""
        local = np.array(list(values) + [0 if self._pending is None else 1], dtype=np.int64)
        out = np.empty((self.size, local.size), dtype=np.int64)
        self.comm.Allgather(local, out)
        if out[:, -1].any():
            self._raise_collectively()
        return out[:, :-1]

    def gather_rows(self, samples):
        """Concatenation, in rank order, of every rank's (B_r, I) float64 host rows (Allgatherv)."""
        start = time.perf_counter()
        samples = np.ascontiguousarray(samples, dtype=np.float64)
        width = samples.shape[1]
        counts = self.allgather_ints([samples.shape[0], width])
        if np.any(counts[:, 1] != width):
            raise ValueError(f"gather_rows: ranks hold rows of different widths {counts[:, 1].tolist()}")
        sizes = counts[:, 0] * width
        displs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out = np.empty((int(counts[:, 0].sum()), width))
        self.comm.Allgatherv(samples, [out, sizes, displs, self.MPI.DOUBLE])
        self.stats["gather_calls"] += 1
        self.stats["gather_seconds"] += time.perf_counter() - start
        return out

    def bcast_(self, array):
        """Overwrite `array` (device or host) with rank 0's values, in place."""
        if self._direct(array):
            self.comm.Bcast(array, root=0)
        else:
            host = self._to_host(array)
            self.comm.Bcast(host, root=0)
            self._from_host(array, host)

    def same_everywhere(self, what, value):
        """Raise on every rank unless `value` (picklable) is equal on all ranks."""
        everyone = self.comm.allgather(value)
        differ = [r for r, v in enumerate(everyone) if v != everyone[0]]
        if differ:  # everyone sees the same list: every rank raises this
            error = ValueError(f"{what} differ between ranks: rank 0 has {everyone[0]!r}, rank "
                             f"{differ[0]} has {everyone[differ[0]]!r}; every rank must call "
                             "fit with the same model and arguments")
            error.collective = True
            raise error

    def params_digest_agree(self, params):
        """True when every rank's parameters are bit-identical (CRC32 of the bytes)."""
        host = self._to_host(params) if is_cupy_array(params) else params
        crc = zlib.crc32(np.ascontiguousarray(host).tobytes())
        return len(set(self.comm.allgather(crc))) == 1


# ---------------------------------------------------------------------------- the objective
class MPIObjective:
    """The loss of `model` over the rows of every rank: kanarray.objective's interface, collective.

    dataset is this rank's shard; loss_fn and reg as in kanarray.objective.LocalObjective.
    Construction is collective: it checks that the model and `agree_on` (the fit arguments) are
    the same on every rank, validates every shard (an error on one rank is raised on all),
    counts rows and broadcasts rank 0's parameters, knots and masks.
    """

    def __init__(self, model, dataset, comm, loss_fn=None, reg=None, cuda_aware=None, agree_on=None):
        self.ctx = ctx = Context(comm, model.backend.xp, cuda_aware)
        self.model = model
        self.is_root = ctx.is_root
        self.loss_fn = loss_fn
        self.reg = reg if reg is not None and reg.active else None
        symbolic = [layer.symbolic_fun.tolist() for layer in model.layers]
        ctx.same_everywhere("model configurations / parameter counts / symbolic edges / fit "
                            "arguments", (model.config(), model.num_params, symbolic, agree_on))
        data = ctx.run(check_dataset, model, dataset)
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.n_local = int(self.x_train.shape[0])
        self.n_rows, self.offset = ctx.rows(self.n_local)
        ctx.bcast_(model.params)
        for layer in model.layers:
            ctx.bcast_(layer.knots)
            ctx.bcast_(layer.mask)
            ctx.bcast_(layer.symbolic_mask)
        self.select(None)

    def select(self, rows):
        """rows: sorted global row ids of the batch (every rank draws the same); this rank uses
        those it owns (rows are numbered rank by rank, in rank order)."""
        if rows is None:
            self.xb, self.yb, self.n_batch = self.x_train, self.y_train, self.n_rows
            return
        lo, hi = np.searchsorted(rows, [self.offset, self.offset + self.n_local])
        index = self.model.backend.xp.asarray(rows[lo:hi] - self.offset)
        self.xb, self.yb, self.n_batch = self.x_train[index], self.y_train[index], len(rows)

    def _reduction(self, norm):
        return Reduction(sum=self.ctx.allreduce_sum, n_rows=self.n_batch, grad_scale=norm,
                         owns_shared=self.is_root)

    def value_and_grad(self, params):
        """Global loss and gradient: each rank sums over its rows, one Allreduce adds them up."""
        model, ctx, reg = self.model, self.ctx, self.reg
        model.params[...] = params
        rows = int(self.xb.shape[0])
        # the sum of squared errors is normalised by all elements; a custom loss is a mean over
        # the local rows: weighted by them, normalised by all rows
        norm = float(self.n_batch * (model.width[-1] if self.loss_fn is None else 1))
        tape = None
        try:
            acts = model.forward_all(self.xb)
            if reg is not None:  # collective: every rank gets here, or meets the others below
                tape = RegTape(model, acts, reg, reduction=self._reduction(norm))
            pred = acts[-1]
            if self.loss_fn is None:
                loss_sum, residual = squared_error(pred, self.yb)
                g = 2.0 * residual
            elif rows == 0:
                loss_sum, g = 0.0, pred * 0.0
            else:
                loss, g = custom_loss(self.loss_fn, pred, self.yb)
                loss_sum, g = loss * rows, g * rows
            model.backward(acts, model.backend.asarray(g, model.np_dtype), tape)
            grad_sum = model.grad
        except Exception as exc:  # noqa: BLE001 - raised on every rank by the reduction
            if isinstance(exc, _CollectiveError):
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

    def test_rmse(self):
        sse, residual = squared_error(self.model.forward_all(self.x_test)[-1], self.y_test)
        total, count = self.ctx.allreduce_sum([sse, residual.size])
        return float(np.sqrt(total / count))

    def update_grid(self):
        self.model.regrid(self.xb, gather=self.ctx.gather_rows)

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
