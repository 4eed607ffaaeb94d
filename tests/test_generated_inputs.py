"""Generated good, bad and edge-case inputs across the public API and the command line.

Every call must end in one of: a finite result of the right shape, or a ValueError/TypeError
(an IndexError for an edge index, an OSError for a path) whose message names one of the
arguments the case varied. Never another exception type, a silent non-finite result, a model
changed by a failed call, or a hang (each case runs under an alarm). Fixed seed, a few hundred
cases, about a minute on 2 cores.
"""
import signal
import time

import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.cli import main

SEED = 20261123
CASE_SECONDS = 30
NAMED_ERRORS = (ValueError, TypeError)

BAD_NUMBERS = [0, -1, 2.5, "5", None, True, float("nan"), float("inf"), 1j, 10 ** 9, [3]]
BAD_ARRAYS = {
    "1-D": lambda n, w: np.zeros(w), "3-D": lambda n, w: np.zeros((n, w, 1)),
    "empty": lambda n, w: np.zeros((0, w)), "wide": lambda n, w: np.zeros((n, w + 1)),
    "nan": lambda n, w: np.full((n, w), np.nan), "inf": lambda n, w: np.full((n, w), np.inf),
    "complex": lambda n, w: np.zeros((n, w), complex), "bool": lambda n, w: np.zeros((n, w), bool),
    "strings": lambda n, w: np.full((n, w), "a"), "object": lambda n, w: np.empty((n, w), object),
    "ragged": lambda n, w: [[0.0] * w, [0.0]], "huge": lambda n, w: np.full((n, w), 1e300),
    "masked": lambda n, w: np.ma.masked_invalid(np.full((n, w), np.nan)),
    "none": lambda n, w: None,
}
GOOD_ARRAYS = {
    "floats": lambda rng, n, w: rng.uniform(-1, 1, (n, w)),
    "ints": lambda rng, n, w: rng.integers(-2, 3, (n, w)),
    "float32": lambda rng, n, w: rng.uniform(-3, 3, (n, w)).astype(np.float32),
    "list": lambda rng, n, w: rng.uniform(-1, 1, (n, w)).tolist(),
    "one row": lambda rng, n, w: rng.uniform(-1, 1, (1, w)),
    "far": lambda rng, n, w: rng.uniform(-50, 50, (n, w)),
}


class Hang(Exception):
    pass


OUTCOMES = []  # (kind, exception type name) of every case, to check the mix at the end


def _alarm(signum, frame):
    raise Hang()


def state(model):
    return model.params.copy(), [layer.knots.copy() for layer in model.layers], \
        [layer.mask.copy() for layer in model.layers]


def same_state(model, saved):
    params, knots, masks = saved
    return (np.array_equal(model.params, params, equal_nan=True)
            and all(np.array_equal(l.knots, k) for l, k in zip(model.layers, knots))
            and all(np.array_equal(l.mask, m) for l, m in zip(model.layers, masks)))


