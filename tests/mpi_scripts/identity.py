"""Under `mpiexec -n N python identity.py OUTDIR THREADS`: every run of common.IDENTITY_RUNS on
N ranks, each rank with THREADS kernel threads. Rank 0 writes OUTDIR/<run>.npz (parameters,
knots and the history); tests/test_mpi.py compares them bit for bit with one process."""
import os
import sys

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import IDENTITY_RUNS, identity_run  # noqa: E402


def state(model, res):
    """What must be the same bits: parameters, knots, and every number of the history."""
    arrays = {"params": np.asarray(model.params)}
    arrays.update({f"knots_{l}": layer.knots for l, layer in enumerate(model.layers)})
    for key in ("train_loss", "test_loss", "reg", "train_accuracy", "test_accuracy"):
        if key in res:
            arrays[key] = np.asarray(res[key], dtype=np.float64)
    return arrays


if __name__ == "__main__":
    comm = MPI.COMM_WORLD
    out, threads = sys.argv[1], int(sys.argv[2])
    for name in IDENTITY_RUNS:
        model, res = identity_run(name, comm, threads)
        if comm.Get_rank() == 0:
            np.savez(os.path.join(out, f"{name}.npz"), **state(model, res))
