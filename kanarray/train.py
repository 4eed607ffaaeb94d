"""Training loop: L-BFGS or Adam over the model's flat parameter vector.

The loop follows the reference implementation's conventions: `steps` outer steps, each L-BFGS
step running up to `lbfgs_iters` iterations with a strong-Wolfe line search (PyTorch's LBFGS
default, which pykan's step counts assume); grid updates every
stop_grid_update_step // grid_update_num steps until stop_grid_update_step; RMSE logged per
step. Results come back as a dict of per-step lists.

A step that leaves a non-finite loss or parameters stops training: the last good parameters are
restored, a warning is issued and results["stopped"] says why. Nothing is lost.
"""
import time
import warnings

import numpy as np

from .checks import check_int
from . import regularize
from .optim import adam_init, adam_update, lbfgs_init, lbfgs_step
from .regularize import Regularization

# Like pykan: never stop an L-BFGS step on tolerances; a float64 MSE near 1e-12 still moves by
# far less than any fixed absolute threshold while it keeps improving.
LBFGS_TOLERANCE = 1e-32
DATASET_KEYS = ("train_input", "train_label", "test_input", "test_label")


def _device_dataset(model, dataset):
    if not isinstance(dataset, dict):
        raise TypeError(f"dataset must be a dict with keys {DATASET_KEYS}, got {type(dataset).__name__}")
    missing = [key for key in DATASET_KEYS if key not in dataset]
    if missing:
        raise ValueError(f"dataset is missing {missing}; expected keys {DATASET_KEYS}")
    x_train = model._input(dataset["train_input"], "dataset['train_input']")
    y_train = model._labels(dataset["train_label"], x_train.shape[0], "dataset['train_label']")
    x_test = model._input(dataset["test_input"], "dataset['test_input']")
    y_test = model._labels(dataset["test_label"], x_test.shape[0], "dataset['test_label']")
    return x_train, y_train, x_test, y_test


def _rmse(model, x, y):
    residual = model.forward_all(x)[-1] - y
    return float(np.sqrt(float((residual * residual).mean())))


def _params_finite(model):
    return bool(model.backend.xp.isfinite(model.params).all())


