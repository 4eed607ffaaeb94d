"""Run under `mpiexec -n 2 python mpi_scenarios.py OUTDIR`: every scenario of tests/test_mpi.py.

Each rank writes OUTDIR/<scenario>_rank<r>.npz (parameters and knots) and OUTDIR/outcome_rank<r>.json
(per scenario: "ok" or the error type and message, and the fit's `stopped` reason). The
scenarios share one launch so the processes import and load the compiled kernels once.
"""
import json
import os
import sys

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ADAM, ADAM_CE, ADAM_REG, ADAM_TINY, BLOCK, CE_MODEL, LBFGS, MODEL,  # noqa: E402
                    make_classes, make_dataset, prune_and_symbolify)

from kanarray import KAN, load  # noqa: E402
from kanarray.training.distributed import Context, shard  # noqa: E402

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
out = sys.argv[1]
outcome = {}


def save_state(name, model):
    arrays = {"params": model.params}
    arrays.update({f"knots_{l}": layer.knots for l, layer in enumerate(model.layers)})
    np.savez(os.path.join(out, f"{name}_rank{rank}.npz"), **arrays)


def scenario(name):
    def wrap(fn):
        try:
            result = fn()
            outcome[name] = {"status": "ok", **(result or {})}
        except Exception as exc:  # recorded for the test to compare across ranks
            outcome[name] = {"status": "error", "type": type(exc).__name__, "message": str(exc)}
        return fn
    return wrap


@scenario("lbfgs")
def _():
    model = KAN(**MODEL)
    res = model.fit(shard(make_dataset(), comm, BLOCK), comm=comm, **LBFGS)
    save_state("lbfgs", model)
    return {"train_loss": res["train_loss"], "test_loss": res["test_loss"]}


@scenario("adam")
def _():
    model = KAN(**MODEL)
    res = model.fit(shard(make_dataset(), comm, BLOCK), comm=comm, **ADAM)
    save_state("adam", model)
    return {"train_loss": res["train_loss"], "test_loss": res["test_loss"]}


@scenario("adam_reg")
def _():
    model = KAN(**MODEL)
    res = model.fit(shard(make_dataset(), comm, BLOCK), comm=comm, **ADAM_REG)
    save_state("adam_reg", model)
    return {"train_loss": res["train_loss"], "test_loss": res["test_loss"], "reg": res["reg"]}


@scenario("adam_tiny")
def _():
    model = KAN(**MODEL)
    res = model.fit(shard(make_dataset(), comm, BLOCK), comm=comm, **ADAM_TINY)
    save_state("adam_tiny", model)
    return {"train_loss": res["train_loss"], "test_loss": res["test_loss"]}


@scenario("adam_ce")
def _():
    model = KAN(**CE_MODEL)
    res = model.fit(shard(make_classes(), comm, BLOCK), comm=comm, **ADAM_CE)
    save_state("adam_ce", model)
    return {"train_loss": res["train_loss"], "test_loss": res["test_loss"],
            "test_accuracy": res["test_accuracy"], "reg": res["reg"]}


@scenario("mismatched_arguments")
def _():
    KAN(**MODEL).fit(shard(make_dataset(), comm, BLOCK), comm=comm, **dict(ADAM, steps=3 + rank))


@scenario("staging")
def _():
    # the host-staging path of GPU ranks, exercised with NumPy buffers
    values = np.arange(7, dtype=np.float64) * (rank + 1) + 0.25
    direct = Context(comm, np, staged=False)
    staged = Context(comm, np, staged=True)
    a = direct.allreduce_sum(values)
    b = staged.allreduce_sum(values)
    knots = np.full(5, float(rank))
    staged.bcast_(knots)
    return {"equal": bool(np.array_equal(a, b)), "loss": float(a[0]), "bcast": knots.tolist()}


@scenario("bad_data")
def _():
    data = shard(make_dataset(), comm, BLOCK)
    if rank == 1:
        data["train_input"] = data["train_input"].copy()
        data["train_input"][3, 0] = np.nan
    KAN(**MODEL).fit(data, comm=comm, **LBFGS)


def failing_loss(at_eval, how, blocks):
    """Mean squared error that, on rank 1 from evaluation `at_eval` on, gives NaN or raises;
    an evaluation calls it once per block of its rows (`blocks` of them)."""
    calls = [0]

    def loss_fn(pred, y):
        calls[0] += 1
        residual = pred - y
        loss, g = float((residual * residual).mean()), residual * (2.0 / residual.size)
        if rank == 1 and calls[0] > (at_eval - 1) * blocks:
            if how == "raise":
                raise RuntimeError("simulated failure in a loss evaluation")
            loss = float("nan")
        return loss, g
    return loss_fn