def outcome(call, names, allowed=NAMED_ERRORS):
    """('ok', result) or ('error', exception); fails the test on anything else."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        result = call()
        OUTCOMES.append(("ok", None))
        return "ok", result
    except allowed as exc:
        OUTCOMES.append(("error", type(exc).__name__))
        message = str(exc)
        assert any(name in message for name in names), f"{type(exc).__name__} names none of {names}: {message}"
        return "error", exc
    except Hang:
        pytest.fail(f"hung for {CASE_SECONDS} s varying {names}")
    finally:
        signal.alarm(0)


def check_output(y, rows, width):
    y = np.asarray(y)
    assert y.shape == (rows, width) and np.all(np.isfinite(y)), (y.shape, rows, width)


def constructor_cases(rng, n):
    pools = {
        "width": [[2, 3, 1], [1, 1], [3], [], "2,3", [2, 0, 1], [2.5, 1], None, [2, -1], [10 ** 7] * 3],
        "grid": [3, 5] + BAD_NUMBERS, "k": [1, 3, 5, 0, 11, 10 ** 7, 2.5, "3"],
        "grid_range": [(-1, 1), (0, 5), (1, -1), (0, 0), (np.nan, 1), "ab", (0, np.inf), None],
        "base_fun": ["silu", "identity", "zero", "relu", [], None],
        "grid_eps": [0.0, 0.5, 1.0, -0.1, 2.0, "x", None], "dtype": ["float64", "float32", "int8", None],
        "device": ["cpu", "tpu", None], "noise_scale": [0.1, 0.0] + BAD_NUMBERS[1:],
        "seed": [0, 7, -1, 2.5, "1", None], "path": ["auto", "fused", "bad", None],
    }
    for _ in range(n):
        varied = list(rng.choice(sorted(pools), size=rng.integers(1, 3), replace=False))
        kwargs = {name: pools[name][rng.integers(len(pools[name]))] for name in varied}
        kind, value = outcome(lambda: KAN(**{"width": [2, 3, 1], **kwargs}), varied)
        if kind == "ok":
            check_output(value(np.zeros((4, value.width[0]))), 4, value.width[-1])


def call_cases(rng, n, model):
    for _ in range(n):
        name = rng.choice(sorted(BAD_ARRAYS) + sorted(GOOD_ARRAYS))
        before = state(model)
        if name in GOOD_ARRAYS:
            x = GOOD_ARRAYS[name](rng, 6, 2)
            kind, y = outcome(lambda: model(x), ["x"])
            rows = np.asarray(x).shape[0]
            if kind == "ok":
                check_output(y, rows, 1)
        else:
            x = BAD_ARRAYS[name](6, 2)
            kind, y = outcome(lambda: model(x), ["x"])
            if kind == "ok":  # huge finite inputs are legal when the outputs stay finite
                assert name == "huge", name
                check_output(y, 6, 1)
        assert same_state(model, before)


def fit_cases(rng, n, data):
    options = {
        "opt": ["lbfgs", "adam", "sgd", None], "steps": [1, 2, 0, -1, 2.5, "2"],
        "lr": [None, 0.1, 0.0, -1.0, np.nan, "a", np.array([0.1])],
        "batch": [-1, 5, 0, 10 ** 6, 2.5], "update_grid": [True, False, "yes"],
        "grid_update_num": [1, 10, 0, None], "start_grid_update_step": [-1, 0, None],
        "stop_grid_update_step": [50, 0, "5", -3], "seed": [0, -1, "x"], "log": [0, None, "x", -2],
        "lbfgs_iters": [1, 5, 0], "lamb": [0.0, 1e-3, -1.0, np.nan, "x"],
        "loss_fn": [None, 5, lambda p, y: (0.0, p * 0), lambda p, y: (float((p - y).mean()), p[:1]),
                    lambda p, y: None, lambda p, y: (np.nan, p * 0 + 1)],
        "callback": [None, 5, lambda *a: None],
        "loss": ["mse", "ce", "hinge"],
    }
    defects = {
        "missing key": lambda d: {k: v for k, v in d.items() if k != "test_label"},
        "not a dict": lambda d: list(d.values()),
        "nan label": lambda d: {**d, "train_label": np.full_like(d["train_label"], np.nan)},
        "row mismatch": lambda d: {**d, "train_label": d["train_label"][:-1]},
        "wide labels": lambda d: {**d, "train_label": np.hstack([d["train_label"]] * 2)},
        "string inputs": lambda d: {**d, "test_input": np.full(d["test_input"].shape, "a")},
        "one row": lambda d: {k: v[:1] for k, v in d.items()},
        "far inputs": lambda d: {**d, "train_input": d["train_input"] * 100},
    }
    for case in range(n):
        model = KAN([2, 2, 1], grid=3, seed=case)
        before = state(model)
        varied = list(rng.choice(sorted(options), size=rng.integers(1, 3), replace=False))
        kwargs = {name: options[name][rng.integers(len(options[name]))] for name in varied}
        dataset = data
        if rng.random() < 0.3:
            defect = rng.choice(sorted(defects))
            dataset, varied = defects[defect](data), varied + ["dataset", "train", "test", "label", "input"]
        kwargs.setdefault("steps", 1)
        kwargs.setdefault("log", 0)
        kind, results = outcome(lambda: model.fit(dataset, **kwargs), varied + ["loss_fn"])
        if kind == "error":
            assert same_state(model, before), (varied, kwargs)
        else:
            assert np.all(np.isfinite(model.params))
            check_output(model(data["test_input"]), len(data["test_input"]), 1)


def grid_and_prune_cases(rng, n, data):
    for case in range(n):
        model = KAN([2, 3, 1], grid=3, seed=case)
        model.fit(data, steps=1, log=0)
        before = state(model)
        x_bad = BAD_ARRAYS[rng.choice(sorted(BAD_ARRAYS))](6, 2)
        threshold = [1e-2, -1.0, np.nan, "a", 1e9, None][rng.integers(6)]
        new_grid = [4, 6, 0, -3, 2.5, "6", 10 ** 12][rng.integers(7)]
        calls = [
            (lambda: model.update_grid(x_bad), ["x"]),
            (lambda: model.refine(new_grid), ["new_grid", "grid", "parameters"]),
            (lambda: model.refine(6, x=x_bad), ["x"]),
            (lambda: model.prune(node_th=threshold), ["node_th"]),
            (lambda: model.prune_edge(threshold), ["threshold"]),
            (lambda: model.prune_input(threshold=threshold), ["threshold"]),
            (lambda: model.prune_input(active_inputs=[[0, 0], [5], "a", []][rng.integers(4)]),
             ["active_inputs", "input_ids"]),
        ]
        call, names = calls[rng.integers(len(calls))]
        kind, result = outcome(call, names)
        if kind == "error":
            assert same_state(model, before), names
        elif isinstance(result, KAN):
            x = data["test_input"][:, result.input_ids]
            check_output(result(x), len(x), 1)


def symbolic_cases(rng, n):
    for case in range(n):
        model = KAN([2, 2, 1], grid=3, seed=case)
        before = state(model)
        l, i, j = (int(v) for v in rng.integers(-1, 4, 3))
        name = ["sin", "x^2", "nope", 5, None][rng.integers(5)]
        calls = [
            (lambda: model.fix_symbolic(l, i, j, name), ["l=", "i=", "j=", "name", "nope", "None", "5",
                                                         "int", "must be"]),
            (lambda: model.suggest_symbolic(0, 0, 0, lib=[5, "sin", ["x"]][rng.integers(3)],
                                            verbose=False), ["lib", "5"]),
            (lambda: model.symbolic_formula(var_names=[5, ["a", "a"], None, ["a"]][rng.integers(4)]),
             ["var_names", "symbolic"]),
        ]
        call, names = calls[rng.integers(len(calls))]
        kind, _ = outcome(call, names, NAMED_ERRORS + (IndexError,))
        if kind == "error":
            assert same_state(model, before), names


def checkpoint_cases(rng, n, tmp_path):
    model = KAN([2, 3, 1], seed=1)
    path = tmp_path / "good.npz"
    model.save(path)
    good = path.read_bytes()
    for case in range(n):
        corrupt = bytearray(good)
        how = rng.integers(3)
        if how == 0:
            corrupt = corrupt[:rng.integers(1, len(good))]
        elif how == 1:
            for pos in rng.integers(0, len(good), rng.integers(1, 20)):
                corrupt[pos] = rng.integers(256)
        else:
            corrupt = bytes(rng.integers(0, 256, rng.integers(0, 400), dtype=np.uint8))
        bad = tmp_path / f"bad{case}.npz"
        bad.write_bytes(bytes(corrupt))
        kind, loaded = outcome(lambda: kanarray.load(bad), ["checkpoint", "checksum", str(bad)])
        if kind == "ok":  # a flipped byte that changed nothing the digest covers
            check_output(loaded(np.zeros((3, 2))), 3, 1)


def cli_cases(rng, n, tmp_path, data, capsys):
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.column_stack([data["train_input"], data["train_label"]]), delimiter=",",
               header="a,b,y", comments="")
    flags = [["--grid", "0"], ["--grid", "x"], ["--steps", "-1"], ["--test-frac", "2"],
             ["--target", "q"], ["--width", "0,a"], ["--refine", "2"], ["--out", "/nonexistent/m.npz"],
             ["--lamb", "nan"], ["--seed", "-4"], ["--opt", "newton"], ["--threads", "0"]]
    for _ in range(n):
        argv = ["fit", str(csv), "--target", "y", "--steps", "1", "--out", str(tmp_path / "m.npz")]
        argv += flags[rng.integers(len(flags))]
        start = time.perf_counter()
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("kanarray: error:") and err.count("\n") == 1, (argv[-2:], err)
        assert time.perf_counter() - start < CASE_SECONDS


def test_generated_inputs(tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    data = kanarray.create_dataset(lambda x: x[:, 0] * x[:, 1], n_var=2, train_num=20, test_num=8)
    start = time.perf_counter()
    constructor_cases(rng, 120)
    call_cases(rng, 80, KAN([2, 3, 1], seed=3))
    call_cases(rng, 40, KAN([2, 3, 1], seed=3, dtype="float32"))
    fit_cases(rng, 60, data)
    grid_and_prune_cases(rng, 30, data)
    symbolic_cases(rng, 40)
    checkpoint_cases(rng, 40, tmp_path)
    cli_cases(rng, 24, tmp_path, data, capsys)
    assert time.perf_counter() - start < 600
    kinds = [kind for kind, _ in OUTCOMES]
    assert len(kinds) >= 400 and kinds.count("ok") >= 60 and kinds.count("error") >= 100
