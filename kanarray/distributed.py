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
import sys
import time
import zlib

import numpy as np

from .backend import is_cupy_array

ENV_CUDA_AWARE = "KANARRAY_MPI_CUDA_AWARE"
DATASET_KEYS = ("train_input", "train_label", "test_input", "test_label")
# Exception types re-raised as themselves on every rank; anything else becomes DistributedError.
_SAME_TYPE = {cls.__name__: cls for cls in (ValueError, TypeError, FloatingPointError,
                                            ZeroDivisionError, OverflowError, MemoryError,
                                            OSError, KeyError, IndexError, NotImplementedError)}


class DistributedError(RuntimeError):
    """An error raised on one rank, re-raised on every rank."""


class _CollectiveError(Exception):
    """Mixin marking an error that every rank raises at the same collective."""


def _mpi():
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
    MPI = _mpi()
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
        self.MPI = _mpi()
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


# ---------------------------------------------------------------------------- the fit loop's hooks
class Trainer:
    """What kanarray.train.fit needs to run data-parallel: one per fit call."""

    def __init__(self, comm, model, cuda_aware=None):
        self.ctx = Context(comm, model.backend.xp, cuda_aware)
        self.model = model
        self.is_root = self.ctx.is_root
        self.n_global = self.offset = self.n_local = None
        self.n_test_global = None

    def setup(self, load_dataset, dataset, arguments):
        """Validate the shard on every rank (collectively), check the arguments agree, count rows
        and broadcast rank 0's model state. Returns the device dataset."""
        model, ctx = self.model, self.ctx
        symbolic = [getattr(layer, "symbolic_fun", np.empty(0)).tolist() for layer in model.layers]
        ctx.same_everywhere("model configurations / parameter counts / symbolic edges / fit "
                            "arguments", (model.config(), model.num_params, symbolic, arguments))
        data = ctx.run(load_dataset, model, dataset)
        x_train, _, x_test, _ = data
        self.n_local = int(x_train.shape[0])
        self.n_global, self.offset = ctx.rows(self.n_local)
        self.n_test_global, _ = ctx.rows(int(x_test.shape[0]))
        ctx.bcast_(model.params)
        for layer in model.layers:
            ctx.bcast_(layer.knots)
            ctx.bcast_(layer.mask)
            if getattr(layer, "symbolic_mask", None) is not None:
                ctx.bcast_(layer.symbolic_mask)
        return data

    def local_rows(self, rows):
        """The rows of a global batch (sorted global indices) that this rank owns, as local indices."""
        lo, hi = np.searchsorted(rows, [self.offset, self.offset + self.n_local])
        return rows[lo:hi] - self.offset

    def objective(self, params, xb, yb, loss_fn, n_batch_global, reg=None):
        """Global loss and gradient at `params` over the rows of all ranks' batches.

        xb, yb: this rank's rows of the batch (possibly none); n_batch_global: rows of all ranks;
        reg: a kanarray.regularize.Regularization, evaluated on global quantities (_GlobalReg).
        """
        model, ctx = self.model, self.ctx
        model.params[...] = params
        n_out = model.width[-1]
        rows = int(xb.shape[0])
        if loss_fn is None:  # the sum of squared errors, normalised by all elements
            norm = float(n_batch_global * n_out)
        else:  # loss_fn gives a mean over the local rows: weighted by them, normalised by all rows
            norm = float(n_batch_global)
        tape = None
        try:
            acts = model.forward_all(xb)
            if reg is not None and reg.active:  # collective: every rank gets here, or none does
                tape = _GlobalReg(model, acts, reg, ctx, n_batch_global, scale=norm)
            pred = acts[-1]
            if loss_fn is None:
                residual = pred - yb
                loss_sum, g = float((residual * residual).sum()), 2.0 * residual
            elif rows == 0:
                loss_sum, g = 0.0, pred * 0.0
            else:
                loss, g = loss_fn(pred, yb)
                loss_sum, g = float(loss) * rows, g * rows
            model.backward(acts, model.backend.asarray(g, model.np_dtype), tape)
            grad_sum = model._grad
        except Exception as exc:  # noqa: BLE001 - raised on every rank by the reduction
            if isinstance(exc, _CollectiveError):
                raise
            ctx.fail(exc)
            if tape is None and reg is not None and reg.active and reg.uses_activations:
                # the other ranks wait in the regulariser's reduction: meet them there (it raises)
                ctx.allreduce_sum(np.zeros(sum(l.in_dim * l.out_dim for l in model.layers)))
            loss_sum, grad_sum = 0.0, model.backend.xp.zeros_like(model._grad)
        loss, grad = ctx.loss_and_grad(loss_sum, grad_sum, norm)
        if tape is not None:
            loss += reg.lamb * tape.value  # global and the same on every rank: added once
        return loss, grad

    def reg_value(self, model, xb, reg, n_batch_global):
        """The regulariser's value (not times lamb) on the global batch; collective."""
        acts = model.forward_all(xb)
        return _GlobalReg(model, acts, reg, self.ctx, n_batch_global, scale=1.0,
                          need_grad=False).value

    def rmse(self, model, x, y):
        """Global RMSE over every rank's rows of (x, y)."""
        residual = model.forward_all(x)[-1] - y
        local = float((residual * residual).sum())
        total, count = self.ctx.allreduce_sum([local, residual.size])
        return float(np.sqrt(total / count))

    def save_checkpoint(self, path):
        """Rank 0 writes `path` atomically; a failure there is raised on every rank."""
        if self.is_root:
            try:
                from .io import save

                save(self.model, path)
            except Exception as exc:  # noqa: BLE001
                self.ctx.fail(exc)
        self.ctx.check()

    def finish(self):
        """End of fit: surface pending errors, then check the ranks' parameters are identical."""
        self.ctx.check()
        if not self.ctx.params_digest_agree(self.model.params):
            raise DistributedError("the ranks' parameters differ after training (non-deterministic "
                                   "reduction in the MPI library?)")