def checkpointed(name, how):
    path = os.path.join(out, f"{name}.npz")
    model = KAN(**MODEL)
    saved = []
    data = shard(make_dataset(), comm, BLOCK)
    blocks = -(-len(data["train_input"]) // BLOCK)
    try:
        res = model.fit(data, comm=comm, opt="adam", steps=8, batch=-1, update_grid=False,
                        loss_fn=failing_loss(4, how, blocks), checkpoint=path, block_rows=BLOCK,
                        callback=lambda step, m, r: saved.append(m.params.copy()))
    finally:
        comm.Barrier()  # (test only) let rank 0 finish writing before anyone reads
        save_state(name, model)
        if saved:
            ckpt = load(path)
            np.save(os.path.join(out, f"{name}_ckpt_diff_rank{rank}.npy"),
                    np.array([np.abs(ckpt.params - saved[-1]).max(), len(saved)]))
    return {"stopped": res["stopped"], "steps_done": len(res["train_loss"])}


@scenario("nan_loss")
def _():
    return checkpointed("nan_loss", "nan")


@scenario("raise_in_loss")
def _():
    return checkpointed("raise_in_loss", "raise")


@scenario("raise_in_update_grid")
def _():
    """Rank 1 fails inside a grid update, before the gather of the samples: every rank raises."""
    model = KAN(**MODEL)
    if rank == 1:
        forward_all = model.forward_all

        def failing(x, params=None, workspace=None):
            if params is None and workspace is None:  # the grid update's own forward pass
                raise RuntimeError("simulated failure in a grid update")
            return forward_all(x, params, workspace)
        model.forward_all = failing
    model.fit(shard(make_dataset(), comm, BLOCK), comm=comm, **LBFGS)


@scenario("decision_rows")
def _():
    """Every rank gets the same sample of the global rows, the one a single process takes."""
    from kanarray.training.distributed import decision_rows

    full = make_dataset()["train_input"]
    local = shard({"train_input": full, "train_label": full[:, :1], "test_input": full[:60],
                   "test_label": full[:60, :1]}, comm, BLOCK)["train_input"]
    got = decision_rows(comm, [local], max_rows=40)[0]
    want = decision_rows(None, [full], max_rows=40)[0]
    return {"same_as_one_process": got.tobytes() == want.tobytes(), "rows": len(got)}


@scenario("prune_symbolic")
def _():
    model, formula, fits = prune_and_symbolify(comm)
    save_state("prune_symbolic", model)
    return {"formula": formula, "fits": {str(edge): name for edge, (name, _) in fits.items()}}


@scenario("set_scaling")
def _():
    """Scaling statistics over every rank's rows: the maps of one process holding all of them."""
    data = shard(make_dataset(), comm, BLOCK)
    y = 100 * np.sin(7 * data["train_label"]) + data["train_label"]  # a float sum would differ
    model = KAN(**MODEL).set_scaling(5 * data["train_input"] + 3, y, comm=comm)
    return {"input": [a.tolist() for a in model.input_scaling],
            "output": [a.tolist() for a in model.output_scaling]}


@scenario("resume")
def _():
    """A run interrupted on every rank at step 10 and resumed from its checkpoint ends with the
    bits of the run that was never interrupted."""
    data = shard(make_dataset(), comm, BLOCK)
    whole = KAN(**MODEL)
    whole.fit(data, comm=comm, checkpoint=os.path.join(out, "whole.npz"), **ADAM)

    def interrupt(step, model, results):
        if step == 10:
            raise KeyboardInterrupt

    path = os.path.join(out, "resumed.npz")
    try:
        KAN(**MODEL).fit(data, comm=comm, checkpoint=path, resume=True, callback=interrupt, **ADAM)
    except KeyboardInterrupt:
        pass
    comm.Barrier()  # (test only) rank 0's last checkpoint is on disk before anyone reads it
    resumed = KAN(**MODEL)
    res = resumed.fit(data, comm=comm, checkpoint=path, resume=True, **ADAM)
    return {"same_bits": resumed.params.tobytes() == whole.params.tobytes(),
            "steps": len(res["train_loss"])}


with open(os.path.join(out, f"outcome_rank{rank}.json"), "w") as f:
    json.dump(outcome, f, indent=1)
