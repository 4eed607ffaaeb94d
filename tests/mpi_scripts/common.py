"""Data and settings shared by tests/test_mpi.py (single process) and the MPI scenarios."""
import numpy as np

from kanarray import create_dataset

MODEL = dict(width=[2, 3, 1], grid=5, k=3, seed=0)
# Short runs: L-BFGS amplifies rounding differences (the order in which the ranks' partial
# gradients are summed differs from one process's order), so the 1-vs-2-rank agreement is
# checked over a few iterations, where it is ~1e-13; grid updates at steps 0, 2 and 4.
LBFGS = dict(opt="lbfgs", steps=6, lbfgs_iters=5, update_grid=True, grid_update_num=3,
             stop_grid_update_step=6)
ADAM = dict(opt="adam", steps=30, batch=50, lr=1e-2, seed=7, update_grid=True, grid_update_num=3,
            stop_grid_update_step=30)

# regularisation on global edge magnitudes (L1 + entropy) and the coefficient terms
ADAM_REG = dict(ADAM, steps=15, lamb=1e-2, lamb_coef=1e-3, lamb_coefdiff=1e-3)

# batches of 2 global rows: at some steps one rank owns none of them (empty local batch)
ADAM_TINY = dict(ADAM, steps=12, batch=2, grid_update_num=6, stop_grid_update_step=12)


def make_dataset():
    return create_dataset(lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2, n_var=2,
                          train_num=201, test_num=51, seed=1)


# softmax cross-entropy on three classes (the "ce" loss over ranks), with regularisation
CE_MODEL = dict(MODEL, width=[2, 3, 3])
ADAM_CE = dict(ADAM, steps=12, loss="ce", lamb=1e-3)


def make_classes():
    """Three classes by the sign pattern of x1 and x2 (labels 0, 1, 2)."""
    data = make_dataset()
    for part in ("train", "test"):
        x = data[f"{part}_input"]
        data[f"{part}_label"] = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.3).astype(int)
    return data