class _GlobalReg:
    """kanarray.regularize's regulariser on the global batch, as a tape for model.backward.

    The edge magnitudes m[i, o] = (1/N) sum_b |phi[b, i, o]| are means over the rows of ALL
    ranks: each rank sums |phi| over its rows, one Allreduce (all layers in one buffer) gives
    the global sums, and every rank computes the same value and dreg/dm from them. Each rank
    then back-propagates dm through its own rows with weight 1/N, and the gradient Allreduce
    adds these pieces up. The coefficient terms depend on the parameters alone: identical on
    every rank, so rank 0 alone adds their gradient (the reduction would count them size times).
    `scale` is the normaliser the summed gradient is divided by after the reduction.
    """

    def __init__(self, model, acts, reg, ctx, n_rows_global, scale, need_grad=True):
        from . import regularize as R

        xp = model.backend.xp
        self.reg, self.layers, self.scale, self.is_root = reg, model.layers, scale, ctx.is_root
        self._acts = [None] * model.depth
        self._dm = [None] * model.depth
        self._dcoef = [None] * model.depth
        self._weight = 0.0
        total = 0.0
        if reg.uses_activations:
            pieces = []
            for l, layer in enumerate(model.layers):
                self._acts[l] = R._LayerActivations(layer, acts[l], with_derivs=need_grad)
                pieces.append(abs(self._acts[l].phi).sum(axis=1).ravel())  # (I*O,) local sums
            local = xp.concatenate(pieces) if pieces else xp.zeros(0)
            sums = ctx.allreduce_sum(model.backend.to_numpy(local).astype(np.float64))
            offset = 0
            for l, layer in enumerate(model.layers):
                size = layer.in_dim * layer.out_dim
                m = xp.asarray(sums[offset:offset + size].reshape(layer.in_dim, layer.out_dim)
                               / n_rows_global, dtype=layer.dtype)
                offset += size
                value, self._dm[l] = R.magnitude_terms(xp, m, reg)
                total = total + float(value)
            rows = int(acts[0].shape[0])
            # add_backward divides by the local rows: rescale to 1 / (global rows)
            self._weight = rows / n_rows_global if rows else 0.0
        if reg.lamb_coef != 0 or reg.lamb_coefdiff != 0:
            for l, layer in enumerate(model.layers):
                value, self._dcoef[l] = R.coef_terms(xp, layer.params["coef"], reg)
                total = total + float(value)
        self.value = float(total)

    def backward_layer(self, l, dx):
        lamb = self.reg.lamb * self.scale
        if self._acts[l] is not None:
            if self._weight:
                self._acts[l].add_backward(lamb * self._weight * self._dm[l], dx)
            self._acts[l] = None
        if self._dcoef[l] is not None:
            if self.is_root:
                self.layers[l].grads["coef"] += lamb * self._dcoef[l]
            self._dcoef[l] = None
        return dx


