"""Data and settings shared by tests/test_mpi.py (single process) and the MPI scenarios."""
import numpy as np

from kanarray import create_dataset

MODEL = dict(width=[2, 3, 1], grid=5, k=3, seed=0)
# Sums over rows are exact sums of blocks of BLOCK rows: 201 training rows make 9 blocks and
# 101 test rows 5, so 1 to 4 ranks each hold whole blocks and give the same bits.
BLOCK = 25
LBFGS = dict(opt="lbfgs", steps=6, lbfgs_iters=5, update_grid=True, grid_update_num=3,
             stop_grid_update_step=6, block_rows=BLOCK)
ADAM = dict(opt="adam", steps=30, batch=50, lr=1e-2, seed=7, update_grid=True, grid_update_num=3,
            stop_grid_update_step=30, block_rows=BLOCK)

# regularisation on global edge magnitudes (L1 + entropy) and the coefficient terms
ADAM_REG = dict(ADAM, steps=15, lamb=1e-2, lamb_coef=1e-3, lamb_coefdiff=1e-3)

# batches of 2 global rows: at some steps one rank owns none of them (empty local batch)
ADAM_TINY = dict(ADAM, steps=12, batch=2, grid_update_num=6, stop_grid_update_step=12)


def make_dataset():
    return create_dataset(lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2, n_var=2,
                          train_num=201, test_num=101, seed=1)


# softmax cross-entropy on three classes (the "ce" loss over ranks), with regularisation
CE_MODEL = dict(MODEL, width=[2, 3, 3])
ADAM_CE = dict(ADAM, steps=12, loss="ce", lamb=1e-3)


# 20 L-BFGS steps with grid updates and every regulariser term: the runs that 1, 2, 3 and 4
# ranks must end with the same bits of (float64 and float32, mean squared error and cross-entropy)
IDENTITY = dict(opt="lbfgs", steps=20, lbfgs_iters=5, update_grid=True, grid_update_num=4,
                stop_grid_update_step=20, lamb=1e-3, lamb_coef=1e-3, lamb_coefdiff=1e-3,
                block_rows=BLOCK)
IDENTITY_RUNS = {"mse64": (MODEL, "mse"), "mse32": (dict(MODEL, dtype="float32"), "mse"),
                 "ce64": (CE_MODEL, "ce"), "ce32": (dict(CE_MODEL, dtype="float32"), "ce")}


def identity_run(name, comm=None, threads=None):
    """One of IDENTITY_RUNS, on this rank's shard (comm) or all the data -> (model, history)."""
    from kanarray import KAN
    from kanarray.training.distributed import shard

    model_args, loss = IDENTITY_RUNS[name]
    data = make_classes() if loss == "ce" else make_dataset()
    if comm is not None:
        data = shard(data, comm, BLOCK)
    model = KAN(**model_args)
    res = model.fit(data, comm=comm, loss=loss, threads=threads, **IDENTITY)
    return model, res


def prune_and_symbolify(comm=None):
    """Fit, prune, refit, fix every edge and fit the constants, the decisions on the sample of
    every rank's rows that decision_rows takes -> (model, its formula as text, edge fits)."""
    from kanarray import KAN
    from kanarray.training.distributed import decision_rows, shard

    data = make_dataset() if comm is None else shard(make_dataset(), comm, BLOCK)
    model = KAN(**dict(MODEL, width=[2, 4, 1]))
    model.fit(data, comm=comm, lamb=1e-3, **LBFGS)
    x_all, y_all = decision_rows(comm, [data["train_input"], data["train_label"]])
    model = model.prune(x=x_all)
    model.fit(data, comm=comm, **LBFGS)
    fits = model.auto_symbolic(x=x_all, verbose=0, r2_threshold=0.0)  # every edge a function
    model.fit_constants(x_all, y_all)
    return model, str(model.symbolic_formula(allow_splines=True)[0]), fits


def make_classes():
    """Three classes by the sign pattern of x1 and x2 (labels 0, 1, 2)."""
    data = make_dataset()
    for part in ("train", "test"):
        x = data[f"{part}_input"]
        data[f"{part}_label"] = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.3).astype(int)
    return data