def fit(model, dataset, opt="lbfgs", steps=100, lr=None, batch=-1, update_grid=True,
        grid_update_num=10, start_grid_update_step=-1, stop_grid_update_step=50, loss_fn=None,
        seed=0, log=0, callback=None, lbfgs_iters=20, comm=None, cuda_aware=None, checkpoint=None,
        lamb=0.0, lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.0, lamb_coefdiff=0.0):
    """Train `model` in place on `dataset`; return the history.

    dataset     dict of train_input (N, width[0]), train_label (N, width[-1]) and the same for test
    opt         "lbfgs" or "adam"
    steps       outer steps; an L-BFGS step runs up to lbfgs_iters iterations
    lr          L-BFGS step scale (default 1.0) or Adam learning rate (default 1e-2)
    batch       rows per step drawn at random without replacement; -1 = the whole training set
    update_grid, grid_update_num, start_grid_update_step, stop_grid_update_step
                grid updates from the step's batch every stop_grid_update_step // grid_update_num
                steps while start_grid_update_step <= step < stop_grid_update_step
    loss_fn     loss_fn(pred, label) -> (loss, dloss/dpred); default mean squared error
    seed        seed of the batch draws
    log         print a progress line every `log` steps (0 = silent)
    callback    callback(step, model, results) after every step
    comm        an mpi4py communicator: data-parallel training, `dataset` is this rank's shard
                (kanarray.distributed.shard); loss, gradient, batches, grid updates and logged
                RMSEs are global and every rank ends with identical parameters
    cuda_aware  with comm and device="cuda": hand CuPy buffers to MPI directly (default: the
                KANARRAY_MPI_CUDA_AWARE env var), else stage them through host memory
    checkpoint  path rewritten atomically (kanarray.io.save) after every good step; with comm,
                by rank 0 only
    lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff
                sparsity regularisation: the objective is loss + lamb * reg, with reg the L1 and
                entropy of the edge magnitudes and the coefficient L1 and smoothness terms
                weighted by the other four (kanarray.regularize; pykan's names and defaults)

    -> {"train_loss", "test_loss": RMSE per step (train on the step's batch, test on the whole
       test set), "n_evals": loss evaluations per step, "seconds": wall time,
       "stopped": None or the reason training stopped early,
       "reg": the regulariser's value (not times lamb) per step on the step's batch}
    With lamb > 0, train_loss is the RMSE of the data term alone.
    """
    if opt not in ("lbfgs", "adam"):
        raise ValueError(f"opt must be 'lbfgs' or 'adam', got {opt!r}")
    steps = check_int(steps, "steps", 0)
    lbfgs_iters = check_int(lbfgs_iters, "lbfgs_iters", 1)
    if lr is None:
        lr = 1.0 if opt == "lbfgs" else 1e-2
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    dist = None
    if comm is None:
        x_train, y_train, x_test, y_test = _device_dataset(model, dataset)
        n_train = x_train.shape[0]
    else:  # every rank validates its shard; an error on any rank is raised on all of them
        from .distributed import Trainer

        dist = Trainer(comm, model, cuda_aware)
        x_train, y_train, x_test, y_test = dist.setup(
            _device_dataset, dataset, (opt, steps, lr, batch, update_grid, grid_update_num,
                                       start_grid_update_step, stop_grid_update_step,
                                       loss_fn is None, seed, lbfgs_iters, checkpoint is None,
                                       lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff))
        n_train = dist.n_global  # global rows: batches are drawn over all ranks' rows
    if batch != -1:
        batch = check_int(batch, "batch", 1)
        if batch > n_train:
            raise ValueError(f"batch must be -1 or at most the {n_train} training rows, got {batch}")
    grid_update_freq = max(1, stop_grid_update_step // max(grid_update_num, 1))
    rng = np.random.default_rng(seed)
    xp = model.backend.xp

    reg = Regularization(lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)
    if not reg.active:
        reg = None
    model.cache_data = x_train  # what model.attribute() / prune() score on by default
    results = {"train_loss": [], "test_loss": [], "n_evals": [], "seconds": 0.0, "stopped": None,
               "reg": []}
    last_good = model.params.copy()
    adam_state = adam_init(model.params)
    lbfgs_state = lbfgs_init()
    start = time.perf_counter()

    for step in range(steps):
        if batch == -1:
            xb, yb = x_train, y_train
        else:
            rows = np.sort(rng.choice(n_train, batch, replace=False))
            if dist is not None:
                rows = dist.local_rows(rows)  # the rows of the global batch this rank owns
            rows = xp.asarray(rows)
            xb, yb = x_train[rows], y_train[rows]

        if (update_grid and step % grid_update_freq == 0
                and start_grid_update_step <= step < stop_grid_update_step):
            model.update_grid(xb, gather=None if dist is None else dist.ctx.gather_rows)
            lbfgs_state = lbfgs_init()  # the parameters moved: old curvature pairs no longer apply

        def objective(params):
            if dist is not None:
                return dist.objective(params, xb, yb, loss_fn, n_train if batch == -1 else batch,
                                      reg)  # with comm the regulariser is on global magnitudes
            model.params[...] = params
            loss, _ = model.device_loss_and_grad(xb, yb, loss_fn, reg=reg)
            return loss, model._grad.copy()

        if opt == "lbfgs":
            point = model.params.copy()
            loss, grad = objective(point)
            n_evals = 1
            for _ in range(lbfgs_iters):
                point, loss, grad, lbfgs_state, info = lbfgs_step(
                    objective, point, loss, grad, lbfgs_state, lr=lr,
                    tolerance_grad=LBFGS_TOLERANCE, tolerance_change=LBFGS_TOLERANCE)
                n_evals += info["n_evals"]
                if info["converged"] or info["failed"]:
                    break
            model.params[...] = point
        else:
            loss, grad = objective(model.params.copy())
            n_evals = 1
            delta, adam_state = adam_update(grad, adam_state, lr=lr)
            model.params[...] = model.params + delta

        if not (np.isfinite(loss) and _params_finite(model)):
            model.params[...] = last_good
            results["stopped"] = (f"step {step}: the loss or the parameters became NaN/Inf; "
                                  "restored the parameters of the last good step")
            if dist is None or dist.is_root:
                warnings.warn(results["stopped"], RuntimeWarning, stacklevel=3)
            break
        last_good[...] = model.params

        if reg is None:
            reg_value = 0.0
        elif dist is None:
            reg_value = regularize.value(model, xb, reg)
        else:
            reg_value = dist.reg_value(model, xb, reg, n_train if batch == -1 else batch)
        results["reg"].append(reg_value)
        results["train_loss"].append(float(np.sqrt(max(loss - (0.0 if reg is None else reg.lamb)
                                                       * reg_value, 0.0))))
        results["test_loss"].append(_rmse(model, x_test, y_test) if dist is None
                                    else dist.rmse(model, x_test, y_test))
        results["n_evals"].append(n_evals)
        if log and step % log == 0 and (dist is None or dist.is_root):
            print(f"step {step:5d} | train rmse {results['train_loss'][-1]:.3e} "
                  f"| test rmse {results['test_loss'][-1]:.3e}", flush=True)
        if checkpoint is not None:
            if dist is None:
                from .io import save

                save(model, checkpoint)
            else:
                dist.save_checkpoint(checkpoint)
        if callback is not None:
            if dist is None:
                callback(step, model, results)
            else:
                dist.ctx.run(callback, step, model, results)

    if dist is not None:
        dist.finish()  # pending errors of any rank, and a check that all ranks agree
        results["comm"] = dict(dist.ctx.stats)
    results["seconds"] = time.perf_counter() - start
    return results