# ---------------------------------------------------------------------------- command line
def _parse_width(text):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--width must be comma-separated integers such as 2,5,1, got {text!r}") from None


def read_csv(path, n_out, test_frac, seed):
    """Full dataset from a CSV (header line optional): last n_out columns are labels; a random
    test_frac of the rows (seeded, the same on every rank) is the test set."""
    with open(path) as f:
        first = f.readline()
    try:
        [float(v) for v in first.replace(",", " ").split()]
        skip = 0
    except ValueError:
        skip = 1
    table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    if table.shape[1] <= n_out:
        raise ValueError(f"{path}: {table.shape[1]} columns, need more than --n-out={n_out}")
    order = np.random.default_rng(seed).permutation(table.shape[0])
    n_test = max(1, int(round(test_frac * table.shape[0])))
    test, train = table[order[:n_test]], table[order[n_test:]]
    return {"train_input": train[:, :-n_out], "train_label": train[:, -n_out:],
            "test_input": test[:, :-n_out], "test_label": test[:, -n_out:]}


def build_parser(parser=None):
    import argparse

    parser = parser or argparse.ArgumentParser(
        prog="python -m kanarray.distributed",
        description="Train a KAN on a CSV across MPI ranks: mpiexec -n 4 python -m kanarray.distributed data.csv ...")
    parser.add_argument("csv", help="CSV file; the last --n-out columns are labels")
    parser.add_argument("--width", default=None, help="layer widths, e.g. 2,5,1 (default: inputs,5,n_out)")
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--opt", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch", type=int, default=-1, help="global rows per step (-1: all)")
    parser.add_argument("--n-out", type=int, default=1)
    parser.add_argument("--test-frac", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--log", type=int, default=10)
    parser.add_argument("--out", default="model.npz", help="checkpoint, rewritten after every step")
    return parser


def main(argv=None, args=None):
    """Entry point of `python -m kanarray.distributed` (works with 1 rank too); returns the exit code."""
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    if args is None:
        args = build_parser().parse_args(argv)
    from .model import KAN

    def prepare():
        full = read_csv(args.csv, args.n_out, args.test_frac, args.seed)
        width = (_parse_width(args.width) if args.width
                 else [full["train_input"].shape[1], 5, args.n_out])
        if args.device == "cuda":
            select_gpu(comm)
        model = KAN(width=width, grid=args.grid, k=args.k, seed=args.seed, dtype=args.dtype,
                    device=args.device)
        return full, shard(full, comm), model

    try:
        # a missing file or bad argument on any rank stops every rank (no rank left waiting)
        full, data, model = Context(comm).run(prepare)
        if comm.Get_rank() == 0:
            print(f"kanarray: {comm.Get_size()} rank(s), {full['train_input'].shape[0]} training "
                  f"rows, {model!r}", flush=True)
        results = model.fit(data, opt=args.opt, steps=args.steps, lr=args.lr, batch=args.batch,
                            seed=args.seed, log=args.log, comm=comm, checkpoint=args.out)
    except Exception as exc:
        if getattr(exc, "collective", False):  # every rank has this error: all exit cleanly
            if comm.Get_rank() == 0:
                print(f"kanarray: error: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"kanarray: rank {comm.Get_rank()}: error: {exc}", file=sys.stderr, flush=True)
        comm.Abort(1)  # an error on this rank alone: the others cannot be told, end the job
    if comm.Get_rank() == 0:
        final = results["test_loss"][-1] if results["test_loss"] else float("nan")
        print(f"kanarray: {len(results['train_loss'])} steps in {results['seconds']:.2f} s, "
              f"test rmse {final:.3e}, saved {args.out}"
              + (f" (stopped: {results['stopped']})" if results["stopped"] else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
