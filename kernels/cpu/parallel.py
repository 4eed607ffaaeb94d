"""Threads of the CPU kernels: the threading layer, the thread cap, and the one helper that
gives a kernel its serial form, its parallel form and the launch that picks between them.

Serial and parallel forms. Each public kernel is a plain Python function that picks one of two
forms by the size of the work:
    <kernel>_serial     one thread, no threading layer involved
    <kernel>_parallel   the same per-task code under prange
Both forms run the same compiled task function on the same pieces of work, so they give
bit-identical results, for any thread count. The parallel form is compiled only when a launch
first needs it (small models never pay for it).
"""
import contextlib
import numbers
import os

import numba

# A launch goes parallel only from this much work on, per kind of kernel: B*I*(k+1)^2 for
# span_basis and the tapes ("basis"), (b, i, o) count times (k+2) for the layer sweeps. On the
# 2-core Xeon VM (quiet, workqueue, 2 threads) a launch costs 130-160 us even when empty, and
# more after serial work has let the second vCPU sleep: parallel / serial time of one launch,
# G=10, float64, serial and parallel calls alternating (as in an evaluation): basis 1.2-1.9 up to
# 1.5e6, 0.6-0.8 at 5e6; forward 1.0-1.8 up to 5e7, 0.5 at 3.4e8 (B=4096, I=O=128); backward
# 1.0-1.5 up to 1.5e7, 0.55-0.85 at 5e7, 0.5 at 3.4e8. Back to back (the second thread awake)
# they win from about 1e6 and 1e7. In whole evaluations, where parallel launches follow one
# another, [8, 32, 32, 1] at 10,000 rows took 35 ms (median of 6 alternating rounds) with the
# layer sweeps parallel from 1e7 against 40 ms from 3e7, and [4, 9, 1] the same 3.7 ms.
PARALLEL_WORK = {"basis": 4 * 10 ** 6, "forward": 10 ** 7, "backward": 10 ** 7}


def _prefer_workqueue():
    """Use Numba's workqueue threading layer unless the user chose one (NUMBA_THREADING_LAYER).

    Measured on the 2-core machine with other CPU-bound processes running (load 6-7): with GNU
    OpenMP (Numba's default here; it spin-waits at the join) every parallel launch took >= 24 ms,
    even for 40 us of work; with workqueue the parallel forms cost about what the serial ones do
    (0.9-1.2x) at every size. tbb (pip package) was not available to compare. workqueue's
    limitation: no parallel launches from two Python threads at once (kanarray does none).
    The layer is chosen once per process, at the first parallel launch of any Numba code.
    """
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"


_prefer_workqueue()


def max_threads():
    """Number of threads the kernels may use now in the calling thread (1 = always serial)."""
    return numba.get_num_threads()


@contextlib.contextmanager
def thread_limit(n):
    """Cap the kernels' threads in the calling thread to n while the block runs; None = no cap.

    n larger than the threads Numba started (NUMBA_NUM_THREADS) is the same as no cap. The
    previous setting is restored on exit, also when the block raises.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"thread_limit: n must be None or an integer >= 1, got {n!r}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def go_parallel(kind, work):
    """Whether a launch of this much work of this kind of kernel runs its parallel form."""
    return work >= PARALLEL_WORK[kind] and numba.get_num_threads() > 1


def thread_tasks(n):
    """One task per thread, at most one per item of n items (and at least one task)."""
    return max(1, min(n, numba.get_num_threads()))


def basis_work(B, I, k):
    """The work of span_basis and basis_tape on B samples of I inputs: B*I*(k+1)^2."""
    return B * I * (k + 1) * (k + 1)


def sweep_work(B, coef, k):
    """The work of a layer sweep over B samples: (b, i, o) count times (k+2)."""
    return B * coef.shape[0] * coef.shape[2] * (k + 2)


def two_forms(name, kind, work, body):
    """The public kernel `name` from body(parallel, *args), the one driver of both forms.

    Returns launch(*args), which runs launch.parallel(*args) = body(True, *args) when
    go_parallel(kind, work(*args)), else launch.serial(*args) = body(False, *args). The
    forms are attributes of the launch, so a test can replace either.
    """
    def serial(*args):
        body(False, *args)

    def parallel(*args):
        body(True, *args)

    def launch(*args):
        form = launch.parallel if go_parallel(kind, work(*args)) else launch.serial
        form(*args)

    for function, suffix, doc in ((serial, "_serial", f"{name} on one thread."),
                                  (parallel, "_parallel", f"{name} with its tasks spread over the threads."),
                                  (launch, "", body.__doc__)):
        function.__name__ = function.__qualname__ = name + suffix
        function.__module__ = body.__module__
        function.__doc__ = doc
    launch.serial, launch.parallel = serial, parallel
    return launch
