"""Collective operations of one data-parallel training run over MPI (mpi4py), with errors that
reach every rank.

Every collective carries an error flag. A rank that fails (invalid data in its shard, an
exception in a loss evaluation, a callback or a checkpoint write) records the error with
`Context.fail`; the next collective raises it on EVERY rank, with the same type and message
("rank r of n: ..."), instead of leaving the others waiting forever.

With CuPy buffers, MPI reads device memory directly when the MPI library is CUDA-aware and the
user says so (cuda_aware=True, or KANARRAY_MPI_CUDA_AWARE=1); otherwise they are staged through
host memory.
"""
import os
import time
import zlib

import numpy as np

from . import exact
from ..core.arrays import is_cupy_array

ENV_CUDA_AWARE = "KANARRAY_MPI_CUDA_AWARE"
# Exception types re-raised as themselves on every rank; anything else becomes DistributedError.
_SAME_TYPE = {cls.__name__: cls for cls in (ValueError, TypeError, FloatingPointError,
                                            ZeroDivisionError, OverflowError, MemoryError,
                                            OSError, FileNotFoundError, PermissionError, KeyError,
                                            IndexError, NotImplementedError)}


class DistributedError(RuntimeError):
    """An error raised on one rank, re-raised on every rank."""


class CollectiveError(Exception):
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
        error = type(cls.__name__, (cls, CollectiveError), {"__module__": cls.__module__})(text)
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
    def _timed_allreduce(self, buf, op=None):
        """In-place SUM (or op) over ranks of a 1-D buffer whose last slot is the error flag."""
        op = self.MPI.SUM if op is None else op
        if self._pending is not None:
            buf[-1] = 1
        start = time.perf_counter()
        if self._direct(buf):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=op)
        else:
            host = self._to_host(buf)
            self.comm.Allreduce(self.MPI.IN_PLACE, host, op=op)
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

    def exact_sum(self, partials, n_blocks):
        """The exact sum (kanarray.training.exact) of every rank's block partials (blocks_r, P)
        -> (P,) float64, the same bits for any number of ranks: one Allreduce(MAX) of the
        columns' exponents, one Allreduce(SUM) of their int64 fixed-point sums."""
        partials = np.asarray(partials, dtype=np.float64)
        e, nonfinite = exact.exponents(partials)
        buf = np.concatenate([e, [nonfinite, 0]]).astype(np.int64)
        self._timed_allreduce(buf, self.MPI.MAX)
        e, nonfinite = buf[:-2], buf[-2]
        ints = np.zeros(e.size, np.int64) if nonfinite else exact.to_fixed(partials, e, n_blocks)
        buf = np.append(ints, 0)  # the second Allreduce also when NaN: every rank meets it
        self._timed_allreduce(buf)
        total = exact.from_fixed(buf[:-1], e, n_blocks)
        return np.full_like(total, np.nan) if nonfinite else total

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
