"""Data-parallel training over MPI: 1 process and 2, 3 or 4 ranks end with the same bits, and
failures on one rank stop them all.

Launches `mpiexec -n 2` (and 3 and 4, oversubscribed) (needs the `mpi` extra: mpi4py and an MPI library such as the `mpich`
wheel); skipped with the reason when either is missing. All scenarios run in one launch
(tests/mpi_scripts/mpi_scenarios.py) so each rank imports and loads the compiled kernels once;
the single-process references run here first, which also fills Numba's cache for the ranks.
Every launch has a timeout: a hang is a failure, not a stuck CI job.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.mpi

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "mpi_scripts")
sys.path.insert(0, SCRIPTS)
from common import (ADAM, ADAM_CE, ADAM_REG, ADAM_TINY, CE_MODEL, IDENTITY_RUNS,  # noqa: E402
                    LBFGS, MODEL, identity_run, make_classes, make_dataset,
                    prune_and_symbolify)
from identity import state  # noqa: E402

TIMEOUT = 120
N_RANKS = 2


def _mpiexec():
    """[mpiexec, flags...] of the MPI beside this Python (the mpich wheel's), else on PATH."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install 'kanarray[mpi]')")
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec found (pip install mpich, or load your cluster's MPI module)")
    command = [exe]
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    if "Open MPI" in version or "OpenRTE" in version:  # 2 ranks on a small CI machine
        command.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-run-as-root")
    return command


def _launch(args, cwd, timeout=TIMEOUT, n_ranks=N_RANKS, threads=1):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = _mpiexec() + ["-n", str(n_ranks), sys.executable] + args
    try:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec did not finish within {timeout} s (a hang?): {command}\n"
                    f"{exc.stdout}\n{exc.stderr}")


@pytest.fixture(scope="module")
def reference():
    """Single-process runs with all the data (also compiles the kernels into Numba's cache)."""
    from kanarray import KAN

    out = {}
    for name, kwargs in (("lbfgs", LBFGS), ("adam", ADAM), ("adam_reg", ADAM_REG),
                         ("adam_tiny", ADAM_TINY)):
        model = KAN(**MODEL)
        res = model.fit(make_dataset(), **kwargs)
        out[name] = (model, res)
    model = KAN(**CE_MODEL)
    out["adam_ce"] = (model, model.fit(make_classes(), **ADAM_CE))
    return out


@pytest.fixture(scope="module")
def ranks(reference, tmp_path_factory):
    """Run every scenario on 2 ranks; -> (outdir, [outcome of rank 0, outcome of rank 1])."""
    out = tmp_path_factory.mktemp("mpi")
    proc = _launch([os.path.join(SCRIPTS, "mpi_scenarios.py"), str(out)], cwd=out)
    assert proc.returncode == 0, f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    outcomes = []
    for r in range(N_RANKS):
        with open(out / f"outcome_rank{r}.json") as f:
            outcomes.append(json.load(f))
    return out, outcomes


def _state(out, name, rank):
    with np.load(out / f"{name}_rank{rank}.npz") as f:
        return {key: f[key] for key in f.files}


@pytest.mark.parametrize("name", ["lbfgs", "adam", "adam_reg", "adam_tiny", "adam_ce"])
def test_two_ranks_end_with_the_bits_of_one_process(ranks, reference, name):
    """Full-batch L-BFGS and mini-batch Adam (same global batches), with grid updates, and Adam
    with regularisation (global edge magnitudes), batches of 2 rows (a rank often owns none)
    and the cross-entropy loss with its accuracies: each rank holds half the data, and ends
    with the parameters, knots and history of one process holding all of it, bit for bit."""
    out, outcomes = ranks
    for r in range(N_RANKS):
        assert outcomes[r][name]["status"] == "ok", outcomes[r][name]
    model, res = reference[name]
    for r in range(N_RANKS):
        got = _state(out, name, r)
        assert got["params"].tobytes() == model.params.tobytes(), f"rank {r}: parameters differ"
        for l, layer in enumerate(model.layers):  # grid updates used the union of the shards
            assert got[f"knots_{l}"].tobytes() == layer.knots.tobytes(), f"rank {r}: knots of layer {l}"
        for key in ("train_loss", "test_loss", "test_accuracy", "reg"):
            if key in outcomes[r][name]:
                assert outcomes[r][name][key] == res[key], f"rank {r}: {key}"


@pytest.fixture(scope="module")
def one_process():
    """The IDENTITY_RUNS in this process, one kernel thread -> {run: state arrays}."""
    return {name: state(*identity_run(name, threads=1)) for name in IDENTITY_RUNS}


def _same_bits(got, want):
    return [key for key in want if got[key].tobytes() != want[key].tobytes()]


def test_one_process_gives_the_same_bits_with_two_threads(one_process, monkeypatch):
    """Every kernel launch in its parallel form (the runs are too small to choose it alone)."""
    from kanarray.kernels.cpu import parallel

    for kind in parallel.PARALLEL_WORK:
        monkeypatch.setitem(parallel.PARALLEL_WORK, kind, 0)
    for name in IDENTITY_RUNS:
        assert _same_bits(state(*identity_run(name, threads=2)), one_process[name]) == [], name


@pytest.mark.parametrize("n_ranks, threads", [(2, 1), (3, 1), (4, 1), (2, 2)])
def test_any_number_of_ranks_ends_with_the_bits_of_one_process(one_process, tmp_path, n_ranks, threads):
    """20 L-BFGS steps with grid updates and every regulariser term, mean squared error and
    cross-entropy, float64 and float32: 2, 3 and 4 ranks (oversubscribed on a small machine),
    with 1 or 2 threads each, end with the parameters, knots and whole history (train and test
    losses, accuracies, regulariser) of one process, bit for bit."""
    proc = _launch([os.path.join(SCRIPTS, "identity.py"), str(tmp_path), str(threads)], tmp_path,
                   n_ranks=n_ranks, threads=threads)
    assert proc.returncode == 0, f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    for name, want in one_process.items():
        with np.load(tmp_path / f"{name}.npz") as f:
            got = {key: f[key] for key in f.files}
        assert _same_bits(got, want) == [], f"{name} on {n_ranks} ranks x {threads} threads"


def test_pruning_and_symbolic_fits_on_two_ranks_give_the_model_and_formula_of_one_process(ranks):
    """prune, auto_symbolic and fit_constants decide on every rank's rows (decision_rows):
    the pruned, symbolic model and its formula are those of one process, bit for bit."""
    model, formula, fits = prune_and_symbolify()
    out, outcomes = ranks
    for r in range(N_RANKS):
        got = outcomes[r]["prune_symbolic"]
        assert got["status"] == "ok", got
        assert got["formula"] == formula
        assert got["fits"] == {str(edge): name for edge, (name, _) in fits.items()}
        assert _state(out, "prune_symbolic", r)["params"].tobytes() == model.params.tobytes()


def test_scaling_statistics_over_two_ranks_are_those_of_one_process(ranks):
    from kanarray import KAN

    data = make_dataset()
    y = 100 * np.sin(7 * data["train_label"]) + data["train_label"]
    model = KAN(**MODEL).set_scaling(5 * data["train_input"] + 3, y)
    for r in range(N_RANKS):
        got = ranks[1][r]["set_scaling"]
        assert got["status"] == "ok", got
        assert got["input"] == [a.tolist() for a in model.input_scaling]
        assert got["output"] == [a.tolist() for a in model.output_scaling]


def test_a_rank_failing_inside_a_grid_update_stops_every_rank(ranks):
    _, outcomes = ranks
    got = [outcomes[r]["raise_in_update_grid"] for r in range(N_RANKS)]
    assert got[0] == got[1], got  # the same error on every rank, and no hang
    assert got[0]["status"] == "error" and got[0]["type"] == "DistributedError"
    assert got[0]["message"] == "rank 1 of 2: simulated failure in a grid update"


def test_a_run_interrupted_and_resumed_ends_with_the_bits_of_one_never_interrupted(ranks):
    _, outcomes = ranks
    for r in range(N_RANKS):
        assert outcomes[r]["resume"] == {"status": "ok", "same_bits": True, "steps": 30}, outcomes[r]


def test_decisions_see_the_same_sample_of_every_ranks_rows_as_one_process(ranks):
    """201 rows, at most 40 of them: every 6th global row, whatever rank holds it."""
    _, outcomes = ranks
    for r in range(N_RANKS):
        assert outcomes[r]["decision_rows"] == {"status": "ok", "same_as_one_process": True,
                                                "rows": 34}, outcomes[r]


def test_host_staging_path(ranks):
    """The host-staged reduction and broadcast (GPU ranks without CUDA-aware MPI), with NumPy."""
    _, outcomes = ranks
    for r in range(N_RANKS):
        got = outcomes[r]["staging"]
        assert got["status"] == "ok" and got["equal"], got
        assert got["loss"] == 0.25 + 0.25
        assert got["bcast"] == [0.0] * 5


def test_bad_data_on_one_rank_stops_every_rank(ranks):
    _, outcomes = ranks
    got = [outcomes[r]["bad_data"] for r in range(N_RANKS)]
    assert got[0] == got[1], got  # same error everywhere
    assert got[0]["status"] == "error" and got[0]["type"] == "ValueError"
    assert "rank 1 of 2" in got[0]["message"] and "NaN" in got[0]["message"]


def test_mismatched_arguments_are_refused_on_every_rank(ranks):
    _, outcomes = ranks
    got = [outcomes[r]["mismatched_arguments"] for r in range(N_RANKS)]
    assert got[0] == got[1], got
    assert got[0]["status"] == "error" and got[0]["type"] == "ValueError"
    assert "differ between ranks" in got[0]["message"]


def test_nan_loss_on_one_rank_stops_every_rank_and_keeps_checkpoint(ranks):
    out, outcomes = ranks
    got = [outcomes[r]["nan_loss"] for r in range(N_RANKS)]
    assert got[0] == got[1], got
    assert got[0]["status"] == "ok" and got[0]["stopped"].startswith("step 3:")
    assert got[0]["steps_done"] == 3
    s0, s1 = _state(out, "nan_loss", 0), _state(out, "nan_loss", 1)
    assert s0["params"].tobytes() == s1["params"].tobytes()
    from kanarray import load

    assert np.array_equal(load(out / "nan_loss.npz").params, s0["params"])  # last good step
    for r in range(N_RANKS):
        diff, n_saved = np.load(out / f"nan_loss_ckpt_diff_rank{r}.npy")
        assert diff == 0.0 and n_saved == 3


def test_exception_on_one_rank_is_raised_on_every_rank(ranks):
    out, outcomes = ranks
    got = [outcomes[r]["raise_in_loss"] for r in range(N_RANKS)]
    assert got[0] == got[1], got
    assert got[0]["status"] == "error" and got[0]["type"] == "DistributedError"
    assert got[0]["message"] == "rank 1 of 2: simulated failure in a loss evaluation"
    for r in range(N_RANKS):  # the checkpoint is the last completed step's
        diff, n_saved = np.load(out / f"raise_in_loss_ckpt_diff_rank{r}.npy")
        assert diff == 0.0 and n_saved == 3


def test_command_line(reference, tmp_path):
    """python -m kanarray fit data.csv ... across 2 ranks saves the model one process saves, bit
    for bit; a missing file fails cleanly."""
    from kanarray import load

    data = make_dataset()
    table = np.hstack([data["train_input"], data["train_label"]])
    np.savetxt(tmp_path / "data.csv", table, delimiter=",", header="x0,x1,y", comments="")
    args = ["-m", "kanarray", "fit", "data.csv", "--target", "y", "--width", "3", "--steps", "3",
            "--log", "1", "--block-rows", "16", "--lamb", "1e-3"]
    proc = _launch(args + ["--out", "model.npz"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("step ") == 3, proc.stdout  # rank 0 alone prints
    one = subprocess.run([sys.executable] + args + ["--out", "one.npz"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert one.returncode == 0, one.stdout + one.stderr
    ranks_model, one_model = load(tmp_path / "model.npz"), load(tmp_path / "one.npz")
    assert ranks_model.width == [2, 3, 1]
    assert ranks_model.params.tobytes() == one_model.params.tobytes()
    assert ranks_model.output_scaling[1].tobytes() == one_model.output_scaling[1].tobytes()

    # pruning and symbolic fits on every rank's rows: rank 0's decision reaches every rank
    proc = _launch(["-m", "kanarray", "fit", "data.csv", "--target", "y", "--width", "3", "--steps",
                    "5", "--prune", "--symbolic", "--block-rows", "16", "--out", "symbolic.npz"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "symbolic" in proc.stdout and load(tmp_path / "symbolic.npz").width[1] <= 3

    proc = _launch(["-m", "kanarray", "fit", "missing.csv", "--target", "y"], cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("kanarray: error:") == 1, proc.stderr
